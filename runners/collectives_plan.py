"""The collectives suite's plan: which collectives, dtypes and sizes a job may ask for, validated.

Kept apart from runners/collectives (which needs torch) so that the platform can check a program's
collectives plan at start-up without importing torch."""

from __future__ import annotations

from typing import Any

OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")
# nccl-tests doc/PERFORMANCE.md, "Bus bandwidth".
BUS_FACTOR_SOURCE = (
    "nccl-tests doc/PERFORMANCE.md (github.com/NVIDIA/nccl-tests): algbw = S/t, busbw = algbw * factor"
)


def bus_factor(op: str, world: int) -> float:
    if op == "all_reduce":
        return 2 * (world - 1) / world
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (world - 1) / world
    raise ValueError(f"unknown collective {op!r}")


# torch.distributed backend of each device backend; a PrivateUse1 plugin may set `distributed_backend`.
DIST_BACKENDS = {"cpu": "gloo", "cuda": "nccl", "npu": "hccl", "xpu": "xccl", "mlu": "cncl", "musa": "mccl"}
DTYPES = ("float32", "bfloat16", "float16")
DEFAULTS: dict[str, Any] = {
    "ops": list(OPS),
    "dtypes": ["float32", "bfloat16"],
    "sizes_bytes": [64 * 1024, 4 * 2**20],
    "warmup": 2,
    "iterations": 10,
    "world_size": None,  # default: the device count (two gloo processes on the CPU)
    "hidden": 7168,  # all_to_all rows: DeepSeek-V3's hidden size, one token per row
    "timeout_s": 600,
}
LIMITS = {"warmup": (0, 100), "iterations": (1, 1000), "world_size": (1, 1024), "hidden": (1, 65536)}
MAX_SIZE_BYTES = 2**31


class CollectivesSpecInvalid(ValueError):
    """The job's collectives options are not ones this suite can run."""


def settings(spec: dict[str, Any]) -> dict[str, Any]:
    """The suite's settings: spec options.collectives over DEFAULTS, validated."""
    given = dict((spec.get("options") or {}).get("collectives") or {})
    unknown = set(given) - set(DEFAULTS) - {"interconnect"}
    if unknown:
        raise CollectivesSpecInvalid(f"unknown collectives options {sorted(unknown)}")
    merged = {**DEFAULTS, **given}
    if not merged["ops"] or any(op not in OPS for op in merged["ops"]):
        raise CollectivesSpecInvalid(f"ops must be among {list(OPS)}")
    if not merged["dtypes"] or any(d not in DTYPES for d in merged["dtypes"]):
        raise CollectivesSpecInvalid(f"dtypes must be among {list(DTYPES)}")
    sizes = merged["sizes_bytes"]
    if not sizes or any(type(s) is not int or not 0 < s <= MAX_SIZE_BYTES for s in sizes):
        raise CollectivesSpecInvalid(f"sizes_bytes must be integers in 1..{MAX_SIZE_BYTES}")
    for key, (low, high) in LIMITS.items():
        value = merged[key]
        if value is not None and (type(value) is not int or not low <= value <= high):
            raise CollectivesSpecInvalid(f"{key} must be an integer in {low}..{high}")
    if merged.get("interconnect") is not None and (
        not isinstance(merged["interconnect"], str) or len(merged["interconnect"]) > 200
    ):
        raise CollectivesSpecInvalid("interconnect must be a string of at most 200 characters")
    timeout = merged["timeout_s"]
    if not isinstance(timeout, int | float) or not 1 <= timeout <= 7200:
        raise CollectivesSpecInvalid("timeout_s must be a number of seconds in 1..7200")
    return merged
