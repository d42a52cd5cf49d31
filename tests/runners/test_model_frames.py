"""Issue 13: the model suite's timed frames (runners/model_suite/frames.py, ``FrameJudge``) and the replies
of more tensors than one frame holds (runners/device/protocol.py ``write_reply``).

The frames' end-to-end tests, with a hostile plugin in a real device process, are in
tests/runners/test_process_isolation.py; these drive the judge's side with the frames a device sends.
"""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
import torch

from runners.commitment import output_digest
from runners.device.protocol import (
    MAX_TENSORS,
    ProtocolError,
    merge_tensors,
    read_frame,
    write_frame,
    write_reply,
)
from runners.model_suite.frames import CommittingSampler, measurement_of
from runners.model_suite.timed_judge import MAX_SAMPLES_PER_RUN, FrameJudge, HostFrame, host_frame_check
from runners.timing import TimingPolicy, measure_with_output, stats_to_wire, summarize

BOUNDS = TimingPolicy(clock_ratio_min=0.5, clock_ratio_max=1.05)


def _read_reply(stream: io.BytesIO) -> tuple[dict, dict, int]:
    """A reply as the judge reads it (runners/device/client.py ``_request``), and how many frames it took."""
    ahead: dict = {}
    frames = 0
    while True:
        header, tensors = read_frame(stream)
        frames += 1
        if header.get("event") == "tensors":
            merge_tensors(ahead, tensors)
            continue
        return header, merge_tensors(ahead, tensors), frames


def test_a_reply_of_more_tensors_than_a_frame_holds_goes_in_several_frames():
    tensors = {f"t{i}": torch.full((3,), float(i)) for i in range(2 * MAX_TENSORS + 5)}
    stream = io.BytesIO()
    write_reply(stream, {"ok": True, "n": len(tensors)}, tensors)
    stream.seek(0)
    header, got, frames = _read_reply(stream)
    assert header == {"ok": True, "n": len(tensors)} and frames == 3
    assert list(got) == list(tensors) and all(torch.equal(got[k], v) for k, v in tensors.items())


def test_one_frame_of_more_than_max_tensors_is_refused_and_a_name_twice_across_frames_too():
    stream = io.BytesIO()
    write_frame(stream, {"ok": True}, {f"t{i}": torch.zeros(1) for i in range(MAX_TENSORS + 1)})
    stream.seek(0)
    with pytest.raises(ProtocolError, match="at most"):
        read_frame(stream)
    stream = io.BytesIO()
    write_frame(stream, {"event": "tensors"}, {"a": torch.zeros(1)})
    write_frame(stream, {"ok": True}, {"a": torch.ones(1)})
    stream.seek(0)
    with pytest.raises(ProtocolError, match="twice"):
        _read_reply(stream)


def test_the_model_suites_largest_reply_fits_the_reply_limit():
    """Per model and dtype a model suite's reply holds its accuracy output and its commitment copy, a
    decoder's generated tokens, and per timed dtype the TEST04 probe's outputs; the TEST01 samples no
    longer travel in it (the timed frames reveal them). Measured on AIA 1.2 Standard's plan (three
    models, three dtypes, two of them timed): bench figures in the session's report."""
    from runners.device.protocol import MAX_REPLY_TENSORS
    from runners.model_suite.performance import CACHING_FRESH_INPUTS

    per_model = 3 * 2 + 3 + 2 * (2 * CACHING_FRESH_INPUTS + 1)  # 3 dtypes, a decoder, 2 timed dtypes
    assert per_model < MAX_TENSORS  # one model's reply fits one frame
    assert 100 * per_model < MAX_REPLY_TENSORS  # a hundred models' fit one reply


def _committed(rounds: int) -> tuple[CommittingSampler, list[torch.Tensor]]:
    sampler = CommittingSampler(lambda out: out)
    outputs = [torch.full((1, 4), float(r)) for r in range(rounds)]
    for r, out in enumerate(outputs):
        sampler(r, out)
    return sampler, outputs


def _frame(judge: FrameJudge, sampler: CommittingSampler, reveal) -> dict:
    go, _ = judge.on_event({"event": "timed_start", "model": "m", "dtype": "float32", "group": "latency"}, {})
    assert go == {"op": "timed_go"}
    stats = summarize([1e-3] * 5)
    ask, _ = judge.on_event(
        {
            "event": "timed_end",
            "model": "m",
            "dtype": "float32",
            "group": "latency",
            "items": [0],
            "digests": sampler.digests,
            "timings": stats_to_wire(stats),
            "every_sample": [1e-3] * 5,
        },
        {},
    )
    assert ask["op"] == "timed_reveal"
    judge.on_event({"event": "timed_revealed"}, reveal(ask["rounds"]))
    return ask


