"""The judge's side of the model suite's timed runs (issue 13): TEST01, the timed figures and the clock
cross-check decided from the raw evidence the device process returns, never from its own verdicts.

The device process runs the timed loop (runners/model_suite/performance.py) and returns, per model and
dtype, a ``TimedEvidence``: every TEST01 sample it kept (the rows of the timed call's output at seeded
rounds; for a decoder, also the same call's output untimed and, for a decode step, the first token it
continued) and, per timed measurement, the raw per-sample timings with the clock check's raw sums
(``runners.timing.stats_to_wire``). The judge then

- decides TEST01 (``judge_timed_samples``) with ``output_samples_verdict`` against the accuracy output the
  device returned and the judge's own float64 reference (for a decoder, its own float64 model's logits
  for the same context); the sample groups and their items are the judge's own (the same seeded draws
  as the device's loop), so a missing group, a wrong item list, a malformed output or more samples than
  the sampler keeps fails;
- recomputes every timed figure (``rederive_timed``): median, IQR, p90/p99, CI, stability and the
  clock verdict from the raw samples with its own spec's policy, and the figure from its own workload
  size; the device's summary is ignored, and a device summary that disagrees with its own raw samples
  (or a figure without raw samples) fails the clock cross-check item of that model and dtype.

With a device process, each timed measurement runs in a frame of the judge's (``FrameJudge``,
runners/model_suite/frames.py), which closes what session 25 left as the device's word:

- the raw timings: the judge's own clock (``time.perf_counter_ns``) runs around each timed loop, and the
  device's reported total of it (every sample of every round, ``host_frame_check``) must lie within the
  program's clock bounds of that frame time: a device reporting its calls faster than the frame lasted
  (12x in the hostile plugin's test) has every such figure refused and fails the clock item;
- which output was the timed one: the device commits the digest of every round's TEST01 output in the
  frame that is timed, and the judge then draws the rounds to check with its own secret; the revealed
  outputs must match their digests. A harness that skips the work in its timed calls must hand over an
  output computed apart for every round (the host clock then sees the work outside the timed calls) or
  leave rounds the judge may draw with the skipped calls' outputs (TEST01 fails them).

What remains the device's word: the digests cover one output per round (its last call's), so calls
before it in the round are vouched for by the time they took only; an output computed apart for every
round costs one call per round, which for rounds of many short calls stays inside the clock bounds
(TEST04's fresh-input probe is the check for answers computed from a cache; its timed calls run in frames
of the judge's too, each fresh output committed in its frame: runners/probe_frames.py). In one process (no device process) the rounds are the ones the
challenge draws, as before.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from runners.commitment import output_digest
from runners.integrity import TEST01_ROUND_LIMIT, sampled_rounds
from runners.measurements import measurement, timing_section
from runners.model_suite.frames import measurement_of
from runners.model_suite.performance import (
    OutputSample,
    TimedEvidence,
    decoder_batches,
    output_samples_verdict,
    test01_picks,
    throughput_batches,
)
from runners.model_suite.workloads import Workload
from runners.probe_frames import ProbeFrameJudge
from runners.timing import TimingPolicy, TimingStats, stats_from_wire

# TEST01 samples of one timed run: at most the sampler's limit, plus the last round it always keeps.
MAX_SAMPLES_PER_RUN = TEST01_ROUND_LIMIT + 1
_LABEL = re.compile(r"^(?P<group>.+)@round(?P<round>\d{1,9})$")
# The device's summary figures and its own raw samples must agree to the last bits of a float64 (the
# judge runs the same ``runners.timing.summarize``); anything more is a rewritten summary.
AGREEMENT_RTOL = 1e-9
TIMED_KINDS = ("model_latency", "model_throughput", "ttft", "decode")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class HostFrame:
    """One timed measurement as the judge saw it: its own clock around the frame, what the device
    committed and reported, and the rounds it drew."""

    model: str
    dtype: str
    group: str
    host_s: float
    items: list[int]
    digests: list[str]
    timings: Any
    every_sample: Any
    drawn: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class FrameJudge:
    """The judge's side of the model suite's timed frames (runners/model_suite/frames.py): answers the
    device process's ``timed_*`` events inside ``run_suite`` (``on_event``), times each frame on its own
    clock, draws the rounds to check with ``secrets`` and checks every revealed output against the
    digest committed for its round. ``evidence`` then gives, per model and dtype, the TEST01 samples it
    revealed and the raw timings of each measurement; ``frames`` each measurement's host frame."""

    def __init__(self, *, draw: secrets.SystemRandom | None = None) -> None:
        self._draw = draw or secrets.SystemRandom()
        self._started: tuple[str, str, str, int] | None = None
        self._ended: HostFrame | None = None
        self.frames: dict[tuple[str, str], dict[str, HostFrame]] = {}
        self.samples: dict[tuple[str, str], list[OutputSample]] = {}
        self.problems: dict[tuple[str, str], list[str]] = {}
        # TEST04's probe calls, each in a frame of its own (runners/probe_frames.py).
        self.probes = ProbeFrameJudge()

    def _problem(self, model: str, dtype: str, text: str) -> None:
        self.problems.setdefault((model, dtype), []).append(text)

    def _abandon(self) -> None:
        """A frame opened and never closed (the device went on to something else)."""
        if self._started is not None:
            model, dtype, group, _ = self._started
            self._problem(model, dtype, f"timed run {group!r}: its frame was opened and never closed")
        if self._ended is not None:
            frame = self._ended
            self._problem(
                frame.model, frame.dtype, f"timed run {frame.group!r}: its drawn rounds never came back"
            )
        self._started = self._ended = None

    def on_event(
        self, event: dict[str, Any], tensors: dict[str, torch.Tensor]
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
        """The reply to one of the device process's events (None: no reply, a ``progress`` frame)."""
        now = time.perf_counter_ns()
        kind = event.get("event")
        if kind in ("probe_start", "probe_end"):
            return self.probes.on_event(event, now)
        if kind == "timed_start":
            self._abandon()
            model, dtype, group = str(event.get("model")), str(event.get("dtype")), str(event.get("group"))
            self._started = (model, dtype, group, time.perf_counter_ns())
            return {"op": "timed_go"}, {}
        if kind == "timed_end":
            if self._started is None:
                self._abandon()
                return {"op": "timed_reveal", "rounds": []}, {}
            model, dtype, group, started = self._started
            self._started = None
            frame = HostFrame(
                model,
                dtype,
                group,
                (now - started) / 1e9,
                [i for i in event.get("items") or [] if isinstance(i, int) and not isinstance(i, bool)],
                [str(d) for d in event.get("digests") or []],
                event.get("timings"),
                event.get("every_sample"),
            )
            if (event.get("model"), event.get("dtype"), event.get("group")) != (model, dtype, group):
                frame.problems.append(f"timed run {group!r}: its frame closed as another run")
            if not frame.digests or not all(_DIGEST.match(d) for d in frame.digests):
                frame.problems.append(f"timed run {group!r}: no well-formed digest of its rounds")
            elif len(frame.digests) > 1:
                count = min(MAX_SAMPLES_PER_RUN, len(frame.digests))
                frame.drawn = sorted(self._draw.sample(range(len(frame.digests)), count))
            else:
                frame.drawn = [0]
            self._ended = frame
            return {"op": "timed_reveal", "rounds": frame.drawn}, {}
        if kind == "timed_revealed":
            ended, self._ended = self._ended, None
            if ended is not None:
                self._revealed(ended, tensors)
            return None
        self._abandon()
        return None

    def _revealed(self, frame: HostFrame, tensors: dict[str, torch.Tensor]) -> None:
        key = (frame.model, frame.dtype)
        measurement = measurement_of(frame.model, frame.group)
        if measurement in self.frames.setdefault(key, {}):
            self._problem(*key, f"timed run {frame.group!r} ran twice")
            return
        self.frames[key][measurement] = frame
        expected, token = tensors.get("expected"), tensors.get("token")
        for r in frame.drawn:
            output = tensors.get(f"round{r}")
            if output is None:
                frame.problems.append(
                    f"timed run {frame.group!r}: round {r} drawn by the judge did not come back"
                )
                continue
            if output_digest(output) != frame.digests[r]:
                frame.problems.append(
                    f"timed run {frame.group!r}: the output revealed for round {r} is not the one its digest committed"
                )
                continue
            self.samples.setdefault(key, []).append(
                OutputSample(
                    f"{frame.group}@round{r}",
                    list(frame.items),
                    output.double(),
                    None if expected is None else expected.double(),
                    None,
                    token,
                )
            )
        for problem in frame.problems:
            self._problem(*key, problem)

    def close(self) -> None:
        self._abandon()
        self.probes.abandon()

    def evidence(self) -> dict[tuple[str, str], TimedEvidence]:
        """Per model and dtype: the revealed TEST01 samples and each measurement's raw timings."""
        return {
            key: TimedEvidence(
                key[0], key[1], self.samples.get(key, []), {m: f.timings for m, f in frames.items()}
            )
            for key, frames in self.frames.items()
        }

    def drawn(self, key: tuple[str, str]) -> dict[str, list[int]]:
        """The rounds the judge drew, per TEST01 sample group, of one model and dtype."""
        return {f.group: list(f.drawn) for f in self.frames.get(key, {}).values()}


def timed_to_wire(evidence: TimedEvidence, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A TimedEvidence as JSON figures and named tensors (``prefix.<j>.<part>``), for the frames. A
    tensor several samples share (a decoder group's untimed output and first token) goes once: a frame
    holds at most ``runners.device.protocol.MAX_TENSORS``."""
    samples: list[dict[str, Any]] = []
    tensors: dict[str, torch.Tensor] = {}
    named: dict[int, str] = {}
    for index, sample in enumerate(evidence.samples):
        entry: dict[str, Any] = {"label": sample.label, "items": list(sample.items)}
        for part in ("output", "expected", "token"):
            tensor = getattr(sample, part)
            if tensor is None:
                continue
            if id(tensor) not in named:
                named[id(tensor)] = f"{prefix}.{index}.{part}"
                tensors[named[id(tensor)]] = tensor.detach().to("cpu")
            entry[part] = named[id(tensor)]
        samples.append(entry)
    record = {
        "model": evidence.model,
        "dtype": evidence.dtype,
        "samples": samples,
        "timings": evidence.timings,
    }
    return record, tensors


def timed_from_wire(record: dict[str, Any], tensors: dict[str, torch.Tensor]) -> TimedEvidence | str:
    """A device's TimedEvidence read off the wire, or why it is not well formed."""
    raw_samples, timings = record.get("samples"), record.get("timings")
    if not isinstance(raw_samples, list) or not isinstance(timings, dict):
        return "the timed runs' evidence is not well formed (no samples or timings)"
    samples: list[OutputSample] = []
    for entry in raw_samples:
        if not isinstance(entry, dict) or not isinstance(entry.get("label"), str):
            return "a TEST01 sample is not well formed"
        items = entry.get("items")
        if not isinstance(items, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in items
        ):
            return f"TEST01 sample {entry['label']!r} names no item list"
        parts: dict[str, torch.Tensor | None] = {}
        for part in ("output", "expected", "token"):
            name = entry.get(part)
            parts[part] = tensors.get(name) if isinstance(name, str) else None
            if name is not None and parts[part] is None:
                return f"TEST01 sample {entry['label']!r}: its {part} did not come back"
        output = parts["output"]
        if output is None:
            return f"TEST01 sample {entry['label']!r} came back without its output"
        samples.append(
            OutputSample(
                entry["label"], list(items), output.double(), parts["expected"], None, parts["token"]
            )
        )
    return TimedEvidence(str(record.get("model")), str(record.get("dtype")), samples, dict(timings))


def expected_groups(
    workload: Workload, *, name: str, dtype: str, seed: int | str, quick: bool
) -> dict[str, list[int]]:
    """The TEST01 sample groups of one model and dtype's timed runs and the items each keeps, drawn as
    the device's loop draws them (runners/model_suite/performance.py ``measure_model``)."""
    groups: dict[str, list[int]] = {"latency": [0]}
    picks = test01_picks(seed, name, dtype, workload.size)
    for batch in throughput_batches(workload.size, quick):
        groups[f"b{batch}"] = picks
    if workload.kind == "decoder":
        for batch in decoder_batches(workload.size):
            groups[f"ttft b{batch}"] = groups[f"decode b{batch}"] = list(range(batch))
    return groups


def expected_timed_names(workload: Workload, *, name: str, quick: bool) -> dict[str, str]:
    """Every timed measurement of one model and dtype by name, with its kind."""
    names = {f"{name} latency": "model_latency"}
    names.update(
        {f"{name} throughput b{b}": "model_throughput" for b in throughput_batches(workload.size, quick)}
    )
    if workload.kind == "decoder":
        for batch in decoder_batches(workload.size):
            names[f"{name} ttft b{batch}"] = "ttft"
            names[f"{name} decode b{batch}"] = "decode"
    return names


DecoderReference = Callable[[torch.Tensor], torch.Tensor]  # token ids (B, S) -> float64 logits (B, S, V)


def judge_timed_samples(
    workload: Workload,
    reference: torch.Tensor,
    accuracy_out: torch.Tensor | None,
    evidence: TimedEvidence,
    *,
    seed: int | str,
    quick: bool,
    decoder_reference: DecoderReference | None = None,
    drawn: dict[str, list[int]] | None = None,
    frame_problems: list[str] | None = None,
) -> dict[str, Any]:
    """TEST01 of one model and dtype decided by the judge from the samples the device process returned:
    the sample groups must be exactly the judge's, with the judge's items and at most
    ``MAX_SAMPLES_PER_RUN`` each; each sample is then judged by ``output_samples_verdict`` against the
    accuracy output the device returned (a decoder's: the same call untimed) and the judge's float64
    reference. Any problem with the evidence fails, with its reason. With the judge's timed frames
    (``drawn``: the rounds it drew per group, ``frame_problems``: what its frames found, such as a
    revealed output that is not the one committed) the rounds must be the judge's draw; without, the
    ones the challenge draws (the suite run in one process)."""
    name, dtype = evidence.model, evidence.dtype
    head = {"model": name, "dtype": dtype}
    torch_dtype = getattr(torch, dtype)
    groups = expected_groups(workload, name=name, dtype=dtype, seed=seed, quick=quick)
    problems: list[str] = list(frame_problems or [])
    rounds: dict[str, list[int]] = {group: [] for group in groups}
    labels = [s.label for s in evidence.samples]
    if len(set(labels)) != len(labels):
        problems.append("a TEST01 sample came back twice")
    judged: list[OutputSample] = []
    decoder_references: dict[tuple[str, bytes], torch.Tensor] = {}
    for sample in evidence.samples:
        match = _LABEL.match(sample.label)
        group = match.group("group") if match else None
        if group not in groups:
            problems.append(f"TEST01 sample {sample.label!r} is of no timed run of this job")
            continue
        rounds[group].append(int(match.group("round")) if match else -1)
        if sample.items != groups[group]:
            problems.append(f"TEST01 sample {sample.label!r} kept items {sample.items}, not {groups[group]}")
            continue
        if group.startswith(("ttft ", "decode ")):
            if (
                sample.output.dim() != 2
                or sample.expected is None
                or sample.expected.shape != sample.output.shape
            ):
                problems.append(
                    f"TEST01 sample {sample.label!r}: its logits are not one row per item, as untimed"
                )
                continue
            if decoder_reference is None:
                problems.append(
                    f"TEST01 sample {sample.label!r}: no untimed output or reference to judge it by"
                )
                continue
            context = _decoder_context(workload, group, sample, torch_dtype)
            if isinstance(context, str):
                problems.append(f"TEST01 sample {sample.label!r}: {context}")
                continue
            key = (group, context.numpy().tobytes())
            if key not in decoder_references:
                with torch.inference_mode():
                    decoder_references[key] = decoder_reference(context)[:, -1].double()
            judged.append(
                OutputSample(
                    sample.label,
                    sample.items,
                    sample.output,
                    sample.expected.double(),
                    decoder_references[key],
                )
            )
        else:
            if accuracy_out is None:
                problems.append("no accuracy output came back to compare the TEST01 samples with")
                break
            if tuple(sample.output.shape) != (len(sample.items), *reference.shape[1:]):
                problems.append(
                    f"TEST01 sample {sample.label!r}: output of shape {tuple(sample.output.shape)}"
                )
                continue
            judged.append(sample)
    for group, kept in rounds.items():
        if not 1 <= len(kept) <= MAX_SAMPLES_PER_RUN:
            problems.append(
                f"timed run {group!r} came back with {len(kept)} TEST01 samples (1 to {MAX_SAMPLES_PER_RUN})"
            )
        elif drawn is not None:
            if kept != drawn.get(group):
                problems.append(
                    f"timed run {group!r}: its TEST01 rounds {kept} are not the ones the judge drew"
                )
        elif kept != sampled_rounds(seed, f"model:{name}:{dtype}:{_salt(group)}", max(kept)):
            problems.append(
                f"timed run {group!r}: its TEST01 rounds {kept} are not the ones the challenge draws"
            )
    if problems:
        return {
            **head,
            "verdict": "fail",
            "sampled": 0,
            "sample_ids": [],
            "mismatches": 0,
            "details": [{"reason": p} for p in problems[:10]],
            "reason": problems[0],
            "against": ["accuracy_pass", "float64_reference"],
        }
    rows = accuracy_out if accuracy_out is not None else torch.empty(0)
    return {**head, **output_samples_verdict(workload, torch_dtype, rows.double(), reference, judged)}


def _salt(group: str) -> str:
    """The ``OutputSampler`` salt suffix of a sample group (runners/model_suite/performance.py)."""
    kind, _, batch = group.partition(" b")
    return f"{kind}{batch}" if kind in ("ttft", "decode") else group


def _decoder_context(
    workload: Workload, group: str, sample: OutputSample, dtype: torch.dtype
) -> torch.Tensor | str:
    """The token ids a decoder sample's next-token logits are for: the judge's prompt, and for a decode
    step the device's first token after it (teacher forcing, as the device's loop continues it)."""
    prompt = workload.make_batch(sample.items, torch.device("cpu"), dtype)[0]
    if group.startswith("ttft "):
        return prompt
    token = sample.token
    if (
        token is None
        or token.dtype not in (torch.int64, torch.int32)
        or tuple(token.shape) != (prompt.shape[0], 1)
    ):
        return "its first token is missing or not one token id per prompt"
    expected = sample.expected
    vocabulary = expected.shape[-1] if expected is not None and expected.dim() == 2 else 0
    if token.numel() and not (0 <= int(token.min()) and int(token.max()) < vocabulary):
        return "its first token is outside the vocabulary"
    return torch.cat([prompt, token.to(prompt.dtype)], dim=1)


def rederive_timed(
    measurements: list[dict[str, Any]],
    evidence: TimedEvidence | None,
    workload: Workload,
    policy: TimingPolicy,
    *,
    name: str,
    dtype: str,
    quick: bool,
    frames: dict[str, HostFrame] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One model and dtype's measurements with every timed figure recomputed by the judge from the raw
    timings, and its clock cross-check item (``timing_section`` over the judge's figures, with the judge's
    bounds). A timed figure without well-formed raw timings is refused (value None, flag unavailable);
    one whose device summary disagrees with its raw timings is replaced by the judge's; either fails the
    item (``raw_timings``: how many were checked, which disagreed).

    With the judge's timed frames (``frames``, by measurement name) each figure's timed loop must also
    fit the judge's own clock around its frame (``host_frame_check``): a figure without a frame, or whose
    device total lies outside the program's clock bounds of the frame time, is refused and fails the
    item (``host_frames``)."""
    timings = evidence.timings if evidence is not None else {}
    wanted = expected_timed_names(workload, name=name, quick=quick)
    problems: list[str] = []
    host_problems: list[str] = []
    ratios: list[float] = []
    judged: list[dict[str, Any]] = []
    epoch_s: float | None = None
    seen: set[str] = set()
    for item in measurements:
        label = str(item.get("name"))
        if item.get("kind") not in TIMED_KINDS:
            judged.append(item)
            continue
        seen.add(label)
        if wanted.get(label) != item.get("kind"):
            problems.append(f"{label}: not a timed run of this job")
            continue
        try:
            stats = stats_from_wire(timings.get(label), policy)
        except ValueError as exc:
            problems.append(f"{label}: {exc}")
            judged.append(_refused(item))
            continue
        if frames is not None:
            ratio, problem = host_frame_check(frames.get(label), stats, policy, label=label)
            if ratio is not None:
                ratios.append(ratio)
            if problem is not None:
                host_problems.append(problem)
                judged.append(_refused(item))
                continue
        figure, params = _figure(item, stats, workload)
        mine = measurement(
            name=label,
            kind=str(item["kind"]),
            unit=str(item.get("unit")),
            value=figure,
            dtype=dtype,
            params=params,
            stats=stats,
        )
        if not _agrees(item, mine):
            problems.append(f"{label}: the published figures disagree with the raw timings")
        if item["kind"] == "model_throughput":
            epoch_s = stats.median  # the last sweep batch's epoch: the energy figure's
        judged.append(mine)
    problems += [f"{label}: no figure came back" for label in wanted if label not in seen]
    judged = [_energy(item, judged, epoch_s, workload) for item in judged]
    section = timing_section([m for m in judged if m.get("kind") in TIMED_KINDS], policy)
    section = {"model": name, "dtype": dtype, **section}
    section["raw_timings"] = {
        "checked": len(wanted),
        "disagreements": len(problems),
        "details": problems[:10],
    }
    if frames is not None:
        bounds = policy.clock_bounds
        section["host_frames"] = {
            "checked": len(ratios),
            "refused": len(host_problems),
            "bounds": list(bounds) if bounds is not None else None,
            "min_ratio": min(ratios, default=None),
            "max_ratio": max(ratios, default=None),
            "details": host_problems[:10],
        }
    if problems or host_problems:
        section["verdict"] = "fail"
        section["reason"] = (problems or host_problems)[0]
    return judged, section


def host_frame_check(
    frame: HostFrame | None, stats: TimingStats, policy: TimingPolicy, *, label: str
) -> tuple[float | None, str | None]:
    """One measurement's timed loop against the judge's clock around its frame: the ratio of the
    device's reported total (every sample of every round, times the calls per sample) to the frame's
    host time, and why the figure is refused, if it is. Every sample the device sent must include the
    window its figures are computed from. The bounds are the program's clock bounds (its level's
    ``clock_ratio_bounds``, the same as the events/host-clock check of runners/timing.py step 7): the
    device's calls happen inside the frame, so the total cannot exceed its time beyond clock skew, and
    an honest loop fills it but for the frame's fixed overhead (two pipe messages and the between-round
    work: the stop rule, the TEST01 copy and digest), far below half. Without bounds the ratio is
    reported and nothing refused, as step 7."""
    if frame is None:
        return None, f"{label}: not timed in a frame of the judge"
    every = frame.every_sample
    if not isinstance(every, list) or not every or len(every) > policy.max_samples:
        return None, f"{label}: the samples of its timed loop did not come back"
    try:
        values = [float(x) for x in every if not isinstance(x, bool) and isinstance(x, int | float)]
    except (TypeError, ValueError):
        values = []
    if len(values) != len(every) or not all(math.isfinite(x) and x >= 0 for x in values):
        return None, f"{label}: the samples of its timed loop are not finite non-negative numbers"
    if len(values) != stats.discarded + stats.n or sorted(values[stats.discarded :]) != list(stats.samples):
        return None, f"{label}: its figures are not computed from the samples of its timed loop"
    reported = math.fsum(values) * stats.calls_per_sample
    ratio = reported / frame.host_s if frame.host_s > 0 else math.inf
    bounds = policy.clock_bounds
    if bounds is not None and not bounds[0] <= ratio <= bounds[1]:
        return ratio, (
            f"{label}: the device reports {reported:.4g} s of timed calls in a frame of {frame.host_s:.4g} s "
            f"on the judge's clock (ratio {ratio:.3f}, bounds {bounds[0]:g}-{bounds[1]:g})"
        )
    return ratio, None


def _figure(item: dict[str, Any], stats: TimingStats, workload: Workload) -> tuple[float, dict[str, Any]]:
    params = {k: v for k, v in (item.get("params") or {}).items() if k != "event_value"}
    kind = item["kind"]
    if kind == "model_throughput":
        value = workload.size / stats.median if stats.median > 0 else math.inf
        params.update(items=workload.size, tokens_per_s=value * workload.tokens_per_item)
        return value, params
    if kind == "decode":
        batch = int(
            str(item["name"]).rsplit(" b", 1)[-1]
        )  # the name the judge expects: "<model> decode b<batch>"
        params["batch"] = batch
        return (batch / stats.median if stats.median > 0 else math.inf), params
    return stats.median, params


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    try:
        return math.isclose(float(a), float(b), rel_tol=AGREEMENT_RTOL, abs_tol=1e-15)
    except (TypeError, ValueError):
        return False


def _agrees(device: dict[str, Any], judge: dict[str, Any]) -> bool:
    """Whether the device's summary of a measurement is the judge's, recomputed from the raw samples."""

    def figure(item: dict[str, Any]) -> Any:
        return (
            item.get("value")
            if item.get("value") is not None
            else (item.get("params") or {}).get("event_value")
        )

    stats, mine = device.get("stats") or {}, judge.get("stats") or {}
    if not isinstance(stats, dict) or set(mine) - set(stats):
        return False
    return (
        _close(figure(device), figure(judge))
        and all(_close(stats.get(k), v) for k, v in mine.items())
        and bool(device.get("unstable")) == bool(judge.get("unstable"))
        and device.get("timing_method") == judge.get("timing_method")
    )


def _refused(item: dict[str, Any]) -> dict[str, Any]:
    return {
        **item,
        "value": None,
        "stats": None,
        "efficiency": None,
        "clock": None,
        "significant_digits": None,
        "timing_method": None,
        "flags": ["unavailable"],
    }


def _energy(
    item: dict[str, Any], judged: list[dict[str, Any]], epoch_s: float | None, workload: Workload
) -> dict[str, Any]:
    """The energy per item from the device's power reading and the judge's epoch time."""
    if item.get("kind") != "energy":
        return item
    power = next((m.get("value") for m in judged if m.get("kind") == "power"), None)
    value = None if power is None or epoch_s is None else float(power) * epoch_s / workload.size
    flags = [] if value is not None else ["unavailable"]
    return {**item, "value": value, "flags": flags}
