"""Achieved performance against what the vendor declared: efficiency, roofline, claim flags.

A chip is flagged ``below_claim`` for a dtype when its best GEMM reaches less than
``below_claim_ratio`` (default 0.5) of the declared peak, or its best bandwidth run less than
that share of the declared memory bandwidth; ``exceeds_physical`` when any measurement is
above ``exceeds_physical_ratio`` (default 1.10) of the declared figure, which no honest
measurement of an honest declaration can do (or the timing was cheated). Both ratios can be
set in the job spec under ``options.claims``.
"""

from __future__ import annotations

from typing import Any

# The job spec's keys for declared peak TFLOP/s per dtype.
PEAK_KEYS = {
    "float32": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "int8": "int8",
    "float8_e4m3fn": "fp8",
    "float8_e5m2": "fp8",
}
COMPUTE_KINDS = ("gemm", "conv", "attention")


def claim_thresholds(spec: dict[str, Any]) -> tuple[float, float]:
    claims = (spec.get("options") or {}).get("claims") or spec.get("claims") or {}
    return float(claims.get("below_claim_ratio", 0.5)), float(claims.get("exceeds_physical_ratio", 1.10))


def declared_peak_tflops(spec: dict[str, Any], dtype: str) -> float | None:
    peaks = (spec.get("declared") or {}).get("peak_tflops") or {}
    value = peaks.get(PEAK_KEYS.get(dtype, dtype))
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
        item["efficiency"] = efficiency(item, spec)
        if item["efficiency"] is not None and item["efficiency"] > above:
            item["flags"].append("exceeds_physical")
    verdicts: dict[str, Any] = {}
    for dtype in sorted({i["dtype"] for i in items}):
        mine = [i for i in items if i["dtype"] == dtype and i["efficiency"] is not None]
        gemms = [i["efficiency"] for i in mine if i["kind"] == "gemm"]
        bandwidth = [i["efficiency"] for i in mine if i["kind"] == "bandwidth"]
        flags = set()
        if gemms and max(gemms) < below:
            flags.add("below_claim")
        if bandwidth and max(bandwidth) < below:
            flags.add("below_claim")
        if any("exceeds_physical" in i["flags"] for i in mine):
            flags.add("exceeds_physical")
        verdicts[dtype] = {
            "declared_peak_tflops": declared_peak_tflops(spec, dtype),
            "best_gemm_efficiency": max(gemms) if gemms else None,
            "best_bandwidth_efficiency": max(bandwidth) if bandwidth else None,
            "flags": sorted(flags),
        }
    return {
        "below_claim_ratio": below,
        "exceeds_physical_ratio": above,
        "declared_bandwidth_gbs": declared_bandwidth_gbs(spec),
        "dtypes": verdicts,
        "roofline": roofline(items, spec),
    }


def roofline(items: list[dict[str, Any]], spec: dict[str, Any]) -> dict[str, Any]:
    """Per dtype: each compute measurement's arithmetic intensity, achieved and attainable TFLOP/s."""
    bandwidth = declared_bandwidth_gbs(spec)
    table: dict[str, Any] = {}
    for item in items:
        if item["kind"] not in COMPUTE_KINDS:
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
