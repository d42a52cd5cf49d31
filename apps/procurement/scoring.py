"""Ranking of eligible candidates by a weighted score, and the formula shown beside it.

score = sum_i(w_i * x_i / max_eligible(x_i)) / sum_i(w_i). Each figure x_i is normalised by the best
eligible value, so every term lies in [0, 1] and weights mean what they say whatever the units.
A figure that a candidate lacks (no price in the tender's currency, no measurement of the model)
counts 0 for that term, and the row says why.

A serving weight (Server QPS, Server tokens/s) compares figures at one bound: the one it names
(`max_latency_ms` or `max_tpot_ms`, optionally at a `percentile`), else the tightest its tender's
requirement on the same model and dtype states. Only figures LoadGen judged at a bound at least as
strict count (runners/serving_bound.py, the judge's reading of the run's LoadGen summary); a figure
judged at a looser bound, or by another kind of bound (TTFT and TPOT in token-latency mode against a
query latency bound), is missing, and the term says why. The formula states the bound.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext

from apps.procurement.models import ScoreMetric
from apps.procurement.requirements import DTYPES, MODEL_NAME, SERVING_BOUNDS, serving_percentile
from certification.recorded_text import say
from runners.serving_bound import NAMES, ServerBound

if TYPE_CHECKING:
    from apps.procurement.eligibility import Candidate

MODEL_METRICS = {
    ScoreMetric.MODEL_THROUGHPUT,
    ScoreMetric.MODEL_THROUGHPUT_PER_WATT,
    ScoreMetric.MODEL_THROUGHPUT_PER_PRICE,
}
SERVING_METRICS = {ScoreMetric.SERVING_QPS, ScoreMetric.SERVING_TOKENS}
# The judged bound a serving weight compares at (runners/serving_bound.ServerBound.bounds names): a query
# latency bound for Server QPS, TPOT (token-latency mode) for tokens/s, as the requirement kinds read them.
SERVING_BOUND_NAMES = {ScoreMetric.SERVING_QPS.value: "latency", ScoreMetric.SERVING_TOKENS.value: "tpot"}
# GEMM metrics: of one dtype when the weight names it (or the tender requires one), else the best dtype.
GEMM_METRICS = {
    ScoreMetric.MEASURED_TFLOPS,
    ScoreMetric.TFLOPS_PER_WATT,
    ScoreMetric.TFLOPS_PER_PRICE,
    ScoreMetric.TFLOPS_PER_GIB,
}


def scoring_dtypes(
    *, scoring: list[dict[str, Any]], requirements: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """GEMM weights without a dtype rank by the dtype the tender requires (its measured_tflops
    requirement, when it names exactly one dtype), not by the best figure over all dtypes."""
    required = sorted({r["params"]["dtype"] for r in requirements if r["kind"] == "measured_tflops"})
    if len(required) != 1:
        return scoring
    return [
        {**item, "dtype": required[0]} if item["metric"] in GEMM_METRICS and not item.get("dtype") else item
        for item in scoring
    ]


def _bound_key(metric: str) -> str:
    """The key a serving weight (or requirement) states its bound in, in ms: max_latency_ms, max_tpot_ms."""
    return SERVING_BOUNDS[metric][1]


def _stated_bounds(item: dict[str, Any], requirements: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """The (bound, percentile) pairs the tender's requirements of a serving weight's kind state on its
    model and dtype (the percentile as eligibility reads it: requirements.serving_percentile)."""
    key = _bound_key(item["metric"])
    return [
        (float(r["params"][key]), serving_percentile(r["params"])[0])
        for r in requirements
        if r["kind"] == item["metric"]
        and r["params"].get("model") == item["model"]
        and r["params"].get("dtype") == item["dtype"]
    ]


def scoring_bounds(
    *, scoring: list[dict[str, Any]], requirements: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Serving weights without a bound compare at the tightest bound the tender requires of the same
    kind, model and dtype, at that requirement's percentile unless the weight states one (every eligible
    chip met it); a weight naming its own bound keeps it, and its own percentile or none."""
    out = []
    for item in scoring:
        if item["metric"] in SERVING_METRICS and item.get(_bound_key(item["metric"])) is None:
            stated = _stated_bounds(item, requirements)
            if stated:
                bound, percentile = min(stated, key=lambda pair: (pair[0], -pair[1]))
                item = {**item, _bound_key(item["metric"]): bound}
                if item.get("percentile") is None:
                    item["percentile"] = percentile
        out.append(item)
    return out


