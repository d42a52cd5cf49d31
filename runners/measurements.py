"""Items of the result document's ``measurements`` list, built the same way by every suite."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runners.timing import TimingStats

KINDS = ("gemm", "bandwidth", "attention", "conv", "model_latency", "model_throughput", "ttft",
         "decode", "accuracy", "memory", "power", "energy")


def measurement(*, name: str, kind: str, unit: str, value: float | None, dtype: str | None = None,
                params: dict[str, Any] | None = None, stats: TimingStats | None = None,
                efficiency: float | None = None, flags: Iterable[str] = ()) -> dict[str, Any]:
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


def case_record(kernel: str, dtype: str, case: str, status: str, *, error_class: str | None = None,
                message: str | None = None, stats: dict[str, Any] | None = None, flops: int | None = None,
                bytes_moved: int | None = None, **extra: Any) -> dict[str, Any]:
    """A ``cases`` item in the result schema's shape (see runners/schema/result.schema.json).

    ``error_class`` is one of product_failure, infrastructure, unsupported, bad_spec; it is
    required for error and unsupported cases and must be None for passing ones.
    """
    return {
        "kernel": kernel, "dtype": dtype, "case": case, "edge": None, "status": status,
        "error_class": error_class, "message": message, "stats": stats, "output_digest": None,
        "shape": None, "flops": flops, "bytes": bytes_moved, **extra,
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
