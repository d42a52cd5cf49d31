"""Achieved performance against what the vendor declared: efficiency, roofline, claim flags.

The runner reports raw figures: each measurement's ``efficiency`` (achieved / declared), and
per dtype the best GEMM and bandwidth among the measurements that may feed a headline
(stable, not refused: ``runners.measurements.headline_eligible``), with the measurements
left out and why. Certification bars are the program's: the platform judges these figures
with its own thresholds. Flags are set only where the job spec carries the program's
ratios under ``options.claims``: ``below_claim`` when the best GEMM (or bandwidth) reaches
less than ``below_claim_ratio`` of the declaration, ``exceeds_physical`` when a measurement
is above ``exceeds_physical_ratio`` of it, which no honest measurement of an honest
declaration can do (or the timing was cheated).
"""

from __future__ import annotations

from typing import Any

from runners.dtypes import peak_key
from runners.measurements import best_gemm_per_dtype, headline_eligible

COMPUTE_KINDS = ("gemm", "conv", "attention")


def claim_thresholds(spec: dict[str, Any]) -> tuple[float | None, float | None]:
    """The program's ratios from the job spec, None where it sets none (then no flag is set)."""
    claims = (spec.get("options") or {}).get("claims") or spec.get("claims") or {}
    below, above = claims.get("below_claim_ratio"), claims.get("exceeds_physical_ratio")
    return (None if below is None else float(below)), (None if above is None else float(above))


def declared_peak_tflops(spec: dict[str, Any], dtype: str) -> float | None:
    peaks = (spec.get("declared") or {}).get("peak_tflops") or {}
    value = peaks.get(peak_key(dtype))  # the job spec keys declared peaks as the registry does
    return float(value) if value else None


def declared_bandwidth_gbs(spec: dict[str, Any]) -> float | None:
    value = (spec.get("declared") or {}).get("memory_bandwidth_gbs")
    return float(value) if value else None


def efficiency(item: dict[str, Any], spec: dict[str, Any]) -> float | None:
    """Achieved / declared for one measurement (FLOP/s for compute, bytes/s for bandwidth)."""
    params = item["params"]
    if item["kind"] == "bandwidth":
        declared = declared_bandwidth_gbs(spec)
        return params["achieved_gbs"] / declared if declared else None
    declared = declared_peak_tflops(spec, item["dtype"])
    return params["achieved_tflops"] / declared if declared else None


def apply_claims(items: list[dict[str, Any]], spec: dict[str, Any]) -> dict[str, Any]:
    """Sets ``efficiency`` and per-item flags; returns the per-dtype claim verdicts and roofline."""
    below, above = claim_thresholds(spec)
    for item in items:
        item["efficiency"] = efficiency(item, spec) if item.get("value") is not None else None
        if above is not None and item["efficiency"] is not None and item["efficiency"] > above:
            item["flags"].append("exceeds_physical")
    verdicts: dict[str, Any] = {}
    for dtype in sorted({i["dtype"] for i in items}):
        mine = [i for i in items if i["dtype"] == dtype]
        eligible = [i for i in mine if headline_eligible(i)]
        best_gemm = best_gemm_per_dtype(
            (i for i in eligible if i["kind"] == "gemm"),
            dtype=lambda i: i["dtype"],
            value=lambda i: i["value"],
        ).get(dtype)
        best_bw = max(
            (i for i in eligible if i["kind"] == "bandwidth"), key=lambda i: i["value"], default=None
        )
        gemm_eff = best_gemm["efficiency"] if best_gemm else None
        bw_eff = best_bw["efficiency"] if best_bw else None
        flags = set()
        if below is not None and gemm_eff is not None and gemm_eff < below:
            flags.add("below_claim")
        if below is not None and bw_eff is not None and bw_eff < below:
            flags.add("below_claim")
        if any("exceeds_physical" in i["flags"] for i in mine):
            flags.add("exceeds_physical")
        verdicts[dtype] = {
            "declared_peak_tflops": declared_peak_tflops(spec, dtype),
            "best_gemm_efficiency": gemm_eff,
            "best_bandwidth_efficiency": bw_eff,
            "best_gemm_tflops": best_gemm["value"] if best_gemm else None,
            "best_gemm": best_gemm["name"] if best_gemm else None,
            "best_gemm_significant_digits": best_gemm.get("significant_digits") if best_gemm else None,
            "best_bandwidth_gbs": best_bw["value"] if best_bw else None,
            "excluded": [
                {"name": i["name"], "kind": i["kind"], "reason": _exclusion(i)}
                for i in mine
                if i["kind"] in ("gemm", "bandwidth") and not headline_eligible(i)
            ],
            "flags": sorted(flags),
        }
    return {
        "below_claim_ratio": below,
        "exceeds_physical_ratio": above,
        "declared_bandwidth_gbs": declared_bandwidth_gbs(spec),
        "dtypes": verdicts,
        "roofline": roofline(items, spec),
    }


def _exclusion(item: dict[str, Any]) -> str:
    if item.get("value") is None:
        return ", ".join(f for f in item.get("flags") or () if f != "unstable") or "no value"
    return "unstable" if item.get("unstable") else ", ".join(item.get("flags") or ())


def roofline(items: list[dict[str, Any]], spec: dict[str, Any]) -> dict[str, Any]:
    """Per dtype: each compute measurement's arithmetic intensity, achieved and attainable TFLOP/s."""
    bandwidth = declared_bandwidth_gbs(spec)
    table: dict[str, Any] = {}
    for item in items:
        if item["kind"] not in COMPUTE_KINDS or item.get("value") is None:
            continue
        dtype, params = item["dtype"], item["params"]
        peak = declared_peak_tflops(spec, dtype)
        intensity = params["flops"] / params["bytes"] if params["bytes"] else None
        attainable = None
        if peak is not None and bandwidth is not None and intensity is not None:
            attainable = min(peak, intensity * bandwidth / 1e3)  # GB/s x FLOP/B = GFLOP/s
        entry = table.setdefault(
            dtype,
            {
                "peak_tflops": peak,
                "bandwidth_gbs": bandwidth,
                "ridge_flops_per_byte": peak * 1e3 / bandwidth if peak and bandwidth else None,
                "rows": [],
            },
        )
        entry["rows"].append(
            {
                "name": item["name"],
                "kind": item["kind"],
                "flops_per_byte": intensity,
                "achieved_tflops": params["achieved_tflops"],
                "attainable_tflops": attainable,
                "fraction_of_roofline": params["achieved_tflops"] / attainable if attainable else None,
            }
        )
    return table
