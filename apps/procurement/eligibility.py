"""The evaluation of a tender: each certified candidate against each requirement, then the ranking.

Pure functions over `Candidate` values (built by selectors.certified_candidates in a fixed number of
queries), so the matrix is computed without touching the database and is easy to test.
A candidate is one active certificate: a chip certified on one hardware target (backend, stack).
Figures come from the signed certificate and its campaign's measurements; the few figures that
certification does not measure (country of origin, domestic content, price, die area) are the
vendor's declarations as frozen in the certificate's signed subject, and every cell built from them
says so. Nothing is read from the live registry rows, which the vendor may have edited since.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.certificates.serving import judged_bound_text
from apps.procurement.export_control import UNDETERMINED, Classification
from apps.procurement.models import RequirementKind as Kind
from apps.procurement.requirements import (
    ENERGY_METRICS,
    MODEL_METRICS,
    QUANTITY_NAMES,
    SERVING_BOUNDS,
    requirement_describe,
    serving_percentile,
)
from apps.procurement.scoring import scoring_bounds, scoring_dtypes, scoring_rank, serving_bound_problem
from certification.recorded_text import say
from runners.dtypes import DTYPE_OF_PEAK_KEY

# Every text a cell (its value, its source) or a reason carries is a recorded phrase of
# certification/recorded_text.py (matrix.*): stored in the snapshot in English, read in the reader's language.


@dataclass
class Candidate:
    certificate_id: int
    serial: str
    program_code: str
    program_version: str
    level: str
    level_ranks: dict[str, int]
    valid_until: str
    chip_id: int
    sku: str
    name: str
    vendor: str
    target: str
    backend: str
    memory_gib: float | None
    tdp_w: float | None
    declared_peaks: dict[str, float]
    scope_dtypes: list[str]
    scope_models: dict[str, list[str]]
    die_area_mm2: float | None
    data_center: bool
    fab_country: str
    assembly_country: str
    domestic_content_pct: float
    list_price: float | None
    currency: str
    # dtype -> {"value", "efficiency", "measurement", "document"}: the best certified GEMM per dtype.
    gemm: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (model, dtype, metric) -> {"value", "unit", "measurement", "document"}: best throughput, best latency.
    model_figures: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    # (model, dtype, kind) -> {"value", "unit", "measurement", "document", "latency_bound_s", "tpot_bound_s",
    # "percentile"}: the best serving figure (serving_qps, serving_tokens) the judge lets be certified.
    serving: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    # (model, dtype, unit) -> the signed headline's serving energy figure (unit J/query or J/token) with
    # its meter and Server bound: the lowest the certificate signed. Read from the signed payload only.
    energy: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    classification: Classification | None = None
    # False for certificates signed before their subject carried these declarations: then they come
    # from the registry row, and the cells say so.
    declarations_signed: bool = True

    @property
    def certified_source(self) -> str:
        return say("matrix.certificate", serial=self.serial)

    @property
    def declared_source(self) -> str:
        if self.declarations_signed:
            return say("matrix.declared_signed", source=self.certified_source)
        return say("matrix.declared_registry", source=self.certified_source)


def _cell(ok: bool, value: str, source: str) -> dict[str, Any]:
    return {"ok": ok, "value": value, "source": source}


def _measurement_source(figure: dict[str, Any], candidate: Candidate) -> str:
    return say(
        "matrix.measurement",
        measurement=figure["measurement"],
        document=figure["document"][:12],
        source=candidate.certified_source,
    )


def _compare(value: float, op: str, bound: float) -> bool:
    return value >= bound if op == ">=" else value <= bound


def cell_evaluate(*, kind: str, params: dict[str, Any], candidate: Candidate) -> dict[str, Any]:
    """One cell: pass/fail, the value it was judged on, and where that value came from."""
    c = candidate
    value: Any  # a label (certificate level) or a number (measured figures)
    if kind == Kind.CERTIFICATE_LEVEL:
        value = say("matrix.level", program=c.program_code, version=c.program_version, level=c.level)
        wanted = c.level_ranks.get(params["level"]) if c.program_code == params["program"] else None
        if c.program_code != params["program"]:
            return _cell(False, say("matrix.another_program", value=value), c.certified_source)
        if wanted is None:
            return _cell(
                False, say("matrix.level_undefined", value=value, level=params["level"]), c.certified_source
            )
        return _cell(c.level_ranks.get(c.level, 0) >= wanted, value, c.certified_source)
    if kind == Kind.CONFORMANCE_DTYPE:
        ok = params["dtype"] in c.scope_dtypes
        scope = ", ".join(c.scope_dtypes)
        if not scope:
            return _cell(ok, say("matrix.not_in_scope_none"), c.certified_source)
        return _cell(
            ok, say("matrix.in_scope" if ok else "matrix.not_in_scope", scope=scope), c.certified_source
        )
    if kind == Kind.MODEL_PERFORMANCE:
        model, dtype, metric = params["model"], params["dtype"], params["metric"]
        unit, op = MODEL_METRICS[metric]
        figure = c.model_figures.get((model, dtype, metric))
        if figure is None:
            return _cell(False, say(f"matrix.no_{metric}", model=model, dtype=dtype), c.certified_source)
        value = figure["value"] * 1000 if metric == "latency" else figure["value"]  # stored in s, bound in ms
        text = f"{value:.4g} {unit}"
        if model not in c.scope_models:
            return _cell(False, say("matrix.out_of_model_scope", value=text, model=model), c.certified_source)
        return _cell(_compare(value, op, params["bound"]), text, _measurement_source(figure, c))
    if kind == Kind.MEASURED_TFLOPS:
        figure = c.gemm.get(params["dtype"])  # the requested dtype's own figure, never another dtype's
        if figure is None:
            return _cell(False, say("scoring.no_gemm_dtype", dtype=params["dtype"]), c.certified_source)
        value = figure["value"]
        return _cell(
            value >= params["min_tflops"],
            f"{value:.4g} TFLOP/s {params['dtype']}",
            _measurement_source(figure, c),
        )
    if kind in (Kind.SERVING_QPS, Kind.SERVING_TOKENS):
        return _serving_cell(kind, params, c)
    if kind == Kind.SERVING_ENERGY:
        return _energy_cell(params, c)
    if kind in (Kind.MEMORY_GIB, Kind.TDP_W):
        value = c.memory_gib if kind == Kind.MEMORY_GIB else c.tdp_w
        unit = "GiB" if kind == Kind.MEMORY_GIB else "W"
        if value is None:
            return _cell(False, say("matrix.not_stated", name=QUANTITY_NAMES[kind]), c.certified_source)
        return _cell(_compare(value, params["op"], params["value"]), f"{value:g} {unit}", c.certified_source)
    if kind == Kind.DOMESTIC_CONTENT_PCT:
        value = c.domestic_content_pct
        return _cell(_compare(value, params["op"], params["value"]), f"{value:g} %", c.declared_source)
    if kind == Kind.ORIGIN_COUNTRY:
        allowed = set(params["countries"])
        fab, assembly = c.fab_country in allowed, c.assembly_country in allowed
        ok = {"fab": fab, "assembly": assembly, "both": fab and assembly, "either": fab or assembly}[
            params["field"]
        ]
        return _cell(
            ok, say("matrix.origin", fab=c.fab_country, assembly=c.assembly_country), c.declared_source
        )
    if kind == Kind.EXPORT_CLASS:
        klass = c.classification
        possible = set(klass.possible) if klass.code == UNDETERMINED else {klass.code}
        chosen = set(params["classes"])
        # Undetermined passes only if every class it could be satisfies the requirement.
        ok = possible <= chosen if params["mode"] == "in" else not (possible & chosen)
        value = klass.code if klass.code != UNDETERMINED else _undetermined(klass.possible)
        return _cell(ok, value, say("matrix.export_source", rule=klass.rule_id, source=c.certified_source))
    if kind == Kind.BACKEND:
        return _cell(c.backend in params["backends"], f"{c.backend} ({c.target})", c.certified_source)
    raise ValueError(f"Unknown requirement kind {kind!r}")


def _serving_cell(kind: str, params: dict[str, Any], c: Candidate) -> dict[str, Any]:
    """A serving requirement: the certified figure of the model in the dtype, measured in a VALID LoadGen
    Server run whose bound (latency, or TPOT for tokens/s) is at least as tight as the tender's, at a
    percentile no lower than the requirement's (requirements.serving_percentile). The bound is judged as
    the ranking judges a serving weight (scoring.serving_bound_problem): one rule, one home."""
    floor_key, bound_key = SERVING_BOUNDS[kind]
    figure = c.serving.get((params["model"], params["dtype"], kind))
    qps = kind == Kind.SERVING_QPS
    if figure is None:
        missing = "matrix.no_serving_qps" if qps else "matrix.no_serving_tokens"
        return _cell(False, say(missing, model=params["model"], dtype=params["dtype"]), c.certified_source)
    # The bound LoadGen judged the run by (judge.serving_bound): a query latency bound, or for a
    # decoder (token-latency mode) TTFT and TPOT; a QPS requirement's latency bound is met only by a
    # run judged by one, a tokens/s requirement's TPOT bound only by a run judged by TPOT.
    certified_bound = (
        figure.get("latency_bound_s") if kind == Kind.SERVING_QPS else figure.get("tpot_bound_s")
    )
    unit = "QPS" if qps else "tokens/s"
    value = f"{figure['value']:.4g}"
    judged = judged_bound_text({"scenario": "Server", **figure})
    if certified_bound is None:
        code = ("matrix.qps_no_bound" if qps else "matrix.tokens_no_bound") + ("_judged" if judged else "")
        return _cell(
            False, say(code, value=value, **({"judged": judged} if judged else {})), c.certified_source
        )
    at = "matrix.serving_at" if figure.get("token_latencies") else "matrix.serving_at_latency"
    text = say(at, value=value, unit=unit, judged=judged)
    percentile, _ = serving_percentile(params)
    problem = serving_bound_problem(
        item={**params, "metric": kind, bound_key: float(params[bound_key]), "percentile": percentile},
        figure=figure,
    )
    if problem is not None:
        return _cell(False, f"{text}; {problem}", _measurement_source(figure, c))
    return _cell(figure["value"] >= params[floor_key], text, _measurement_source(figure, c))


def _energy_cell(params: dict[str, Any], c: Candidate) -> dict[str, Any]:
    """An energy requirement: the energy figure the certificate signed in its headline (a meter's
    reading over the VALID Server run at the level's settings), J/query or tokens per joule (1 / J/token).
    A certificate whose device had no meter has no figure, and fails."""
    unit, op, certified_unit = ENERGY_METRICS[params["metric"]]
    figure = c.energy.get((params["model"], params["dtype"], certified_unit))
    if figure is None:
        return _cell(
            False,
            say("matrix.no_energy", unit=certified_unit, model=params["model"], dtype=params["dtype"]),
            c.certified_source,
        )
    joules = float(figure["value"])
    value = joules if params["metric"] == "j_per_query" else 1.0 / joules
    judged = judged_bound_text(figure)
    text = (
        say("matrix.energy_judged", value=f"{value:.4g}", unit=unit, judged=judged)
        if judged
        else f"{value:.4g} {unit}"
    )
    meter = figure.get("meter")
    source = (
        say("matrix.energy_source", source=c.certified_source, meter=meter)
        if meter
        else say("matrix.energy_source_unnamed", source=c.certified_source)
    )
    return _cell(_compare(value, op, params["bound"]), text, source)


def _undetermined(possible: list[str]) -> str:
    """The classes an undetermined chip may be in: "undetermined (3A090.a or not-3A090)"."""
    classes = possible[0] if possible else ""
    for code in possible[1:]:
        classes = say("matrix.classes_or", classes=classes, last=code)
    return say("matrix.undetermined", classes=classes)


def _figures(candidate: Candidate) -> dict[str, Any]:
    """The certified figures the charts compare: best GEMM per dtype against the declared peak."""
    # Certificate subjects name precisions as the registry does; measurements use torch names.
    declared = {DTYPE_OF_PEAK_KEY.get(k, k): v for k, v in candidate.declared_peaks.items()}
    return {
        "tdp_w": candidate.tdp_w,
        "memory_gib": candidate.memory_gib,
        "gemm": {
            dtype: {
                "measured": g["value"],
                "declared": declared.get(dtype),
                "efficiency": g["efficiency"],
                "measurement": g["measurement"],
            }
            for dtype, g in sorted(candidate.gemm.items())
        },
    }


def evaluation_build(
    *,
    requirements: list[dict[str, Any]],
    scoring: list[dict[str, Any]],
    currency: str,
    candidates: list[Candidate],
) -> dict[str, Any]:
    """The matrix and ranking as plain data: rows (eligible first, by rank), each with every cell."""
    texts = [requirement_describe(kind=r["kind"], params=r["params"]) for r in requirements]
    rows: list[dict[str, Any]] = []
    for candidate in candidates:
        cells = [cell_evaluate(kind=r["kind"], params=r["params"], candidate=candidate) for r in requirements]
        klass = candidate.classification
        rows.append(
            {
                "serial": candidate.serial,
                "program": f"{candidate.program_code} {candidate.program_version}",
                "level": candidate.level,
                "valid_until": candidate.valid_until,
                "chip": {
                    "id": candidate.chip_id,
                    "sku": candidate.sku,
                    "name": candidate.name,
                    "vendor": candidate.vendor,
                },
                "target": candidate.target,
                "backend": candidate.backend,
                "classification": {
                    "code": klass.code,
                    "possible": klass.possible,
                    "tpp": klass.tpp,
                    "pd": klass.pd,
                },
                "cells": cells,
                "eligible": all(cell["ok"] for cell in cells),
                "reasons": [
                    say("matrix.reason", requirement=text, value=cell["value"])
                    for text, cell in zip(texts, cells, strict=True)
                    if not cell["ok"]
                ],
                "figures": _figures(candidate),
            }
        )
    by_serial = {c.serial: c for c in candidates}
    eligible = [row for row in rows if row["eligible"]]
    scoring = scoring_dtypes(scoring=scoring, requirements=requirements)
    scoring = scoring_bounds(scoring=scoring, requirements=requirements)
    formula = scoring_rank(rows=eligible, candidates=by_serial, scoring=scoring, currency=currency)
    eligible.sort(key=lambda row: row["rank"])
    rest = sorted(
        (row for row in rows if not row["eligible"]), key=lambda row: (row["chip"]["sku"], row["serial"])
    )
    for row in rest:
        row.pop("figures")  # only eligible chips are charted; the snapshot stays small
    return {
        "requirements": [
            {"position": i, "kind": r["kind"], "params": r["params"], "text": text}
            for i, (r, text) in enumerate(zip(requirements, texts, strict=True), 1)
        ],
        "scoring": {"weights": scoring, "currency": currency, "formula": formula},
        "rows": eligible + rest,
        "candidate_count": len(rows),
        "eligible_count": len(eligible),
    }
