"""TEST04's caching probe timed in the judge's frames (issue 13), in the performance and model suites.

Without frames the probe (``runners.integrity.CachingProbe``) runs whole in the device process and
its timings are the device's word: a device that caches answers can report its fresh-input calls as
fast as its repeated ones, and TEST04 passes. With a device process every timed call of the probe is
a frame exchange of its own, inside the ``run_suite`` request, as the model suite's timed loops are
(runners/model_suite/frames.py):

1. after the untimed copy of the call's values into its buffers, the device process sends
   ``probe_start {probe, side}`` (``side`` ``"F"`` for a fresh input, ``"R"`` for the repeated one) and
   waits; the judge reads its host clock (``time.perf_counter_ns``) and answers ``probe_go``;
2. the device runs the one timed call (``runners.timing.time_once``) and sends ``probe_end`` with the
   seconds it reports and, for a fresh call, the sha256 digest of the call's judged output
   (``runners.commitment.output_digest`` of the probe's ``select``-ed part, on the host); the judge
   reads its clock again on receipt. No reply: the probe goes on.

The fresh outputs come back with the probe's evidence after the suite; the judge checks each against
the digest committed in its frame (an output computed after the frame closed, out of the judge's sight,
is not the one committed), and it draws which fresh outputs are judged against the float64 reference
of their values with its own secret (``secrets``), after every digest is in.

The check (``probe_frames_section``) has the model suite's bounds and refusal semantics: the program's
clock bounds (``clock_ratio_bounds``, AIA 1.2: 0.5-1.05, the same as the timed loops' frames and the
events/host-clock check of runners/timing.py step 7). For each side, the device's reported total of
that side's calls over the judge's total time around them must lie within the bounds, and no single
call may be reported longer than the upper bound of its own frame (the call happens inside it: only
clock skew can exceed it). Otherwise the probe's timings are refused and TEST04 fails, whatever the
speed-up computed from them. Per side rather than per call below the lower bound, because a frame's fixed
cost (two pipe messages, the fresh output's copy and digest) is paid per call and a loaded host's
scheduling spikes (p99 4.7 ms for an empty frame at load 12, bench/model_frames.py) would refuse an
honest short call; summed over a side's calls (12 fresh, about 36 repeated in the model suite) they
average out. A cache that answers repeated calls from memory and reports its fresh calls as fast must
report less than half of what the judge's clock saw on the fresh side (refused), or over-report single
calls beyond their frames (refused); what is left to it is a speed-up hidden within the bounds (at most
a factor 1 / 0.5 x 1.05, 2.1).

Measured by bench/test04_frames.py on the 2-core development host at load 10-26 (CPU, quick policy,
the seeded ResNet float32 and a float32 GEMM of 128): 10 honest model runs (483 probe frames) and 10
honest performance runs (334) had no side refused (side ratios 0.79-0.99, each call at most 1.000 of its
frame), while 101 single calls fell below half of their own frame (what a per-call lower bound would
have refused). A frame costs about one and a half pipe round trips (an empty one: median 45 us, p99
1.7 ms, 51 us of CPU across both processes, at load 11), some 4 ms of CPU for a model run's 48 frames.

What stays out of reach: a call shorter than a frame's fixed cost cannot be told from that cost. An
honest device whose probed call lasts a few microseconds (a small GEMM on a GPU) would read as
under-reported, so the lower bound counts only frames of at least the timing policy's ``block_min_s``
(1 ms in the certification policy, 0.2 ms in the quick one); a side with no such frame is not judged on
it and its timings stay the device's word (a cache gains at most that much per fresh call there). The
frames' cost on a GPU host is not measured yet.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from runners.commitment import output_digest

Send = Callable[[dict[str, Any], dict[str, torch.Tensor] | None], None]
Receive = Callable[[], tuple[dict[str, Any], dict[str, torch.Tensor]]]
SIDES = ("F", "R")


class ProbeFrames:
    """The device process's side of the probe's frames (see the module docstring)."""

    def __init__(self, send: Send, receive: Receive) -> None:
        self._send = send
        self._receive = receive

    def call(
        self,
        probe: str,
        side: str,
        timed: Callable[[], float],
        judged: Callable[[], torch.Tensor] | None = None,
    ) -> float:
        """One timed call in a frame: ``timed`` runs it and returns the seconds the device reports;
        ``judged`` (a fresh call) gives the output part whose digest is committed inside the frame."""
        self._send({"event": "probe_start", "probe": probe, "side": side}, None)
        header, _ = self._receive()
        if header.get("op") != "probe_go":
            raise RuntimeError(f"the judge answered {header.get('op')!r}, not 'probe_go'")
        seconds = timed()
        digest = output_digest(judged().detach().to("cpu").contiguous()) if judged is not None else None
        self._send(
            {"event": "probe_end", "probe": probe, "side": side, "seconds": seconds, "digest": digest}, None
        )
        return seconds


@dataclass
class ProbeFrame:
    """One timed probe call as the judge saw it: its clock around the frame, what the device reported."""

    side: str
    host_s: float
    seconds: Any
    digest: Any


@dataclass
class ProbeFrameJudge:
    """The judge's side of the probe's frames: answers ``probe_start`` with ``probe_go`` and times each
    frame on its own clock until ``probe_end``. ``frames`` by probe (its salt: ``performance:<name>:<dtype>``
    or ``model:<model>:<dtype>``), ``problems`` by probe (a frame opened twice, or closed as another)."""

    frames: dict[str, list[ProbeFrame]] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)
    _open: tuple[str, str, int] | None = None

    def on_event(
        self, event: dict[str, Any], now: int
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
        kind = event.get("event")
        if kind == "probe_start":
            self.abandon()
            self._open = (str(event.get("probe")), str(event.get("side")), time.perf_counter_ns())
            return {"op": "probe_go"}, {}
        if kind == "probe_end":
            if self._open is None:
                key = str(event.get("probe"))
                self.problems.setdefault(key, []).append("a probe call closed a frame it never opened")
                return None
            probe, side, started = self._open
            self._open = None
            if (event.get("probe"), event.get("side")) != (probe, side):
                self.problems.setdefault(probe, []).append("a probe call's frame closed as another call")
                return None
            frame = ProbeFrame(side, (now - started) / 1e9, event.get("seconds"), event.get("digest"))
            self.frames.setdefault(probe, []).append(frame)
        return None

    def abandon(self) -> None:
        """A probe frame opened and never closed (the device went on to something else)."""
        if self._open is not None:
            self.problems.setdefault(self._open[0], []).append(
                "a probe call's frame was opened and never closed"
            )
        self._open = None


def _steps(patterns: Sequence[str]) -> list[tuple[int, str, str]]:
    return [(i, step, pattern) for pattern in patterns for i, step in enumerate(pattern)]


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


def probe_frames_section(
    frames: Sequence[ProbeFrame] | None,
    problems: Sequence[str],
    *,
    fresh_samples: Sequence[float],
    repeated_samples: Sequence[float],
    steady_samples: Sequence[float],
    patterns: Sequence[str],
    fresh_outputs: Sequence[torch.Tensor],
    bounds: tuple[float, float] | None,
    min_frame_s: float = 0.0,
) -> tuple[dict[str, Any], str | None]:
    """The probe's evidence against the judge's frames: its ``host_frames`` section and why its timings
    are refused, if they are (None: they fit). The evidence must be what the frames saw: one frame per
    timed call in the order of the patterns, the same seconds, and each fresh output the one whose digest
    its frame committed. Then each side's reported total over the judge's time around it must lie within
    ``bounds`` (the program's clock bounds) and no call may exceed its own frame's upper bound. Without
    bounds the ratios are reported and nothing is refused (as runners/timing.py step 7).

    A side's ratio (the lower bound's reading) counts only the frames that lasted at least ``min_frame_s``
    on the judge's clock (the timing policy's ``block_min_s``: the shortest interval the harness trusts a
    clock over, runners/timing.py step 2). A shorter frame is mostly the frame's own fixed cost, so an
    honest call of a few microseconds (a small GEMM on a GPU) would read as under-reported. The device can
    only lengthen a frame, never shorten it, so a cache that computes its fresh answers for real still has
    them counted; a side with no frame that long is not judged on the lower bound (``{side}_ratio`` None,
    ``{side}_frames_judged`` 0), and what it reported stays the device's word, as without frames. Every
    frame stays under the upper bound of its own frame (``max_call_ratio``)."""
    frames = list(frames or [])
    found: list[str] = list(problems)
    sides = "".join(patterns)
    if not frames:
        found.append("the probe's calls were not timed in frames of the judge")
    elif "".join(f.side for f in frames) != sides:
        found.append(
            f"the judge's frames saw {len(frames)} probe calls, not the {len(sides)} of the patterns"
        )
    else:
        reported = {side: [_seconds(f.seconds) for f in frames if f.side == side] for side in SIDES}
        # The steady repeated calls: those after another repeated call (a pattern's first follows one).
        steady = [
            _seconds(frame.seconds)
            for frame, (i, step, pattern) in zip(frames, _steps(patterns), strict=True)
            if step == "R" and (i == 0 or pattern[i - 1] == "R")
        ]
        sent = {"F": list(fresh_samples), "R": list(repeated_samples), "S": list(steady_samples)}
        reported["S"] = steady
        for side, name in (("F", "fresh"), ("R", "repeated"), ("S", "steady")):
            if reported[side] != sent[side]:
                found.append(f"the probe's {name} timings are not the ones its frames reported")
        digests = [f.digest for f in frames if f.side == "F"]
        for index, (digest, output) in enumerate(zip(digests, fresh_outputs, strict=False)):
            if not isinstance(digest, str) or output_digest(output.detach().to("cpu").contiguous()) != digest:
                found.append(f"fresh output {index} is not the one its frame's digest committed")
                break
    section: dict[str, Any] = {
        "checked": len(frames),
        "refused": 0,
        "bounds": list(bounds) if bounds is not None else None,
        "fresh_ratio": None,
        "repeated_ratio": None,
        "max_call_ratio": None,
        "min_ratio": None,
        "max_ratio": None,
        "fresh_host_s": None,
        "repeated_host_s": None,
        "min_frame_s": min_frame_s,
        "fresh_frames_judged": 0,
        "repeated_frames_judged": 0,
    }
    if found:
        section["refused"] = 1
        section["details"] = found[:10]
        return section, found[0]
    ratios: dict[str, float] = {}
    for side, name in (("F", "fresh"), ("R", "repeated")):
        mine = [f for f in frames if f.side == side]
        section[f"{name}_host_s"] = math.fsum(f.host_s for f in mine)
        judged = [f for f in mine if f.host_s >= min_frame_s and f.host_s > 0]
        section[f"{name}_frames_judged"] = len(judged)
        if not judged:
            continue
        host = math.fsum(f.host_s for f in judged)
        ratios[name] = math.fsum(_seconds(f.seconds) or 0.0 for f in judged) / host
        section[f"{name}_ratio"] = ratios[name]
    calls = [(_seconds(f.seconds) or 0.0) / f.host_s if f.host_s > 0 else math.inf for f in frames]
    section["max_call_ratio"] = max(calls)
    section["min_ratio"] = min(ratios.values(), default=None)
    section["max_ratio"] = max([*ratios.values(), section["max_call_ratio"]])
    if bounds is None:
        return section, None
    low, high = bounds
    refused: list[str] = []
    for name, ratio in ratios.items():
        if not low <= ratio <= high:
            refused.append(
                f"the device reports its {name} probe calls at {ratio:.3f} of the judge's clock around them "
                f"(bounds {low:g}-{high:g})"
            )
    if section["max_call_ratio"] > high:
        refused.append(
            f"the device reports a probe call at {section['max_call_ratio']:.3f} of its frame on the judge's "
            f"clock (bound {high:g})"
        )
    section["refused"] = len(refused)
    if refused:
        section["details"] = refused
        return section, refused[0]
    return section, None


def with_frames(
    item: dict[str, Any],
    judge: ProbeFrameJudge | None,
    probe: str,
    evidence: Any,
    bounds: tuple[tuple[float, float] | None, float],
) -> dict[str, Any]:
    """A TEST04 item with its ``host_frames`` section; failed, with the reason, when the judge refuses the
        probe's timings (``probe_frames_section``). ``bounds``: the program's clock bounds (None: none given) and the
    timing policy's ``block_min_s``. ``judge`` None: the probe ran without frames (one process)."""
    if judge is None or evidence is None:
        return item
    section, problem = probe_frames_section(
        judge.frames.get(probe),
        judge.problems.get(probe, []),
        fresh_samples=evidence.fresh_samples,
        repeated_samples=evidence.repeated_samples,
        steady_samples=evidence.steady_samples,
        patterns=evidence.patterns,
        fresh_outputs=evidence.fresh_outputs,
        bounds=bounds[0],
        min_frame_s=bounds[1],
    )
    item = {**item, "host_frames": section}
    if problem is not None:
        item.update(verdict="fail", reason=f"TEST04 timings refused: {problem}")
    return item
