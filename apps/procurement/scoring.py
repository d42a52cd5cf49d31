"""Ranking of eligible candidates by a weighted score, and the formula shown beside it.

score = sum_i(w_i * x_i / max_eligible(x_i)) / sum_i(w_i). Each figure x_i is normalised by the best
eligible value, so every term lies in [0, 1] and weights mean what they say whatever the units.
A figure that a candidate lacks (no price in the tender's currency, no measurement of the model)
counts 0 for that term, and the row says why.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError

from apps.procurement.models import ScoreMetric
from apps.procurement.requirements import DTYPES, MODEL_NAME
from certification.recorded_text import say

if TYPE_CHECKING:
    from apps.procurement.eligibility import Candidate

MODEL_METRICS = {
    ScoreMetric.MODEL_THROUGHPUT,
    ScoreMetric.MODEL_THROUGHPUT_PER_WATT,
    ScoreMetric.MODEL_THROUGHPUT_PER_PRICE,
}
SERVING_METRICS = {ScoreMetric.SERVING_QPS, ScoreMetric.SERVING_TOKENS}
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


def scoring_clean(*, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """[{metric, weight, model?, dtype?}] -> cleaned rows; refuses negative, all-zero and unknown weights."""
    if not isinstance(rows, list) or not rows:
        raise ValidationError({"scoring": ["Give at least one scoring weight."]})
    errors, cleaned = [], []
    for position, row in enumerate(rows, 1):
        row = row if isinstance(row, dict) else {}
        metric = row.get("metric")
        try:
            if metric not in ScoreMetric.values:
                raise ValueError(f"unknown metric {metric!r}; use one of: {', '.join(ScoreMetric.values)}")
            weight = row.get("weight")
            if isinstance(weight, bool):
                raise ValueError("the weight must be a number")
            try:
                weight = float(weight)
            except (TypeError, ValueError):
                raise ValueError(f"the weight must be a number, not {weight!r}") from None
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"a weight cannot be negative or infinite ({weight:g})")
            item = {"metric": metric, "weight": weight}
            if metric in GEMM_METRICS and row.get("dtype") not in (None, ""):
                if row["dtype"] not in DTYPES:
                    raise ValueError(f"unknown dtype {row['dtype']!r}; use one of: {', '.join(DTYPES)}")
                item["dtype"] = row["dtype"]
            if metric in MODEL_METRICS or metric in SERVING_METRICS:
                model, dtype = str(row.get("model") or ""), row.get("dtype")
                if not MODEL_NAME.match(model):
                    raise ValueError("a model metric needs the model's name")
                if dtype not in DTYPES:
                    raise ValueError(f"a model metric needs a dtype, one of: {', '.join(DTYPES)}")
                item.update(model=model, dtype=dtype)
            cleaned.append(item)
        except ValueError as error:
            errors.append(f"Weight {position} ({metric}): {error}.")
    if not errors and not any(item["weight"] > 0 for item in cleaned):
        errors.append("All weights are zero: at least one must be above zero to rank anything.")
    if errors:
        raise ValidationError({"scoring": errors})
    return cleaned


def _label(item: dict[str, Any]) -> str:
    if item["metric"] in MODEL_METRICS or item["metric"] in SERVING_METRICS:
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
        return figure["value"], ""
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
