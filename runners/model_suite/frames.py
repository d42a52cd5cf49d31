"""The model suite's timed runs in the judge's frames (issue 13): the device side.

With a device process (runners/device) each timed measurement of the model suite (latency, each
throughput batch, each decoder's TTFT and decode step) is a frame exchange of its own, inside the
``run_suite`` request:

1. after the measurement's warm-up the device process sends ``timed_start`` and waits;
2. the judge reads its host clock (``time.perf_counter_ns``) and answers ``timed_go``;
3. the device runs the timed loop only (``runners.timing.measure_with_output``'s rounds), keeping the
   TEST01 part of every round's output (``CommittingSampler``: the rows or logits the TEST01 check
   judges), and sends ``timed_end`` with the sha256 digest of every round's kept output
   (``runners.commitment.output_digest``, the commitment's own), the measurement's raw timings and
   every sample of the loop; the judge reads its clock again on receipt;
4. the judge draws, with its own secret (``secrets``, never the challenge the device knows), which
   rounds to check and asks for them (``timed_reveal``);
5. the device answers ``timed_revealed`` with those rounds' outputs (and, for a decoder, the untimed
   output of the same call and the first token its decode step continued), then forgets them.

The judge (runners/model_suite/timed_judge.py ``FrameJudge``) checks that every revealed output has
the digest committed for its round and judges it as TEST01; it also checks that the device's reported
total of the timed loop fits inside its own frame time (the clock bounds: ``rederive_timed``).

Memory: the device keeps the TEST01 part of every round of the current measurement until the judge
has asked (at most ``MAX_KEPT_BYTES``; a run that would keep more raises, which fails that model and
dtype's timed run rather than weakening the draw). The parts are small: one item's output for the
latency run, ``TEST01_SAMPLES`` items' for each throughput batch, one next-token logit row per prompt
for a decoder's TTFT and decode step. A round lasts 20 ms or ``min_samples`` blocks of at least
``block_min_s``, whichever is shorter (runners/timing.py step 2: 7 ms in the certification policy), so
a certification measurement (``max_time_s`` 2 s) has about 300 rounds at most: the largest part, a decode step of 4 prompts over a 256k-token vocabulary in
float32, 4 MiB a round, stays near 1.2 GiB.

The frame check's bounds are the program's clock cross-check bounds (``clock_ratio_bounds``, AIA 1.2:
0.5-1.05, the same bar as events against the host clock in runners/timing.py step 7). The device's calls
all lie inside the frame, so its total cannot exceed the frame but by clock skew (honest maximum measured
0.9998); the frame adds to the timed loop two pipe messages (an empty frame's round trip: median 89 us,
p99 4.7 ms, on the 2-core development host at load 12) and the harness's between-round work (the stop
rule, the TEST01 copy and its digest). Measured by bench/model_frames.py on that host at load 13-17.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from runners.commitment import output_digest
from runners.probe_frames import ProbeFrames
from runners.timing import TimingStats, stats_to_wire

# The most the device process keeps of one measurement's rounds until the judge's reveal: rounds are
# at most ``TimingPolicy.max_samples`` (one sample per round at least), each a few rows of outputs.
MAX_KEPT_BYTES = 4 << 30

Send = Callable[[dict[str, Any], dict[str, torch.Tensor] | None], None]
Receive = Callable[[], tuple[dict[str, Any], dict[str, torch.Tensor]]]


def measurement_of(model: str, group: str) -> str:
    """The measurement a TEST01 sample group belongs to: ``latency`` -> ``<model> latency``,
    ``b4`` -> ``<model> throughput b4``, ``ttft b1`` / ``decode b1`` -> ``<model> ttft b1`` / ..."""
    if group.startswith("b") and group[1:].isdigit():
        return f"{model} throughput {group}"
    return f"{model} {group}"


class CommittingSampler:
    """A ``RoundHook`` keeping the TEST01 part of every round's output (``select``-ed, on the host) and
    its digest, for the judge to draw from after the measurement."""

    def __init__(self, select: Callable[[Any], torch.Tensor], *, max_bytes: int = MAX_KEPT_BYTES) -> None:
        self._select = select
        self._max_bytes = max_bytes
        self.kept: list[torch.Tensor] = []
        self.digests: list[str] = []
        self.nbytes = 0

    def __call__(self, round_index: int, output: object) -> None:
        if round_index != len(self.kept):
            raise RuntimeError(f"round {round_index} out of order")
        tensor = self._select(output).detach().to("cpu").contiguous()
        self.nbytes += tensor.numel() * tensor.element_size()
        if self.nbytes > self._max_bytes:
            raise RuntimeError(
                f"the timed run's outputs exceed the {self._max_bytes} bytes kept for the judge's draw"
            )
        self.kept.append(tensor)
        self.digests.append(output_digest(tensor))


class TimedFrames:
    """The device process's side of the timed frames (see the module docstring)."""

    def __init__(self, send: Send, receive: Receive) -> None:
        self._send = send
        self._receive = receive
        # TEST04's probe calls, each in a frame of its own (runners/probe_frames.py).
        self.probe = ProbeFrames(send, receive)

    def _expect(self, op: str) -> dict[str, Any]:
        header, _ = self._receive()
        if header.get("op") != op:
            raise RuntimeError(f"the judge answered {header.get('op')!r}, not {op!r}")
        return header

    def start(self, model: str, dtype: str, group: str) -> None:
        """After the warm-up: the judge starts its clock when it answers."""
        self._send({"event": "timed_start", "model": model, "dtype": dtype, "group": group}, None)
        self._expect("timed_go")

    def finish(
        self,
        model: str,
        dtype: str,
        group: str,
        items: list[int],
        stats: TimingStats,
        every_sample: list[float],
        sampler: CommittingSampler,
        extra: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """After the timed loop: the digests and timings (the judge stops its clock on receipt), then
        the rounds the judge draws, with ``extra`` (a decoder's untimed output and first token)."""
        self._send(
            {
                "event": "timed_end",
                "model": model,
                "dtype": dtype,
                "group": group,
                "items": list(items),
                "digests": sampler.digests,
                "timings": stats_to_wire(stats),
                "every_sample": list(every_sample),
            },
            None,
        )
        rounds = self._expect("timed_reveal").get("rounds")
        tensors: dict[str, torch.Tensor] = {}
        for r in rounds if isinstance(rounds, list) else []:
            if isinstance(r, int) and not isinstance(r, bool) and 0 <= r < len(sampler.kept):
                tensors[f"round{r}"] = sampler.kept[r]
        tensors.update({k: v.detach().to("cpu") for k, v in (extra or {}).items()})
        sampler.kept.clear()
        self._send({"event": "timed_revealed"}, tensors)