def test_the_judge_draws_the_rounds_itself_after_the_digests_and_checks_each_revealed_output():
    sampler, outputs = _committed(40)
    draws = set()
    for _ in range(20):
        judge = FrameJudge()
        ask = _frame(judge, sampler, lambda rounds: {f"round{r}": outputs[r] for r in rounds})
        rounds = ask["rounds"]
        assert len(rounds) == MAX_SAMPLES_PER_RUN and rounds == sorted(set(rounds))
        draws.add(tuple(rounds))
        assert judge.problems == {}
        [frame] = judge.frames[("m", "float32")].values()
        assert frame.host_s > 0 and judge.drawn(("m", "float32")) == {"latency": rounds}
        samples = judge.evidence()[("m", "float32")].samples
        assert [s.label for s in samples] == [f"latency@round{r}" for r in rounds]
    assert len(draws) > 10  # the judge's secret, not anything the device sent


def test_a_revealed_output_other_than_the_committed_one_or_missing_is_a_problem():
    sampler, outputs = _committed(8)
    judge = FrameJudge()
    _frame(judge, sampler, lambda rounds: {f"round{r}": outputs[r] + 1 for r in rounds[1:]})
    problems = judge.problems[("m", "float32")]
    assert any("did not come back" in p for p in problems)
    assert sum("not the one its digest committed" in p for p in problems) == MAX_SAMPLES_PER_RUN - 1
    assert judge.evidence()[("m", "float32")].samples == []


def test_a_frame_opened_and_never_closed_is_a_problem():
    judge = FrameJudge()
    judge.on_event({"event": "timed_start", "model": "m", "dtype": "float32", "group": "b4"}, {})
    judge.close()
    assert "never closed" in judge.problems[("m", "float32")][0]


def _host_frame(every: list[float], host_s: float) -> HostFrame:
    return HostFrame("m", "float32", "latency", host_s, [0], ["0" * 64], None, every)


def test_the_reported_total_must_fit_the_judges_frame_within_the_program_bounds():
    every = [1e-3] * 50
    stats = replace(summarize(every), discarded=0)
    ratio, problem = host_frame_check(_host_frame(every, 0.06), stats, BOUNDS, label="m latency")
    assert problem is None and ratio == pytest.approx(0.05 / 0.06)
    ratio, problem = host_frame_check(_host_frame(every, 12 * 0.05), stats, BOUNDS, label="m latency")
    assert ratio == pytest.approx(1 / 12) and "on the judge's clock" in str(problem)
    ratio, problem = host_frame_check(_host_frame(every, 0.04), stats, BOUNDS, label="m latency")
    assert ratio == pytest.approx(1.25) and problem is not None  # more time than the frame lasted
    _, problem = host_frame_check(_host_frame(every, 0.6), stats, TimingPolicy(), label="m latency")
    assert problem is None  # no program bounds: reported, nothing refused (runners/timing.py step 7)


def test_the_figures_must_come_from_the_samples_of_the_timed_loop():
    every = [2e-3] * 10 + [1e-3] * 20
    window = replace(summarize(every[10:]), discarded=10)
    assert host_frame_check(_host_frame(every, 0.045), window, BOUNDS, label="x")[1] is None
    other = replace(summarize([1e-3] * 19 + [5e-4]), discarded=10)
    assert "not computed from" in str(
        host_frame_check(_host_frame(every, 0.045), other, BOUNDS, label="x")[1]
    )
    assert "did not come back" in str(host_frame_check(_host_frame([], 0.045), window, BOUNDS, label="x")[1])
    assert "not timed in a frame" in str(host_frame_check(None, window, BOUNDS, label="x")[1])


def test_measure_with_output_opens_the_frame_after_the_warm_up_and_gives_every_sample():
    calls: list[str] = []
    every: list[float] = []

    def fn() -> torch.Tensor:
        calls.append("call")
        return torch.ones(2)

    stats, _ = measure_with_output(
        fn, policy=TimingPolicy.quick(), before_timed=lambda: calls.append("frame"), every_sample=every
    )
    assert calls.count("frame") == 1 and calls.index("frame") >= TimingPolicy.quick().warmup_calls
    assert len(every) == stats.discarded + stats.n
    assert sorted(every[stats.discarded :]) == list(stats.samples)


def test_the_committing_sampler_digests_every_round_and_bounds_what_it_keeps():
    sampler, outputs = _committed(5)
    assert sampler.digests == [output_digest(o) for o in outputs] and len(sampler.kept) == 5
    small = CommittingSampler(lambda out: out, max_bytes=40)
    small(0, torch.zeros(8))
    with pytest.raises(RuntimeError, match="exceed"):
        small(1, torch.zeros(8))
    assert measurement_of("m", "b4") == "m throughput b4" and measurement_of("m", "ttft b1") == "m ttft b1"
