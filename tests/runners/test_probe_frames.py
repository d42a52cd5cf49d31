"""TEST04's probe calls in the judge's frames (runners/probe_frames.py): the judge's side and its check.

The device process's side runs for real in tests/runners/test_process_isolation.py (honest CPU and the
hostile plugin's ``cheat_timed: "cache"``); here the judge's frame bookkeeping and the check of a probe's
evidence against its frames, on figures made for each case."""

from __future__ import annotations

import torch

from runners.commitment import output_digest
from runners.probe_frames import ProbeFrame, ProbeFrameJudge, probe_frames_section

BOUNDS = (0.5, 1.05)  # AIA 1.2 clock_ratio_bounds (apps/runs/programs/aia-1.2.json)


def _evidence(patterns: list[str], fresh_s: float, repeated_s: float, host_s: float):
    """Frames and the matching evidence of a probe whose every call took ``host_s`` on the judge's clock."""
    frames: list[ProbeFrame] = []
    outputs: list[torch.Tensor] = []
    fresh: list[float] = []
    repeated: list[float] = []
    steady: list[float] = []
    for pattern in patterns:
        for i, step in enumerate(pattern):
            if step == "F":
                out = torch.full((2, 3), float(len(outputs)))
                outputs.append(out)
                fresh.append(fresh_s)
                frames.append(ProbeFrame("F", host_s, fresh_s, output_digest(out)))
            else:
                repeated.append(repeated_s)
                if i == 0 or pattern[i - 1] == "R":
                    steady.append(repeated_s)
                frames.append(ProbeFrame("R", host_s, repeated_s, None))
    evidence = {
        "fresh_samples": fresh,
        "repeated_samples": repeated,
        "steady_samples": steady,
        "patterns": patterns,
        "fresh_outputs": outputs,
    }
    return frames, evidence


PATTERNS = ["RRFR", "RFRRRF", "FRRR"]


def test_an_honest_probe_fits_its_frames():
    frames, evidence = _evidence(PATTERNS, 0.009, 0.009, 0.010)
    section, problem = probe_frames_section(frames, [], bounds=BOUNDS, **evidence)
    assert problem is None, section
    assert section["checked"] == 14 and section["refused"] == 0
    assert abs(section["fresh_ratio"] - 0.9) < 1e-9 and abs(section["repeated_ratio"] - 0.9) < 1e-9


def test_fresh_calls_reported_faster_than_the_judges_clock_saw_are_refused():
    frames, evidence = _evidence(PATTERNS, 0.001, 0.009, 0.010)
    section, problem = probe_frames_section(frames, [], bounds=BOUNDS, **evidence)
    assert problem is not None and "fresh probe calls at 0.100" in problem
    assert section["refused"] == 1 and section["min_ratio"] < 0.5
    # Without bounds (a library run) the ratio is reported and nothing is refused.
    section, problem = probe_frames_section(frames, [], bounds=None, **evidence)
    assert problem is None and section["fresh_ratio"] < 0.5


def test_frames_shorter_than_the_policys_block_are_not_read_as_under_reporting():
    """An honest call of 5 us in a 50 us frame (a small GEMM on a GPU: the frame's own cost dominates)
    reads 0.1 of its frame; the lower bound counts only frames of at least the policy's block_min_s,
    which the device can lengthen but never shorten, so under-reported long frames are still refused."""
    frames, evidence = _evidence(PATTERNS, 5e-6, 5e-6, 50e-6)
    _, problem = probe_frames_section(frames, [], bounds=BOUNDS, **evidence)
    assert problem is not None and "0.100" in problem  # without the floor: an honest GPU refused
    section, problem = probe_frames_section(frames, [], bounds=BOUNDS, min_frame_s=1e-3, **evidence)
    assert problem is None, section
    assert section["fresh_ratio"] is None and section["fresh_frames_judged"] == 0
    assert section["repeated_ratio"] is None and section["repeated_frames_judged"] == 0
    assert section["max_call_ratio"] == 0.1
    # A cache whose fresh answers are computed for real (long frames) and reported as short is refused.
    frames, evidence = _evidence(PATTERNS, 5e-6, 5e-6, 0.010)
    section, problem = probe_frames_section(frames, [], bounds=BOUNDS, min_frame_s=1e-3, **evidence)
    assert problem is not None and section["fresh_frames_judged"] == 4
    # Only the long frames of a side are counted: here the short repeated ones are left out.
    frames, evidence = _evidence(PATTERNS, 0.009, 5e-6, 0.010)
    frames = [f if f.side == "F" else ProbeFrame("R", 50e-6, f.seconds, None) for f in frames]
    section, problem = probe_frames_section(frames, [], bounds=BOUNDS, min_frame_s=1e-3, **evidence)
    assert problem is None, section
    assert abs(section["fresh_ratio"] - 0.9) < 1e-9 and section["repeated_ratio"] is None


