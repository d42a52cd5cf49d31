"""Integrity checks run inside performance runs, after MLPerf's compliance tests.

* Output consistency (TEST01): indices chosen from the challenge seed pick outputs that
  the timed run must log; each must match the accuracy run's output for the same input.
  A device that skips work or returns stale results while it is being timed fails.
* Caching (TEST04): the same work is timed on fresh inputs (each used once) and on one
  input repeated. A device that memoizes results runs the repeated input much faster: a
  speedup (fresh median / repeated median) above 1 + ``threshold`` (10 %) fails, provided
  the confidence intervals of the two medians do not overlap, so that timing noise alone
  cannot fail an honest device.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from runners.timing import TimedBackend, TimingStats, summarize, time_once

CACHING_THRESHOLD = 0.10


def sample_indices(seed: int | str, population: int, k: int, *, salt: str) -> list[int]:
    """``k`` distinct indices of ``population`` fixed by the challenge seed and a salt.

    The salt (suite and model name) makes separate draws independent; a vendor who does
    not know the seed cannot know which outputs will be checked.
    """
    digest = hashlib.sha256(f"{seed}:{salt}".encode()).digest()
    chooser = random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - sampling, not secrecy
    return sorted(chooser.sample(range(population), min(k, population)))


def default_tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol) between two device runs of the same input in ``dtype``.

    Different batch sizes may pick different kernels with a different reduction order, so
    the two runs are allowed the rounding of a few ulps of the dtype, not bitwise equality.
    """
    if dtype in (torch.bfloat16,):
        return 5e-2, 5e-2
    if dtype in (torch.float16,):
        return 1e-2, 1e-2
    if dtype.is_floating_point:
        return 1e-4, 1e-5
    return 0.0, 0.0


def output_consistency(
    accuracy: Mapping[Any, torch.Tensor],
    logged: Mapping[Any, torch.Tensor],
    *,
    dtype: torch.dtype,
    sampled: Sequence[Any],
) -> dict[str, Any]:
    """Verdict of TEST01: every sampled output logged in the timed run matches accuracy's."""
    rtol, atol = default_tolerance(dtype)
    mismatches: list[dict[str, Any]] = []
    worst = 0.0
    for key in sampled:
        expected, got = accuracy.get(key), logged.get(key)
        if expected is None or got is None:
            mismatches.append({"sample": str(key), "reason": "output not logged"})
            continue
        expected = expected.detach().to("cpu", torch.float64)
        got = got.detach().to("cpu", torch.float64)
        if expected.shape != got.shape:
            mismatches.append(
                {"sample": str(key), "reason": f"shape {tuple(got.shape)} != {tuple(expected.shape)}"}
            )
            continue
        diff = (got - expected).abs()
        finite = torch.isfinite(expected)
        if diff.numel():
            worst = max(worst, float(diff[finite].max()) if finite.any() else 0.0)
        close = torch.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
        if not bool(close.all()):
            mismatches.append(
                {
                    "sample": str(key),
                    "reason": "values differ",
                    "mismatch_fraction": float((~close).double().mean()),
                }
            )
    return {
        "verdict": "pass" if not mismatches else "fail",
        "sampled": len(sampled),
        "sample_ids": [str(key) for key in sampled],
        "mismatches": len(mismatches),
        "details": mismatches[:10],
        "max_abs_diff": worst,
        "rtol": rtol,
        "atol": atol,
    }


def caching_check(
    fresh_calls: Sequence[Callable[[], object]],
    repeated_call: Callable[[], object],
    *,
    backend: TimedBackend | None,
    threshold: float = CACHING_THRESHOLD,
    warmup: int = 2,
) -> dict[str, Any]:
    """Verdict of TEST04: each fresh call has its own never-seen input; the repeated call one input.

    Every fresh input is used exactly once, so a cache keyed on inputs (by address or by
    content) never hits on the fresh side and always hits on the repeated side. Calls are
    timed one by one and interleaved (fresh, repeated, fresh, ...) so that a noisy
    neighbour or a clock change affects both sides alike.
    """
    for _ in range(warmup):
        repeated_call()
    fresh_samples: list[float] = []
    repeated_samples: list[float] = []
    for call in fresh_calls:
        fresh_samples.append(time_once(call, backend))
        repeated_samples.append(time_once(repeated_call, backend))
    return caching_verdict(summarize(fresh_samples), summarize(repeated_samples), threshold=threshold)


def caching_verdict(
    fresh: TimingStats, repeated: TimingStats, *, threshold: float = CACHING_THRESHOLD
) -> dict[str, Any]:
    speedup = fresh.median / repeated.median if repeated.median > 0 else float("inf")
    separated = repeated.ci_high < fresh.ci_low
    failed = speedup > 1.0 + threshold and separated
    return {
        "verdict": "fail" if failed else "pass",
        "fresh_median_s": fresh.median,
        "repeated_median_s": repeated.median,
        "speedup_ratio": speedup,
        "threshold": threshold,
        "fresh_ci_s": [fresh.ci_low, fresh.ci_high],
        "repeated_ci_s": [repeated.ci_low, repeated.ci_high],
        "fresh_n": fresh.n,
        "repeated_n": repeated.n,
    }
