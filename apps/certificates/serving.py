"""A certificate's serving section, read from its signed payload: one row per model, scenario and figure.

The certified figures are the headline's `serving` list (LoadGen judged their runs VALID at the level's
settings, payload._serving_headline); the serving figures the judge refused are the headline's
`excluded` entries of a serving kind, each with its reason, so a scenario LoadGen judged INVALID is
shown as such, never as a figure. The certificate page (printed too) and the demo's log read these rows.
"""

from __future__ import annotations

from typing import Any

from apps.certificates import judge
from certification.recorded_text import say

SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")
SERVING_KINDS = (*judge.SERVING_FIGURE_KINDS, "energy")
INVALID_REASON = "LoadGen judged the run INVALID"
# Per kind, the order of a scenario's rows and the words of the demo's log (the page has its own, translated).
LABELS = {
    "serving_latency": "latency",
    "serving_qps": "QPS",
    "serving_throughput": "throughput",
    "serving_tokens": "token throughput",
    "serving_ttft": "TTFT",
    "serving_tpot": "TPOT",
    "energy": "energy",
}
PERCENTILE_KINDS = ("serving_latency", "serving_ttft", "serving_tpot")
# The Server figures stated at the bound their run was judged by.
BOUND_KINDS = ("serving_qps", "serving_tokens")


def _scenario_of(name: str) -> tuple[str, str]:
    """(model, scenario) from a runner measurement name ("<model> <Scenario> ..."), for the excluded
    entries of certificates issued before those entries named them."""
    words = name.split(" ")
    for position, word in enumerate(words):
        if word in SCENARIOS:
            return " ".join(words[:position]), word
    return name, ""


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _row(entry: dict[str, Any], *, certified: bool) -> dict[str, Any]:
    kind = str(entry.get("kind") or "")
    model, scenario = _scenario_of(str(entry.get("measurement") or ""))
    percentile, bound = _number(entry.get("percentile")), _number(entry.get("latency_bound_s"))
    percentile_pct = round(percentile * 100, 6) if percentile is not None else None
    at = f"p{percentile_pct:g}" if percentile_pct is not None else ""
    label = LABELS.get(kind, kind)
    if kind in PERCENTILE_KINDS and at:
        label = f"{at} {label}"
    ttft, tpot = _number(entry.get("ttft_bound_s")), _number(entry.get("tpot_bound_s"))
    server = (entry.get("scenario") or scenario) == "Server"
    token_latencies = server and judged_by_token_latencies(entry)
    if token_latencies:
        bound = None
    judged = judged_bound_text(entry) if server else ""
    bound_text = f" at {judged}" if judged and kind in BOUND_KINDS else ""
    result: str | None = "VALID"
    reason: str | None = None
    if not certified:
        # LoadGen's own verdict; a VALID run may still fall short of the level's settings (its reason).
        reason = entry.get("reason")
        result = (
            "INVALID" if reason == INVALID_REASON else "VALID" if entry.get("result_valid") is True else None
        )
    return {
        "model": entry.get("model") or model,
        "scenario": entry.get("scenario") or scenario,
        "kind": kind,
        "dtype": entry.get("dtype"),
        "value": entry.get("value") if certified else None,
        "unit": entry.get("unit"),
        "certified": certified,
        "result": result,
        "reason": reason,
        "label": label,
        "bound_text": bound_text,
        "percentile_pct": percentile_pct,
        "latency_bound_ms": round(bound * 1000, 6) if bound is not None else None,
        "token_latencies": token_latencies,
        "ttft_bound_ms": round(ttft * 1000, 6) if token_latencies and ttft is not None else None,
        "tpot_bound_ms": round(tpot * 1000, 6) if token_latencies and tpot is not None else None,
        "meter": entry.get("meter"),
        "loadgen_summary_sha256": entry.get("loadgen_summary_sha256"),
        # An Offline figure kept as the best of several VALID runs says so (payload._offline_runs).
        "best_of": runs if isinstance(runs := entry.get("best_of_valid_runs"), int) and runs > 1 else None,
    }


def judged_by_token_latencies(entry: dict[str, Any]) -> bool:
    """Whether a signed Server entry's run was judged in LoadGen's token-latency mode (a decoder: by
    TTFT and TPOT, not by a query latency bound). Certificates signed before session 25 carry no
    `token_latencies` and also state the level's latency bound, which LoadGen did not judge; their
    Server entries with both token bounds are read as what they were (the runner sets those bounds on
    a Server run only in token-latency mode)."""
    if entry.get("token_latencies") is not None:
        return entry.get("token_latencies") is True
    return _number(entry.get("ttft_bound_s")) is not None and _number(entry.get("tpot_bound_s")) is not None


def judged_bound_text(entry: dict[str, Any]) -> str:
    """What a signed Server entry's run was judged by, in the record's English: "p90 <= 100 ms", or
    "TTFT p90 <= 2000 ms and TPOT p90 <= 200 ms"; empty when the entry states no bound."""
    percentile = _number(entry.get("percentile"))
    if percentile is None:
        return ""
    at = f"p{round(percentile * 100, 6):g}"
    if judged_by_token_latencies(entry):
        ttft, tpot = _number(entry.get("ttft_bound_s")), _number(entry.get("tpot_bound_s"))
        if ttft is None or tpot is None:
            return ""
        return say(
            "judged.token_latencies", at=at, ttft=f"{ttft * 1000:g}", at_tpot=at, tpot=f"{tpot * 1000:g}"
        )
    bound = _number(entry.get("latency_bound_s"))
    return f"{at} <= {bound * 1000:g} ms" if bound is not None else ""


def serving_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The serving rows of a certificate payload (empty when it has no serving evidence), ordered by
    model, scenario (SingleStream, MultiStream, Server, Offline) and figure. A row that is not
    `certified` has no value, only its `reason` (`result` INVALID where LoadGen judged the run so)."""
    headline = payload.get("headline") or {}
    rows = [_row(figure, certified=True) for figure in headline.get("serving") or []]
    rows += [
        _row(entry, certified=False)
        for entry in headline.get("excluded") or []
        if entry.get("kind") in SERVING_KINDS
    ]
    kinds = list(LABELS)

    def order(row: dict[str, Any]) -> tuple[str, int, int, str]:
        scenario = row["scenario"]
        return (
            str(row["model"]),
            SCENARIOS.index(scenario) if scenario in SCENARIOS else len(SCENARIOS),
            kinds.index(row["kind"]) if row["kind"] in kinds else len(kinds),
            str(row.get("dtype") or ""),
        )

    return sorted(rows, key=order)
