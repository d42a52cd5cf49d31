"""Items of the result document's ``measurements`` list, built the same way by every suite."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runners.timing import TimingStats

KINDS = (
    "gemm",
    "bandwidth",
    "attention",
    "conv",
    "model_latency",
    "model_throughput",
    "ttft",
    "decode",
    "accuracy",
    "memory",
    "power",
    "energy",
)


def measurement(
    *,
    name: str,
    kind: str,
    unit: str,
    value: float | None,
    dtype: str | None = None,
    params: dict[str, Any] | None = None,
    stats: TimingStats | None = None,
    efficiency: float | None = None,
    flags: Iterable[str] = (),
) -> dict[str, Any]:
    """One measurement; ``value`` is None (with the flag ``unavailable``) where the device cannot tell.

    ``stats`` are always the per-call *time* statistics in seconds, whatever ``unit`` the
    value has (a throughput is derived from the median time).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown measurement kind {kind!r}")
    flags = list(flags)
    if value is None and "unavailable" not in flags:
        flags.append("unavailable")
    return {
        "name": name,
        "kind": kind,
        "dtype": dtype,
        "params": params or {},
        "unit": unit,
        "value": value,
        "stats": stats.to_dict() if stats is not None else None,
        "unstable": bool(stats.unstable) if stats is not None else False,
        "efficiency": efficiency,
        "flags": flags,
    }


def case_record(
    kernel: str,
    dtype: str,
    case: str,
    status: str,
    *,
    error_class: str | None = None,
    message: str | None = None,
    stats: dict[str, Any] | None = None,
    flops: int | None = None,
    bytes_moved: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``cases`` item in the result schema's shape (see runners/schema/result.schema.json).

    ``error_class`` is one of product_failure, infrastructure, unsupported, bad_spec; it is
    required for error and unsupported cases and must be None for passing ones.
    """
    return {
        "kernel": kernel,
        "dtype": dtype,
        "case": case,
        "edge": None,
        "status": status,
        "error_class": error_class,
        "message": message,
        "stats": stats,
        "output_digest": None,
        "shape": None,
        "flops": flops,
        "bytes": bytes_moved,
        **extra,
    }


def integrity_section(consistency: list[dict[str, Any]], caching: list[dict[str, Any]]) -> dict[str, Any]:
    """The document's ``integrity``: overall verdicts first, each check's items after.

    The caching figures at the top are those of the item with the largest speedup, the one
    closest to failing (or failing).
    """
    section: dict[str, Any] = {}
    if consistency:
        section["output_consistency"] = {
            "verdict": "fail" if any(c["verdict"] == "fail" for c in consistency) else "pass",
            "sampled": sum(c["sampled"] for c in consistency),
            "mismatches": sum(c["mismatches"] for c in consistency),
            "items": consistency,
        }
    if caching:
        worst = max(caching, key=lambda c: c["speedup_ratio"])
        section["caching"] = {
            "verdict": "fail" if any(c["verdict"] == "fail" for c in caching) else "pass",
            **{k: worst[k] for k in ("fresh_median_s", "repeated_median_s", "speedup_ratio", "threshold")},
            "items": caching,
        }
    return section


def measurement_table(document: dict[str, Any]) -> str:
    """Measurements, claim flags and integrity verdicts as a plain-text table for the CLI."""
    rows = [f"{'measurement':44s} {'dtype':9s} {'value':>12s} {'unit':10s} {'eff':>6s} {'n':>5s}  flags"]
    for item in document.get("measurements") or []:
        value = "n/a" if item["value"] is None else f"{item['value']:.4g}"
        eff = "" if item["efficiency"] is None else f"{item['efficiency']:.0%}"
        n = str(item["stats"]["n"]) if item["stats"] else ""
        flags = item["flags"] + (["unstable"] if item["unstable"] else [])
        rows.append(
            f"{item['name'][:44]:44s} {str(item['dtype']):9s} {value:>12s} {item['unit'][:10]:10s} "
            f"{eff:>6s} {n:>5s}  {','.join(flags)}"
        )
    for dtype, verdict in ((document.get("claims") or {}).get("dtypes") or {}).items():
        if verdict.get("declared_peak_tflops") is None:
            rows.append(f"claims {dtype}: no declared peak to check")
        else:
            rows.append(f"claims {dtype}: {', '.join(verdict['flags']) or 'consistent with the declaration'}")
    for check, verdict in (document.get("integrity") or {}).items():
        rows.append(f"integrity {check}: {verdict['verdict']}")
    return "\n".join(rows)
