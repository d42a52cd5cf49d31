"""Whether a LoadGen Server run sustained the rate it was offered, read from LoadGen's own summary.

LoadGen judges a Server run VALID when the latency percentile met the bound over the run. With short
runs (AIA 1.2's minimum durations are 2 to 10 s; MLPerf's are 600 s) an overloaded system under test
only builds a queue for those seconds: its first queries are fast, the bound (or a loose TTFT bound in
token-latency mode) is still met, and LoadGen says VALID at a rate the device cannot sustain. LoadGen's
summary says so itself, in two figures of every Server run (loadgen/results.cc):

- ``Scheduled samples per second`` = (samples - 1) / the time the last query was scheduled: the
  Poisson rate actually offered;
- ``Completed samples per second`` = (samples - 1) / the time the last sample was completed.

A system that keeps up finishes the last queries one query latency after they were scheduled, so the
completed rate trails the scheduled one only by that drain; an overloaded one completes at its own
capacity, so completed / scheduled falls to capacity / offered rate (the first H200 run of
bench/device_check.sh: llama Server 711 scheduled, 380 completed samples/s, LoadGen VALID; its
Offline throughput was 410 samples/s). MLPerf itself reports the completed rate for Server since
v4.1 (the submission checker's ``RESULT_FIELD_NEW``: ``result_completed_samples_per_sec``).

Two consistency checks follow, applied by the runner (its Server search counts a step VALID only
when it sustained its rate) and by the platform's judge (apps/certificates/judge.py, from the
summary text the document carries and digests), under every program version:

1. **Sustained rate**: completed >= (1 - SUSTAINED_RATE_TOLERANCE) x scheduled.
2. **Not above Offline**: the Server rate (the run's target QPS and its scheduled rate) is at most
   (1 + SUSTAINED_RATE_TOLERANCE) x the same model's Offline samples per second (Offline is the
   maximum throughput by construction: every sample is available at once).

No Django here: the runner and the platform import this module alike.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

# The allowed shortfall of LoadGen's completed rate against its scheduled rate, and the allowed excess
# of a Server rate over the same model's Offline throughput (a fraction).
SUSTAINED_RATE_TOLERANCE = 0.10
SUSTAINED_RATE_TOLERANCE_SOURCE = (
    "A system under test that keeps up completes its last query one query latency after it was "
    "scheduled: at AIA 1.2's Server bounds (100 ms at Baseline, 50 ms above) over its minimum "
    "durations (2 s at Baseline, 5 and 10 s above) that drain costs at most 0.1 / 2.1 = 4.8% of the "
    "completed rate, and 10% is twice that; an overloaded one completes at its capacity, so a Server "
    "figure that passes overstates the sustained rate by at most 1 / 0.9 = 1.11x, and a Server rate "
    "more than 10% above the model's Offline throughput is refused alike. Measured (runner defaults, "
    "this 2-core CPU, load 9-12): resnet steps below capacity completed 99.8% of their scheduled rate, "
    "overloaded ones 64-74%; the llama decoder completed 33-36 samples/s at every offered rate from 46 "
    "to 117 (28-78%), its capacity, while LoadGen called three of those steps VALID. MLPerf reports the "
    "completed rate for Server since v4.1 (submission checker, RESULT_FIELD_NEW)."
)

_NUMBER = r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_FIELDS = {
    "scenario": re.compile(r"^Scenario\s*:\s*(\S+)\s*$", re.MULTILINE),
    "scheduled": re.compile(rf"^Scheduled samples per second\s*:\s*{_NUMBER}\s*$", re.MULTILINE),
    "completed": re.compile(rf"^Completed samples per second\s*:\s*{_NUMBER}\s*$", re.MULTILINE),
    "offline": re.compile(rf"^Samples per second\s*:\s*{_NUMBER}\s*$", re.MULTILINE),
    "target_qps": re.compile(rf"^target_qps\s*:\s*{_NUMBER}\s*$", re.MULTILINE),
    "validity": re.compile(r"^Result is\s*:\s*(\S+)\s*$", re.MULTILINE),
}


def summary_figures(text: str) -> dict[str, Any]:
    """The figures of an ``mlperf_log_summary.txt`` these checks read (None where absent): scenario,
    scheduled and completed samples/s (Server), samples/s (Offline), target_qps, validity."""
    out: dict[str, Any] = {}
    for key, pattern in _FIELDS.items():
        match = pattern.search(text or "")
        if match is None:
            out[key] = None
        elif key in ("scenario", "validity"):
            out[key] = match.group(1)
        else:
            out[key] = float(match.group(1))
    return out


def summary_matches(text: Any, sha256: Any) -> bool:
    """Whether ``text`` is the summary whose sha256 the document records."""
    if not isinstance(text, str) or not isinstance(sha256, str):
        return False
    return hashlib.sha256(text.encode("utf-8")).hexdigest() == sha256


def unsustained_problem(text: str, *, tolerance: float = SUSTAINED_RATE_TOLERANCE) -> str | None:
    """Why a Server run's summary shows a rate the system did not sustain, or None when it did."""
    figures = summary_figures(text)
    scheduled, completed = figures["scheduled"], figures["completed"]
    if figures["scenario"] != "Server":
        return f"the LoadGen summary is not a Server run's ({figures['scenario']})"
    if scheduled is None or completed is None or scheduled <= 0:
        return "the LoadGen summary states no scheduled and completed samples per second"
    if completed < (1 - tolerance) * scheduled:
        return (
            f"rate not sustained: LoadGen completed {completed:.4g} samples/s of {scheduled:.4g} scheduled "
            f"({completed / scheduled:.0%}; at least {1 - tolerance:.0%} required)"
        )
    return None


def above_offline_problem(
    server_text: str, offline_text: str, *, tolerance: float = SUSTAINED_RATE_TOLERANCE
) -> str | None:
    """Why a Server run's rate cannot be true next to the same model's Offline run, or None: Offline
    is the maximum throughput, so neither the Server target nor its scheduled rate may exceed it by
    more than the tolerance."""
    server, offline = summary_figures(server_text), summary_figures(offline_text)
    if offline["scenario"] != "Offline" or not offline["offline"] or offline["offline"] <= 0:
        return "no Offline samples per second to bound the Server rate"
    rate = max(r for r in (server["target_qps"], server["scheduled"], 0.0) if r is not None)
    if rate > (1 + tolerance) * offline["offline"]:
        return (
            f"Server rate {rate:.4g} QPS above the model's Offline throughput {offline['offline']:.4g} "
            f"samples/s by more than {tolerance:.0%}"
        )
    return None