def test_a_call_reported_longer_than_its_own_frame_is_refused():
    """Shifting time from some fresh calls to others keeps the side's total but not each call's frame."""
    frames, evidence = _evidence(PATTERNS, 0.009, 0.009, 0.010)
    frames[2].seconds = evidence["fresh_samples"][0] = 0.015
    section, problem = probe_frames_section(frames, [], bounds=BOUNDS, **evidence)
    assert problem is not None and "of its frame" in problem and section["max_call_ratio"] > 1.05


def test_evidence_that_is_not_what_the_frames_saw_is_refused():
    frames, evidence = _evidence(PATTERNS, 0.009, 0.009, 0.010)
    forged = {**evidence, "steady_samples": [x / 10 for x in evidence["steady_samples"]]}
    _, problem = probe_frames_section(frames, [], bounds=BOUNDS, **forged)
    assert problem == "the probe's steady timings are not the ones its frames reported"
    forged = {**evidence, "fresh_samples": [x / 10 for x in evidence["fresh_samples"]]}
    _, problem = probe_frames_section(frames, [], bounds=BOUNDS, **forged)
    assert problem == "the probe's fresh timings are not the ones its frames reported"
    # A fresh output other than the one whose digest its frame committed (computed after the frame).
    outputs = list(evidence["fresh_outputs"])
    outputs[1] = outputs[1] + 1
    section, problem = probe_frames_section(
        frames, [], bounds=BOUNDS, **{**evidence, "fresh_outputs": outputs}
    )
    assert problem == "fresh output 1 is not the one its frame's digest committed"
    assert section["refused"] == 1 and section["fresh_ratio"] is None
    # Calls the frames never saw, or no frames at all.
    _, problem = probe_frames_section(frames[:-1], [], bounds=BOUNDS, **evidence)
    assert problem is not None and "not the 14 of the patterns" in problem
    _, problem = probe_frames_section(None, [], bounds=BOUNDS, **evidence)
    assert problem == "the probe's calls were not timed in frames of the judge"


def test_the_judge_answers_and_times_each_probe_frame():
    judge = ProbeFrameJudge()
    assert judge.on_event({"event": "probe_start", "probe": "model:m:float32", "side": "F"}, 0) == (
        {"op": "probe_go"},
        {},
    )
    end = {"event": "probe_end", "probe": "model:m:float32", "side": "F", "seconds": 1e-3, "digest": "ab"}
    assert judge.on_event(end, 10**18) is None  # no reply: the probe goes on
    [frame] = judge.frames["model:m:float32"]
    assert frame.side == "F" and frame.seconds == 1e-3 and frame.digest == "ab" and frame.host_s > 0
    # A frame closed that was never opened, one closed as another call, one left open.
    judge.on_event(end, 0)
    judge.on_event({"event": "probe_start", "probe": "model:m:float32", "side": "R"}, 0)
    judge.on_event(end, 0)
    judge.on_event({"event": "probe_start", "probe": "model:m:float32", "side": "R"}, 0)
    judge.abandon()
    assert judge.problems["model:m:float32"] == [
        "a probe call closed a frame it never opened",
        "a probe call's frame closed as another call",
        "a probe call's frame was opened and never closed",
    ]
    assert len(judge.frames["model:m:float32"]) == 1
