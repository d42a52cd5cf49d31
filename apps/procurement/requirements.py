"""Requirement parameters: cleaning each kind's parameters, describing them, and refusing sets of
requirements that no certified chip could ever meet (contradictions and impossible bounds).

Every message names the requirement by its 1-based position, so a buyer knows which row to fix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext, gettext_noop

from apps.procurement.countries import ISO_COUNTRIES
from apps.procurement.models import RequirementKind as Kind
from certification.recorded_text import say
from runners.serving_bound import MLPERF_SERVER_PERCENTILE, MLPERF_SERVER_PERCENTILE_SOURCE

# Dtype names as the runners report them (torch names).
DTYPES = ("float32", "tf32", "bfloat16", "float16", "float8_e4m3fn", "float8_e5m2", "int8")
MODEL_METRICS = {"throughput": ("items/s", ">="), "latency": ("ms", "<=")}
ORIGIN_FIELDS = ("fab", "assembly", "both", "either")
OPS = (">=", "<=")
# The values a chip can have at all (the registry's own bounds), to refuse bounds no chip can meet.
QUANTITIES: dict[str, tuple[str, float, float]] = {
    Kind.MEMORY_GIB: ("GiB", 0.0, 1_000_000.0),
    Kind.TDP_W: ("W", 1.0, 100_000.0),
    Kind.DOMESTIC_CONTENT_PCT: ("%", 0.0, 100.0),
}
# English (a requirement's line reads them so); an error message shows them in the reader's language.
QUANTITY_NAMES: dict[str, str] = {
    Kind.MEMORY_GIB: gettext_noop("memory"),
    Kind.TDP_W: gettext_noop("TDP"),
    Kind.DOMESTIC_CONTENT_PCT: gettext_noop("domestic content"),
}
# Serving requirements: (the figure's lower bound, the latency bound it must be certified at).
SERVING_BOUNDS: dict[str, tuple[str, str]] = {
    Kind.SERVING_QPS: ("min_qps", "max_latency_ms"),
    Kind.SERVING_TOKENS: ("min_tokens_per_s", "max_tpot_ms"),
}
# A serving requirement's latency (or TPOT) bound holds at a percentile: the one it states, else MLPerf's
# Server percentile (runners/serving_bound.py, with its source), recorded in its params with
# "percentile_default": true so that its line says where the percentile came from. Requirements saved
# before they carried one are read so too (migration 0004 wrote it into them).
SERVING_PERCENTILE_DEFAULT = MLPERF_SERVER_PERCENTILE
SERVING_PERCENTILE_SOURCE = MLPERF_SERVER_PERCENTILE_SOURCE
# Energy requirements: metric -> (unit, comparison, the certified figure's unit it is computed from).
ENERGY_METRICS: dict[str, tuple[str, str, str]] = {
    "j_per_query": ("J/query", "<=", "J/query"),
    "tokens_per_joule": ("tokens/J", ">=", "J/token"),
}
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")


@dataclass(frozen=True)
class Vocabulary:
    """What requirement parameters may name: programs with their level ranks, backends, export classes."""

    programs: dict[str, dict[str, int]]  # program code -> level code -> rank
    backends: frozenset[str]
    export_classes: tuple[str, ...]


def _number(params: dict, key: str) -> float:
    value = params.get(key)
    if isinstance(value, bool) or value is None:
        raise ValueError(gettext("'%(key)s' must be a number.") % {"key": key})
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            gettext("'%(key)s' must be a number, not %(value)s.") % {"key": key, "value": repr(value)}
        ) from None
    if not math.isfinite(number):
        raise ValueError(gettext("'%(key)s' must be a finite number.") % {"key": key})
    return number


def _choice(params: dict, key: str, choices, label: str) -> str:
    """``label``: what the value is, in the reader's language (gettext'd by the caller)."""
    value = params.get(key)
    if value not in choices:
        raise ValueError(
            gettext("Unknown %(label)s %(value)s; use one of: %(choices)s.")
            % {"label": label, "value": repr(value), "choices": ", ".join(choices)}
        )
    return value


def _string_list(params: dict, key: str) -> list[str]:
    value = params.get(key)
    if isinstance(value, str):
        value = [part for part in re.split(r"[\s,]+", value) if part]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(gettext("'%(key)s' must be a non-empty list.") % {"key": key})
    return sorted(set(value))


def _clean_one(kind: str, params: dict, vocabulary: Vocabulary) -> dict:
    if not isinstance(params, dict):
        raise ValueError(gettext("Parameters must be an object."))
    if kind == Kind.CERTIFICATE_LEVEL:
        code = str(params.get("program", "")).strip()
        program = next((p for p in vocabulary.programs if p.lower() == code.lower()), None)
        if program is None:
            known = ", ".join(sorted(vocabulary.programs)) or gettext("none loaded")
            raise ValueError(
                gettext("Unknown program %(code)s; known programs: %(known)s.")
                % {"code": repr(code), "known": known}
            )
        levels = vocabulary.programs[program]
        level = _choice(
            params,
            "level",
            sorted(levels, key=levels.get),
            gettext("level of %(program)s") % {"program": program},
        )
        return {"program": program, "level": level}
    if kind == Kind.CONFORMANCE_DTYPE:
        return {"dtype": _choice(params, "dtype", DTYPES, gettext("dtype"))}
    if kind == Kind.MODEL_PERFORMANCE:
        model = str(params.get("model", "")).strip()
        if not MODEL_NAME.match(model) or len(model) > 100:
            raise ValueError(gettext("'model' must name a model (letters, digits, . _ -)."))
        metric = _choice(params, "metric", tuple(MODEL_METRICS), gettext("metric"))
        bound = _number(params, "bound")
        if bound <= 0:
            message = (
                gettext("A throughput bound must be above 0 %(unit)s; %(bound)s is impossible.")
                if metric == "throughput"
                else gettext("A latency bound must be above 0 %(unit)s; %(bound)s is impossible.")
            )
            raise ValueError(message % {"unit": MODEL_METRICS[metric][0], "bound": f"{bound:g}"})
        return {
            "model": model,
            "dtype": _choice(params, "dtype", DTYPES, gettext("dtype")),
            "metric": metric,
            "bound": bound,
        }
    if kind == Kind.MEASURED_TFLOPS:
        value = _number(params, "min_tflops")
        if value <= 0:
            raise ValueError(
                gettext("A throughput bound must be above 0 TFLOP/s; %(value)s is impossible.")
                % {"value": f"{value:g}"}
            )
        return {"dtype": _choice(params, "dtype", DTYPES, gettext("dtype")), "min_tflops": value}
    if kind in (Kind.SERVING_QPS, Kind.SERVING_TOKENS):
        model = str(params.get("model", "")).strip()
        if not MODEL_NAME.match(model) or len(model) > 100:
            raise ValueError(gettext("'model' must name a model (letters, digits, . _ -)."))
        floor_key, bound_key = SERVING_BOUNDS[kind]
        cleaned: dict[str, Any] = {
            "model": model,
            "dtype": _choice(params, "dtype", DTYPES, gettext("dtype")),
        }
        for key in (floor_key, bound_key):
            value = _number(params, key)
            if value <= 0:
                raise ValueError(
                    gettext("'%(key)s' must be above 0; %(value)s is impossible.")
                    % {"key": key, "value": f"{value:g}"}
                )
            cleaned[key] = value
        if params.get("percentile") in (None, ""):
            cleaned.update(percentile=SERVING_PERCENTILE_DEFAULT, percentile_default=True)
        else:
            percentile = _number(params, "percentile")
            if not 0 < percentile < 1:
                raise ValueError(gettext("'percentile' must be a fraction between 0 and 1, e.g. 0.9"))
            cleaned["percentile"] = percentile
        return cleaned
    if kind == Kind.SERVING_ENERGY:
        model = str(params.get("model", "")).strip()
        if not MODEL_NAME.match(model) or len(model) > 100:
            raise ValueError(gettext("'model' must name a model (letters, digits, . _ -)."))
        metric = _choice(params, "metric", tuple(ENERGY_METRICS), gettext("energy metric"))
        bound = _number(params, "bound")
        if bound <= 0:
            raise ValueError(
                gettext("An energy bound must be above 0 %(unit)s; %(bound)s is impossible.")
                % {"unit": ENERGY_METRICS[metric][0], "bound": f"{bound:g}"}
            )
        return {
            "model": model,
            "dtype": _choice(params, "dtype", DTYPES, gettext("dtype")),
            "metric": metric,
            "bound": bound,
        }
    if kind in QUANTITIES:
        unit, lowest, highest = QUANTITIES[kind]
        op = _choice(params, "op", OPS, gettext("comparison"))
        value = _number(params, "value")
        name = gettext(QUANTITY_NAMES[kind])
        if (op == ">=" and value > highest) or (op == "<=" and value < lowest):
            raise ValueError(
                gettext(
                    "%(name)s %(op)s %(value)s %(unit)s is impossible: "
                    "a chip's %(name)s lies between %(lowest)s and %(highest)s %(unit)s."
                )
                % {
                    "name": name,
                    "op": op,
                    "value": f"{value:g}",
                    "unit": unit,
                    "lowest": f"{lowest:g}",
                    "highest": f"{highest:g}",
                }
            )
        return {"op": op, "value": value}
    if kind == Kind.ORIGIN_COUNTRY:
        where = _choice(params, "field", ORIGIN_FIELDS, gettext("country field"))
        countries = [c.strip().upper() for c in _string_list(params, "countries")]
        unknown = [c for c in countries if c not in ISO_COUNTRIES]
        if unknown:
            raise ValueError(
                gettext("Not ISO 3166-1 alpha-2 country codes: %(codes)s.") % {"codes": ", ".join(unknown)}
            )
        return {"field": where, "countries": sorted(set(countries))}
    if kind == Kind.EXPORT_CLASS:
        mode = _choice(params, "mode", ("in", "not_in"), gettext("mode"))
        classes = _string_list(params, "classes")
        unknown = [c for c in classes if c not in vocabulary.export_classes]
        if unknown:
            raise ValueError(
                gettext("Unknown export-control classes: %(classes)s; use: %(known)s.")
                % {"classes": ", ".join(unknown), "known": ", ".join(vocabulary.export_classes)}
            )
        return {"mode": mode, "classes": classes}
    if kind == Kind.BACKEND:
        backends = [b.strip().lower() for b in _string_list(params, "backends")]
        unknown = [b for b in backends if b not in vocabulary.backends]
        if unknown:
            raise ValueError(
                gettext("Unknown backends: %(backends)s; known: %(known)s.")
                % {"backends": ", ".join(unknown), "known": ", ".join(sorted(vocabulary.backends))}
            )
        return {"backends": sorted(set(backends))}
    raise ValueError(gettext("Unknown requirement kind %(kind)s.") % {"kind": repr(kind)})


def _contradictions(rows: list[tuple[str, dict]], vocabulary: Vocabulary) -> list[str]:
    errors = []
    for kind, (unit, _, _) in QUANTITIES.items():
        bounds = [(i, p) for i, (k, p) in enumerate(rows, 1) if k == kind]
        lower = max((b for b in bounds if b[1]["op"] == ">="), key=lambda b: b[1]["value"], default=None)
        upper = min((b for b in bounds if b[1]["op"] == "<="), key=lambda b: b[1]["value"], default=None)
        if lower and upper and lower[1]["value"] > upper[1]["value"]:
            name = gettext(QUANTITY_NAMES[kind])
            errors.append(
                gettext(
                    "Requirements %(lower)s and %(upper)s contradict: %(name)s >= %(low)s %(unit)s "
                    "and %(name)s <= %(high)s %(unit)s cannot both hold."
                )
                % {
                    "lower": lower[0],
                    "upper": upper[0],
                    "name": name,
                    "low": f"{lower[1]['value']:g}",
                    "high": f"{upper[1]['value']:g}",
                    "unit": unit,
                }
            )
    programs = {(i, p["program"]) for i, (k, p) in enumerate(rows, 1) if k == Kind.CERTIFICATE_LEVEL}
    if len({code for _, code in programs}) > 1:
        errors.append(
            gettext(
                "Requirements %(positions)s contradict: one certificate is issued under one program, "
                "so it cannot meet %(programs)s at once."
            )
            % {
                "positions": ", ".join(str(i) for i, _ in sorted(programs)),
                "programs": gettext(" and ").join(sorted({code for _, code in programs})),
            }
        )
    allowed, positions = set(vocabulary.export_classes), []
    for i, (kind, params) in enumerate(rows, 1):
        if kind == Kind.EXPORT_CLASS:
            positions.append(str(i))
            allowed = (
                allowed & set(params["classes"])
                if params["mode"] == "in"
                else allowed - set(params["classes"])
            )
    if positions and not allowed:
        errors.append(
            gettext("Requirements %(positions)s together exclude every export-control class.")
            % {"positions": ", ".join(positions)}
        )
    sets = [(i, set(p["backends"])) for i, (k, p) in enumerate(rows, 1) if k == Kind.BACKEND]
    if len(sets) > 1 and not set.intersection(*(s for _, s in sets)):
        errors.append(
            gettext("Requirements %(positions)s allow no common backend.")
            % {"positions": ", ".join(str(i) for i, _ in sets)}
        )
    for where in ("fab", "assembly"):
        sets = [
            (i, set(p["countries"]))
            for i, (k, p) in enumerate(rows, 1)
            if k == Kind.ORIGIN_COUNTRY and p["field"] in (where, "both")
        ]
        if len(sets) > 1 and not set.intersection(*(s for _, s in sets)):
            message = (
                gettext("Requirements %(positions)s allow no common fab country.")
                if where == "fab"
                else gettext("Requirements %(positions)s allow no common assembly country.")
            )
            errors.append(message % {"positions": ", ".join(str(i) for i, _ in sets)})
    return errors


def requirements_clean(*, rows: list[dict], vocabulary: Vocabulary) -> list[dict]:
    """[{kind, params}] -> the same with cleaned parameters; raises ValidationError naming every problem."""
    if not isinstance(rows, list):
        raise ValidationError({"requirements": [gettext("Requirements must be a list of {kind, params}.")]})
    errors, cleaned = [], []
    for position, row in enumerate(rows, 1):
        kind = row.get("kind") if isinstance(row, dict) else None
        label = Kind(kind).label if kind in Kind.values else str(kind)
        try:
            if kind not in Kind.values:
                raise ValueError(
                    gettext("Unknown requirement kind %(kind)s; use one of: %(kinds)s.")
                    % {"kind": repr(kind), "kinds": ", ".join(Kind.values)}
                )
            cleaned.append({"kind": kind, "params": _clean_one(kind, row.get("params") or {}, vocabulary)})
        except ValueError as error:
            errors.append(
                gettext("Requirement %(position)s (%(label)s): %(error)s")
                % {"position": position, "label": label, "error": error}
            )
    if not errors:
        errors = _contradictions([(r["kind"], r["params"]) for r in cleaned], vocabulary)
    if errors:
        raise ValidationError({"requirements": errors})
    return cleaned


def requirement_describe(*, kind: str, params: dict) -> str:
    """One line a buyer reads in a matrix header."""
    if kind == Kind.CERTIFICATE_LEVEL:
        return say("requirement.certificate_level", program=params["program"], level=params["level"])
    if kind == Kind.CONFORMANCE_DTYPE:
        return say("requirement.conformance_dtype", dtype=params["dtype"])
    if kind == Kind.MODEL_PERFORMANCE:
        unit, op = MODEL_METRICS[params["metric"]]
        return say(
            "requirement.model_metric",
            model=params["model"],
            metric=params["metric"],
            dtype=params["dtype"],
            op=op,
            bound=f"{params['bound']:g}",
            unit=unit,
        )
    if kind == Kind.MEASURED_TFLOPS:
        return say("requirement.measured_tflops", dtype=params["dtype"], min=f"{params['min_tflops']:g}")
    # requirement.serving_qps_at[_default], requirement.serving_tokens_at[_default]
    if kind in SERVING_BOUNDS:
        floor_key, bound_key = SERVING_BOUNDS[kind]
        percentile, defaulted = serving_percentile(params)
        return say(
            f"requirement.{kind}_at" + ("_default" if defaulted else ""),
            model=params["model"],
            dtype=params["dtype"],
            min=f"{params[floor_key]:g}",
            bound=f"{params[bound_key]:g}",
            percentile=f"{round(percentile * 100, 6):g}",
        )
    if kind == Kind.SERVING_ENERGY:
        unit, op, _ = ENERGY_METRICS[params["metric"]]
        return say(
            "requirement.serving_energy",
            model=params["model"],
            dtype=params["dtype"],
            op=op,
            bound=f"{params['bound']:g}",
            unit=unit,
        )
    if kind in QUANTITIES:
        return say(
            f"requirement.{kind}", op=params["op"], value=f"{params['value']:g}", unit=QUANTITIES[kind][0]
        )
    if kind == Kind.ORIGIN_COUNTRY:
        return say(
            "requirement.origin_in",
            field=params["field"].capitalize(),
            countries=", ".join(params["countries"]),
        )
    if kind == Kind.EXPORT_CLASS:
        mode = "in" if params["mode"] == "in" else "not_in"
        return say(f"requirement.export_{mode}", classes=", ".join(params["classes"]))
    if kind == Kind.BACKEND:
        return say("requirement.backend", backends=", ".join(params["backends"]))
    return kind


def serving_percentile(params: dict[str, Any]) -> tuple[float, bool]:
    """(percentile, whether it is the default) of a serving requirement's bound: the one it states (a
    fraction in (0, 1)), else MLPerf's Server percentile (SERVING_PERCENTILE_SOURCE), as for a requirement
    saved before requirements stated one. Never "any percentile": a figure certified at p90 does not
    meet a bound the buyer may have meant at p99."""
    value = params.get("percentile")
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1:
        return float(value), params.get("percentile_default") is True
    return SERVING_PERCENTILE_DEFAULT, True


def tender_requirements_described(tender) -> list[dict]:
    """A tender's requirements with the line a buyer reads, as the portal page and the API show them."""
    return [
        {
            "position": r.position,
            "kind": r.kind,
            "params": r.params,
            "text": requirement_describe(kind=r.kind, params=r.params),
        }
        for r in tender.requirements.all()
    ]