def _serving_bound_clean(
    item: dict[str, Any], row: dict[str, Any], requirements: list[dict[str, Any]] | None
) -> None:
    """A serving weight's bound (ms, above 0) and percentile (a fraction, optional) into ``item``; a weight
    stating no bound needs a requirement of the tender that states one (``requirements`` None: unchecked)."""
    key = _bound_key(item["metric"])
    for name in (key, "percentile"):
        value = row.get(name)
        if value in (None, ""):
            continue
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if name == key and not (math.isfinite(number) and number > 0):
            raise ValueError(gettext("'%(key)s' must be a number of ms above 0") % {"key": key})
        if name == "percentile" and not 0 < number < 1:
            raise ValueError(gettext("'percentile' must be a fraction between 0 and 1, e.g. 0.9"))
        item[name] = number
    if key not in item and requirements is not None and not _stated_bounds(item, requirements):
        raise ValueError(
            gettext(
                "a serving weight needs its bound ('%(key)s', in ms), or a requirement of the tender "
                "on %(model)s at %(dtype)s that states one"
            )
            % {"key": key, "model": item["model"], "dtype": item["dtype"]}
        )


def scoring_clean(
    *, rows: list[dict[str, Any]], requirements: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """[{metric, weight, model?, dtype?, max_latency_ms?, max_tpot_ms?, percentile?}] -> cleaned rows;
    refuses negative, all-zero and unknown weights, and serving weights with no bound to compare at
    (none of their own and, given the tender's cleaned ``requirements``, none required)."""
    if not isinstance(rows, list) or not rows:
        raise ValidationError({"scoring": [gettext("Give at least one scoring weight.")]})
    errors, cleaned = [], []
    for position, row in enumerate(rows, 1):
        row = row if isinstance(row, dict) else {}
        metric = row.get("metric")
        try:
            if metric not in ScoreMetric.values:
                raise ValueError(
                    gettext("unknown metric %(metric)s; use one of: %(metrics)s")
                    % {"metric": repr(metric), "metrics": ", ".join(ScoreMetric.values)}
                )
            weight = row.get("weight")
            if isinstance(weight, bool):
                raise ValueError(gettext("the weight must be a number"))
            try:
                weight = float(weight)
            except (TypeError, ValueError):
                raise ValueError(
                    gettext("the weight must be a number, not %(weight)s") % {"weight": repr(weight)}
                ) from None
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(
                    gettext("a weight cannot be negative or infinite (%(weight)s)")
                    % {"weight": f"{weight:g}"}
                )
            item = {"metric": metric, "weight": weight}
            if metric in GEMM_METRICS and row.get("dtype") not in (None, ""):
                if row["dtype"] not in DTYPES:
                    raise ValueError(
                        gettext("unknown dtype %(dtype)s; use one of: %(dtypes)s")
                        % {"dtype": repr(row["dtype"]), "dtypes": ", ".join(DTYPES)}
                    )
                item["dtype"] = row["dtype"]
            if metric in MODEL_METRICS or metric in SERVING_METRICS:
                model, dtype = str(row.get("model") or ""), row.get("dtype")
                if not MODEL_NAME.match(model):
                    raise ValueError(gettext("a model metric needs the model's name"))
                if dtype not in DTYPES:
                    raise ValueError(
                        gettext("a model metric needs a dtype, one of: %(dtypes)s")
                        % {"dtypes": ", ".join(DTYPES)}
                    )
                item.update(model=model, dtype=dtype)
            if metric in SERVING_METRICS:
                _serving_bound_clean(item, row, requirements)
            cleaned.append(item)
        except ValueError as error:
            errors.append(
                gettext("Weight %(position)s (%(metric)s): %(error)s.")
                % {"position": position, "metric": metric, "error": error}
            )
    if not errors and not any(item["weight"] > 0 for item in cleaned):
        errors.append(gettext("All weights are zero: at least one must be above zero to rank anything."))
    if errors:
        raise ValidationError({"scoring": errors})
    return cleaned


def _wanted(item: dict[str, Any]) -> str:
    """The bound a serving weight compares at, in the record's English ("p90 <= 100 ms", "TPOT <= 200
    ms"; "latency <= 100 ms" at any percentile), as ServerBound.text writes a judged one."""
    name, limit = SERVING_BOUND_NAMES[item["metric"]], item.get(_bound_key(item["metric"]))
    if limit is None:
        return "no stated bound"
    percentile = item.get("percentile")
    at = f"p{round(percentile * 100, 6):g}" if percentile is not None else ""
    if name == "latency":
        return f"{at or 'latency'} <= {limit:g} ms"
    return f"{NAMES[name]} {at + ' ' if at else ''}<= {limit:g} ms"


def serving_bound_problem(*, item: dict[str, Any], figure: dict[str, Any]) -> str | None:
    """Why a certified Server figure does not count for a serving weight (None: it counts): the weight
    states no bound, the figure states none LoadGen judged, or LoadGen judged it by another kind of
    bound or a looser one (ServerBound.at_least_as_strict, on the bound the judge read from its summary)."""
    name, limit = SERVING_BOUND_NAMES[item["metric"]], item.get(_bound_key(item["metric"]))
    if limit is None:
        return say("ranking.serving_no_bound", name=NAMES[name], model=item["model"])
    bound = ServerBound.from_params(figure)
    if bound is None:
        return say("ranking.serving_unbounded")
    if name not in bound.bounds():
        return say("ranking.serving_other_kind", judged=bound.text(), name=NAMES[name])
    if not bound.at_least_as_strict(name, float(limit), item.get("percentile")):
        return say("ranking.serving_looser", judged=bound.text(), wanted=_wanted(item))
    return None


def _label(item: dict[str, Any]) -> str:
    if item["metric"] in SERVING_METRICS:
        return f"{item['metric']}[{item['model']} {item['dtype']} at {_wanted(item)}]"
    if item["metric"] in MODEL_METRICS:
        return f"{item['metric']}[{item['model']} {item['dtype']}]"
    if item.get("dtype"):
        return f"{item['metric']}[{item['dtype']}]"
    return item["metric"]


def metric_value(*, item: dict[str, Any], candidate: Candidate, currency: str) -> tuple[float | None, str]:
    """A candidate's figure for one weight, or None with the reason it is missing."""
    metric = item["metric"]
    if item.get("dtype") and metric in GEMM_METRICS:
        gemm = candidate.gemm.get(item["dtype"])
        tflops = gemm["value"] if gemm else None
    else:
        tflops = max((g["value"] for g in candidate.gemm.values()), default=None)
    if metric in SERVING_METRICS:
        figure = candidate.serving.get((item["model"], item["dtype"], metric))
        if figure is None:
            return None, say("scoring.no_serving", metric=metric, model=item["model"], dtype=item["dtype"])
        problem = serving_bound_problem(item=item, figure=figure)
        return (None, problem) if problem else (figure["value"], "")
    if metric in MODEL_METRICS:
        figure = candidate.model_figures.get((item["model"], item["dtype"], "throughput"))
        base, missing = (
            (figure["value"] if figure else None),
            say("scoring.no_throughput", model=item["model"]),
        )
    elif metric == ScoreMetric.MEMORY_GIB:
        return candidate.memory_gib, say("scoring.no_memory")
    else:
        missing = (
            say("scoring.no_gemm_dtype", dtype=item["dtype"]) if item.get("dtype") else say("scoring.no_gemm")
        )
        base = tflops
    if base is None:
        return None, missing
    if metric in (ScoreMetric.MEASURED_TFLOPS, ScoreMetric.MODEL_THROUGHPUT):
        return base, ""
    if metric in (ScoreMetric.TFLOPS_PER_WATT, ScoreMetric.MODEL_THROUGHPUT_PER_WATT):
        return (base / candidate.tdp_w, "") if candidate.tdp_w else (None, say("scoring.no_tdp"))
    if metric == ScoreMetric.TFLOPS_PER_GIB:
        return (
            (base / candidate.memory_gib, "")
            if candidate.memory_gib
            else (None, say("scoring.no_memory_figure"))
        )
    # Per price: only list prices in the tender's currency are comparable (no exchange rates here).
    if not candidate.list_price or candidate.currency != currency:
        return None, say("scoring.no_price", currency=currency)
    return base / (candidate.list_price / 1000), ""


def scoring_rank(
    *,
    rows: list[dict[str, Any]],
    candidates: dict[str, Candidate],
    scoring: list[dict[str, Any]],
    currency: str,
) -> str:
    """Set score, rank and the per-term breakdown on each eligible row; return the formula text."""
    weights = [item for item in scoring if item["weight"] > 0]
    total = sum(item["weight"] for item in weights)
    figures = []
    for row in rows:
        candidate = candidates[row["serial"]]
        figures.append([metric_value(item=item, candidate=candidate, currency=currency) for item in weights])
    best = [max((f[i][0] for f in figures if f[i][0] is not None), default=None) for i in range(len(weights))]
    for row, values in zip(rows, figures, strict=True):
        terms, score = [], 0.0
        for item, (value, why), top in zip(weights, values, best, strict=True):
            normalised = value / top if value is not None and top else 0.0
            score += item["weight"] * normalised
            terms.append(
                {
                    "metric": _label(item),
                    "weight": item["weight"],
                    "value": value,
                    "best": top,
                    "normalised": round(normalised, 6),
                    "missing": why if value is None else "",
                }
            )
        row["score"] = round(score / total, 6) if total else 0.0
        row["terms"] = terms
    rows.sort(key=lambda row: (-row["score"], row["chip"]["sku"], row["serial"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    numerator = " + ".join(f"{item['weight']:g} x {_label(item)}/max({_label(item)})" for item in weights)
    return f"score = ({numerator}) / {total:g}"
