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
