"""Timed runs of one model in one dtype: latency, throughput sweep, TTFT, decode, memory, power.

The integrity checks of these runs live here too (``model_integrity``): TEST01 outputs are
taken at seeded rounds of every latency and throughput measurement (``OutputSampler``),
and each sample is judged against the accuracy pass's output for the same items *and*
scored against the float64 reference with the accuracy bar of the requested dtype; TEST04
probes the single-item input the latency run repeated, in seeded patterns, and is decided from the
probe's evidence by ``judge_model_probe`` (by the judge, with a device process: runners/device).

With a device process this whole module runs there and judges nothing (issue 13): ``model_integrity``
keeps, per model and dtype, a ``TimedEvidence`` (the TEST01 samples, a decoder's with the same call's
output untimed and the first token its decode step continued, and every timed measurement's raw
per-sample timings with the clock check's raw sums, ``runners.timing.stats_to_wire``), and the judge
decides TEST01 against its own float64 reference, recomputes every timed figure, its stability and the
clock cross-check from the raw timings with its own policy, and fails a figure whose device summary
disagrees with them (runners/model_suite/timed_judge.py, ``rejudge_model_timed``). A decoder's greedy
generation agreement is the judge's too, from the tokens the device generated (``generated_tokens``).

The timed loop (latency, throughput sweep, TTFT, decode) runs in the device process, each measurement
in a frame of the judge's (runners/model_suite/frames.py, ``ModelRun.frames``): the judge's clock runs
around the loop, every round's TEST01 output is committed by digest inside the frame and the judge draws
which rounds are revealed; the judge's checks are ``rederive_timed`` (the device's total against the
frame's time) and ``judge_timed_samples`` (the drawn rounds). See runners/model_suite/timed_judge.py for
what stays the device's word (one output per round). TEST04's probe (``runners.integrity.CachingProbe``)
times each of its calls in a frame of the judge's (runners/probe_frames.py): its timings must fit the
judge's clock with the program's clock bounds, its fresh outputs are committed in their frames and the
ones judged against the float64 reference are the judge's secret draw.

The serving suite goes further (runners/serving_engine.py): the judge times one frame per forward, at
the cost of a frame's round trip inside every timed sample.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from runners.commitment import OutputCommitment, model_output_id
from runners.errors import device_call
from runners.integrity import (
    CachingEvidence,
    FreshInput,
    NearestReference,
    OutputSampler,
    caching_evidence,
    default_tolerance,
    judge_caching,
    output_consistency,
    sample_indices,
    seeded_random,
)
from runners.measurements import measurement, timing_section
from runners.model_suite.frames import CommittingSampler, TimedFrames
from runners.model_suite.workloads import Workload
from runners.models.loading import LoadedModel
from runners.models.reference import float64_copy
from runners.timing import TimingPolicy, TimingStats, measure_with_output, stats_to_wire

ACCURACY_BATCH = 4
GENERATED_TOKENS = 8
TEST01_SAMPLES = 4
CACHING_FRESH_INPUTS = 12
# Of the TEST04 probe's fresh outputs, this many (drawn from the challenge) are also judged against the
# float64 reference of their own values (``judge_model_probe``), as the performance suite's
# FRESH_REFERENCE_CHECKS: a cache keyed on the input's shape answers them with another input's output,
# timed and apart alike, which only a reference sees. Each costs one float64 forward of one item.
FRESH_REFERENCE_CHECKS = 2


@dataclass(frozen=True)
class OutputSample:
    """Outputs of some workload items taken from inside one timed measurement, float64 on the host."""

    label: str
    items: list[int]
    output: torch.Tensor  # rows in the order of ``items``; empty where the device returned junk
    # Where the sample is not rows of the accuracy pass (a decoder's first token or decode step): the
    # untimed output of the same call and the float64 reference's logits, row for row.
    expected: torch.Tensor | None = None
    reference: torch.Tensor | None = None
    # A decode step's sample: the device's first token the step continued (the judge's reference
    # continues it too, teacher forcing).
    token: torch.Tensor | None = None


@dataclass
class TimedEvidence:
    """What the device process keeps of one model and dtype's timed runs for the judge: the TEST01
    samples (the decoders' with the untimed output of the same call, never a reference) and the raw
    evidence of every timed measurement (``runners.timing.stats_to_wire``), by measurement name."""

    model: str
    dtype: str
    samples: list[OutputSample]
    timings: dict[str, dict[str, Any]]


def throughput_batches(size: int, quick: bool) -> list[int]:
    """The batch sizes of the throughput sweep of a workload of ``size`` items."""
    return [b for b in ((1, 4) if quick else (1, 4, 16)) if b <= size]


def decoder_batches(size: int) -> list[int]:
    """The batch sizes a decoder's TTFT and decode rate are timed at."""
    return [1] if size == 1 else sorted({1, min(4, size)})


def test01_picks(seed: int | str, name: str, dtype: str, size: int) -> list[int]:
    """The items whose outputs the throughput sweep's TEST01 samples keep (drawn from the challenge)."""
    return sample_indices(seed, size, TEST01_SAMPLES, salt=f"model:{name}:{dtype}")


def _chunks(count: int, size: int) -> list[range]:
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


@dataclass
class ModelRun:
    """One model placed on the device in one dtype, with what its timed runs need."""

    model: LoadedModel
    workload: Workload
    module: nn.Module
    forward: Callable[..., torch.Tensor]  # the module as the backend prepared it
    backend: Any
    device: torch.device
    dtype: torch.dtype
    policy: TimingPolicy
    quick: bool
    # The module itself as the backend prepared it, for a decoder's TTFT and decode steps, where
    # ``forward`` is the workload's entry (Workload.entry) rather than the module.
    step: Callable[..., torch.Tensor] | None = None
    # In the device process: the judge's timed frames (runners/model_suite/frames.py); each timed
    # measurement then runs in a frame of its own and its TEST01 rounds are the judge's draw.
    frames: TimedFrames | None = None

    def batches(self, size: int) -> list[tuple[torch.Tensor, ...]]:
        return [
            self.workload.make_batch(list(chunk), self.device, self.dtype)
            for chunk in _chunks(self.workload.size, size)
        ]

    @torch.inference_mode()
    def run_all(self, batches: Sequence[tuple[torch.Tensor, ...]]) -> list[torch.Tensor]:
        return [self.forward(*batch) for batch in batches]

    def accuracy_outputs(self) -> torch.Tensor:
        """Every item's output, untimed (MLPerf's accuracy mode), on the host in float64."""
        outputs = self.run_all(self.batches(ACCURACY_BATCH))
        return torch.cat([o.detach().to("cpu", torch.float64) for o in outputs])

    def generation_agreement(self) -> float:
        """Fraction of greedily generated tokens equal to the float64 model's."""
        return generation_agreement(self.model, self.workload, self.dtype, self.generated_tokens())

    def generated_tokens(self) -> torch.Tensor:
        """The device's greedy generation from the first prompts (``generation_prompt``), on the host."""
        prompt = generation_prompt(self.workload, self.dtype)
        with torch.inference_mode():
            return device_call(self.module.generate)(prompt.to(self.device), GENERATED_TOKENS).cpu()  # type: ignore[arg-type]  # an nn.Module attribute is Tensor | Module to mypy

    def caching_inputs(self, count: int) -> list[tuple[torch.Tensor, ...]]:
        """``count + 1`` distinct equal-shape batches: [0] is repeated, the rest are fresh."""
        size = min(4, self.workload.size)
        return [self.workload.make_fresh(v, size, self.device, self.dtype) for v in range(count + 1)]

    def fresh_single(self, count: int) -> list[tuple[torch.Tensor, ...]]:
        """``count`` distinct one-item batches of the latency input's shape, never seen before."""
        return [self.workload.make_fresh(v, 1, self.device, self.dtype) for v in range(1, count + 1)]


def generation_prompt(workload: Workload, dtype: torch.dtype) -> torch.Tensor:
    """The prompts a decoder's free-running generation starts from: the workload's first two."""
    return workload.make_batch(range(min(2, workload.size)), torch.device("cpu"), dtype)[0]


def generation_agreement(model: LoadedModel, workload: Workload, dtype: torch.dtype, got: Any) -> float:
    """Fraction of greedily generated tokens (``got``, the device's) equal to the float64 model's; 0.0
    when ``got`` is not a token tensor of the float64 generation's shape."""
    with torch.inference_mode():
        expected = float64_copy(model.module, type(model.module), model.config).generate(  # type: ignore[operator]  # an nn.Module attribute is Tensor | Module to mypy
            generation_prompt(workload, dtype), GENERATED_TOKENS
        )
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape or got.is_floating_point():
        return 0.0
    return float((got == expected).double().mean())


def _rows(outputs: Any, picks: list[int]) -> torch.Tensor:
    """Rows ``picks`` of a forward's output (or of a list of batch outputs), float64 on the host."""
    try:
        if isinstance(outputs, list | tuple):
            outputs = torch.cat([o.detach().to("cpu", torch.float64) for o in outputs])
        tensor = outputs.detach().to("cpu", torch.float64)
        return tensor[torch.tensor(picks)] if all(p < tensor.shape[0] for p in picks) else torch.empty(0)
    except (RuntimeError, TypeError, AttributeError, IndexError):
        return torch.empty(0)  # malformed outputs: nothing to compare, so TEST01 fails


def _timed(
    run: ModelRun,
    fn: Callable[[], object],
    select: Callable[[Any], torch.Tensor],
    *,
    seed: int | str,
    name: str,
    dtype: str,
    group: str,
    salt: str,
    items: list[int],
    extra: Callable[[], dict[str, torch.Tensor]] | None = None,
) -> tuple[TimingStats, list[tuple[int, torch.Tensor]]]:
    """One timed measurement and its TEST01 rounds. In this process alone: the rounds the challenge
    draws (``OutputSampler``). With the judge's frames (the device process): the timed loop in a frame
    of its own, every round's TEST01 part committed by digest and the rounds the judge draws revealed
    to it (runners/model_suite/frames.py); none come back here."""
    if run.frames is None:
        sampler = OutputSampler(select, seed=seed, salt=f"{salt}:{group.replace(' b', '')}")
        stats, _ = measure_with_output(fn, backend=run.backend, policy=run.policy, between_rounds=sampler)
        return stats, sampler.finish()
    frames = run.frames
    committing = CommittingSampler(select)
    every: list[float] = []
    stats, _ = measure_with_output(
        fn,
        backend=run.backend,
        policy=run.policy,
        between_rounds=committing,
        before_timed=partial(frames.start, name, dtype, group),
        every_sample=every,
    )
    frames.finish(name, dtype, group, items, stats, every, committing, extra() if extra else None)
    return stats, []


def measure_model(
    run: ModelRun,
    seed: int | str = "",
    *,
    timings: dict[str, dict[str, Any]] | None = None,
    apart: bool = False,
) -> tuple[list[dict[str, Any]], list[OutputSample]]:
    """The model's performance measurements, and outputs sampled at seeded rounds of the timed runs.

    ``timings`` (the device process) collects each timed measurement's raw evidence by name; with
    ``apart`` the decoders' samples carry no float64 reference (the judge computes its own)."""
    raw = timings if timings is not None else {}
    name, dtype = run.model.spec.name, str(run.dtype).removeprefix("torch.")
    base = {
        "model": name,
        "architecture": run.model.architecture.name,
        "params_count": run.model.parameter_count,
    }
    items: list[dict[str, Any]] = []

    salt = f"model:{name}:{dtype}"
    samples: list[OutputSample] = []
    single = run.workload.make_batch([0], run.device, run.dtype)
    timed_run = partial(_timed, run, seed=seed, name=name, dtype=dtype, salt=salt)
    with torch.inference_mode():
        stats, kept = timed_run(
            lambda: run.forward(*single), lambda out: _rows(out, [0]), group="latency", items=[0]
        )
    samples += [OutputSample(f"latency@round{r}", [0], t) for r, t in kept]
    raw[f"{name} latency"] = stats_to_wire(stats)
    items.append(
        measurement(
            name=f"{name} latency",
            kind="model_latency",
            unit="s",
            value=stats.median,
            dtype=dtype,
            params={**base, "batch": 1},
            stats=stats,
        )
    )

    sweep = throughput_batches(run.workload.size, run.quick)
    picks = test01_picks(seed, name, dtype, run.workload.size)
    for index, batch_size in enumerate(sweep):
        batches = run.batches(batch_size)
        last = index == len(sweep) - 1
        if last:
            run.backend.reset_peak_memory()
        stats, kept = timed_run(
            partial(run.run_all, batches), lambda out: _rows(out, picks), group=f"b{batch_size}", items=picks
        )
        samples += [OutputSample(f"b{batch_size}@round{r}", picks, t) for r, t in kept]
        raw[f"{name} throughput b{batch_size}"] = stats_to_wire(stats)
        items_per_s = run.workload.size / stats.median
        items.append(
            measurement(
                name=f"{name} throughput b{batch_size}",
                kind="model_throughput",
                unit="items/s",
                value=items_per_s,
                dtype=dtype,
                params={
                    **base,
                    "batch": batch_size,
                    "items": run.workload.size,
                    "tokens_per_s": items_per_s * run.workload.tokens_per_item,
                },
                stats=stats,
            )
        )
        if last:
            items.extend(_memory_and_power(run, name, dtype, base, batch_size, stats.median))
    if run.workload.kind == "decoder":
        timed, decoder_samples = _decoder_timings(run, name, dtype, base, seed, raw=raw, apart=apart)
        items.extend(timed)
        samples += decoder_samples
    return items, samples


def output_samples_verdict(
    workload: Workload,
    dtype: torch.dtype,
    accuracy_out: torch.Tensor,
    reference: torch.Tensor,
    samples: list[OutputSample],
) -> dict[str, Any]:
    """TEST01 of one model and dtype over outputs sampled through its timed runs.

    Each sample must match the accuracy pass's output for the same items (within the
    run-to-run tolerance of the dtype) and reach the dtype's accuracy bar against the
    float64 reference (``workload.score``): a device that drops precision after the
    accuracy pass fails the first, one that is degraded throughout the second.
    """
    dtype_name = str(dtype).removeprefix("torch.")
    failures: list[dict[str, Any]] = []
    checked = mismatches = 0
    worst_diff = 0.0
    for sample in samples:
        keys = [f"{sample.label}:item{i}" for i in sample.items]
        got = {k: sample.output[j] for j, k in enumerate(keys) if j < sample.output.shape[0]}
        rows = sample.expected if sample.expected is not None else accuracy_out[torch.tensor(sample.items)]
        expected = {k: rows[j] for j, k in enumerate(keys)}
        against = output_consistency(expected, got, dtype=dtype, sampled=keys)
        checked += against["sampled"]
        mismatches += against["mismatches"]
        worst_diff = max(worst_diff, against["max_abs_diff"])
        if against["verdict"] == "fail":
            failures.append({"sample": sample.label, "reason": "differs from the accuracy pass", **against})
        if sample.output.shape[0] != len(sample.items):
            failures.append({"sample": sample.label, "reason": "output not logged"})
            continue
        if sample.expected is not None:  # a decoder's first token or decode step
            if sample.reference is None:
                failures.append({"sample": sample.label, "reason": "no float64 reference to judge it by"})
                continue
            within = tokens_within_rounding(sample.output, sample.reference, dtype)
            if within < 1.0:
                mismatches += 1
                failures.append(
                    {
                        "sample": sample.label,
                        "reason": "a next token the float64 reference does not rank first, "
                        "beyond the rounding of the dtype",
                        "metric": "tokens_within_rounding",
                        "value": within,
                        "threshold": 1.0,
                    }
                )
            continue
        score = workload.score(sample.output, reference[torch.tensor(sample.items)], dtype_name)
        if not score["meets_informational_bar"]:
            mismatches += 1
            failures.append(
                {
                    "sample": sample.label,
                    "reason": "below the dtype's informational accuracy bar against the float64 reference",
                    "metric": score["metric"],
                    "value": score["value"],
                    "threshold": score["informational_bar"],
                }
            )
    rtol, atol = default_tolerance(dtype)
    return {
        "verdict": "fail" if failures or not samples else "pass",
        "sampled": checked,
        "sample_ids": [s.label for s in samples],
        "mismatches": mismatches,
        "details": failures[:10],
        "max_abs_diff": worst_diff,
        "rtol": rtol,
        "atol": atol,
        "against": ["accuracy_pass", "float64_reference"],
    }


def model_integrity(
    run: ModelRun,
    accuracy_out: torch.Tensor,
    reference: torch.Tensor,
    seed: int | str,
    *,
    threshold: float | None = None,
    commitment: OutputCommitment | None = None,
    keep_caching: list[tuple[str, str, CachingEvidence]] | None = None,
    keep_timed: list[TimedEvidence] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Measurements and the three integrity verdicts (TEST01, TEST04, clock) of one model and dtype.

    Each TEST01 sample is committed in ``commitment`` for the platform's reveal. With ``keep_caching``
    (the device process) the TEST04 probe's evidence is kept for the judge, who replaces this process's
    TEST04 item with its own (``rejudge_model_caching``); without, TEST04 is ``judge_model_probe``'s.
    With ``keep_timed`` (the device process) the TEST01 samples and every measurement's raw timings
    are kept for the judge (``rejudge_model_timed``), who commits the samples, decides TEST01 and
    recomputes every timed figure and the clock cross-check; this process judges none of them."""
    name, dtype = run.model.spec.name, str(run.dtype).removeprefix("torch.")
    timings: dict[str, dict[str, Any]] = {}
    measurements, samples = measure_model(run, seed, timings=timings, apart=keep_timed is not None)
    if keep_timed is not None:
        keep_timed.append(TimedEvidence(name, dtype, samples, timings))
        consistency = {
            "model": name,
            "dtype": dtype,
            "verdict": "fail",
            "sampled": 0,
            "mismatches": 0,
            "reason": "judged by the judge from the samples (rejudge_model_timed)",
        }
    else:
        if commitment is not None:
            for sample in samples:
                commitment.record(model_output_id(name, dtype, sample.label), sample.output)
        consistency = {
            "model": name,
            "dtype": dtype,
            **output_samples_verdict(run.workload, run.dtype, accuracy_out, reference, samples),
        }
    # TEST04 on the input the latency run repeated all along, against fresh one-item inputs copied
    # into its buffers (each computed apart afterwards, to check the fresh calls' outputs).
    single = run.workload.make_batch([0], run.device, run.dtype)
    fresh = [partial(_fresh_input, run, b) for b in run.fresh_single(CACHING_FRESH_INPUTS)]
    with torch.inference_mode():
        evidence = caching_evidence(
            lambda: run.forward(*single),
            single,
            fresh,
            backend=run.backend,
            seed=seed,
            salt=f"model:{name}:{dtype}",
            frames=run.frames.probe if run.frames is not None else None,
        )
    if keep_caching is not None:  # the judge decides (rejudge_model_caching); this item is replaced
        keep_caching.append((name, dtype, evidence))
        caching = {"model": name, "dtype": dtype, **judge_caching(evidence, threshold=threshold)}
    else:
        caching = judge_model_probe(
            run.workload,
            evidence,
            name=name,
            dtype=dtype,
            challenge=seed,
            threshold=threshold,
            repeated_reference=reference[:1],
        )
    timing = timing_section(measurements, run.policy)
    return measurements, consistency, caching, timing


def judge_model_probe(
    workload: Workload,
    evidence: CachingEvidence,
    *,
    name: str,
    dtype: str,
    challenge: int | str,
    threshold: float | None,
    repeated_reference: torch.Tensor,
    draw: random.Random | None = None,
) -> dict[str, Any]:
    """TEST04 of one model and dtype, decided from the probe's evidence as the performance suite's
    ``judge_probe``: ``judge_caching`` on the timings, every fresh output against the device's own
    output for its values apart, and ``FRESH_REFERENCE_CHECKS`` fresh outputs (drawn from the challenge)
    against the float64 reference of their values (``NearestReference``: nearer their own reference than
    the repeated input's, ``repeated_reference``, or the other checked input's). Fresh input i is
    variant i + 1 of the workload, one item, as ``ModelRun.fresh_single`` draws them. ``draw``: the
    judge's own secret draw of the checked inputs (the probe ran in its frames, its fresh outputs
    committed: runners/probe_frames.py); without, the challenge draws them."""
    head = {"model": name, "dtype": dtype}
    if len(evidence.fresh_outputs) != CACHING_FRESH_INPUTS:
        return {
            **head,
            "verdict": "fail",
            "reason": f"the probe ran {len(evidence.fresh_outputs)} fresh inputs; "
            f"the suite's probe runs {CACHING_FRESH_INPUTS}",
            "threshold": threshold,
        }
    references: dict[int, NearestReference] = {}
    if workload.fresh_reference is not None:
        torch_dtype = getattr(torch, dtype)
        chooser = draw or seeded_random(challenge, f"caching-reference:model:{name}:{dtype}")
        positions = sorted(
            chooser.sample(range(CACHING_FRESH_INPUTS), min(FRESH_REFERENCE_CHECKS, CACHING_FRESH_INPUTS))
        )
        expected = {p: workload.fresh_reference(p + 1, 1, torch_dtype) for p in positions}
        for position in positions:
            others = (repeated_reference, *(e for p, e in expected.items() if p != position))
            references[position] = NearestReference(expected[position], others)
    return {**head, **judge_caching(evidence, threshold=threshold, references=references)}


def _fresh_input(run: ModelRun, batch: tuple[torch.Tensor, ...]) -> FreshInput:
    return FreshInput(batch, partial(run.forward, *batch))


def _memory_and_power(
    run: ModelRun, name: str, dtype: str, base: dict[str, Any], batch_size: int, epoch_s: float
) -> list[dict[str, Any]]:
    peak = run.backend.memory_info().get("peak_allocated_bytes")
    watts = run.backend.power_watts()
    params = {**base, "batch": batch_size}
    return [
        measurement(
            name=f"{name} peak memory", kind="memory", unit="bytes", value=peak, dtype=dtype, params=params
        ),
        measurement(name=f"{name} power", kind="power", unit="W", value=watts, dtype=dtype, params=params),
        measurement(
            name=f"{name} energy per item",
            kind="energy",
            unit="J/item",
            value=None if watts is None else watts * epoch_s / run.workload.size,
            dtype=dtype,
            params=params,
        ),
    ]


def tokens_within_rounding(logits: torch.Tensor, reference: torch.Tensor, dtype: torch.dtype) -> float:
    """Share of next-token positions whose device top-1 the float64 reference ranks first, or within
    the run-to-run rounding of the dtype of its first (``default_tolerance``: atol + rtol x the
    largest reference logit of the position). Exact top-1 agreement would fail an honest bfloat16
    device on a near tie; a skipped, stale or degraded computation picks tokens far from the top."""
    if logits.shape != reference.shape or logits.numel() == 0:
        return 0.0
    logits, reference = logits.double(), reference.double()
    chosen = reference.gather(-1, logits.argmax(-1, keepdim=True)).squeeze(-1)
    best = reference.max(-1).values
    return float((chosen >= best - rounding_margin(reference, dtype)).double().mean())


def rounding_margin(reference: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """How far below a position's first float64 logit a token may lie and still be within the dtype's
    run-to-run rounding of it (``default_tolerance``: atol + rtol x the largest reference logit of the
    position), one value a position."""
    rtol, atol = default_tolerance(dtype)
    return atol + rtol * reference.double().abs().amax(-1)


def _host(output: Any) -> torch.Tensor:
    try:
        return output.detach().to("cpu", torch.float64)
    except (AttributeError, RuntimeError, TypeError):
        return torch.empty(0)  # malformed: nothing to compare, so TEST01 fails


@torch.inference_mode()
def _decoder_timings(
    run: ModelRun,
    name: str,
    dtype: str,
    base: dict[str, Any],
    seed: int | str = "",
    *,
    raw: dict[str, dict[str, Any]],
    apart: bool = False,
) -> tuple[list[dict[str, Any]], list[OutputSample]]:
    """Time to first token (prefill + first argmax) and decode tokens/s over a KV cache, with their
    TEST01 samples: the next-token logits taken at seeded rounds of both timed runs, against the
    same call untimed and against the float64 model's logits for the same context (``apart``: no
    reference here, the judge computes it: ``decoder_sample_references``)."""
    module = run.module
    call = run.step or run.forward
    items: list[dict[str, Any]] = []
    samples: list[OutputSample] = []
    reference_model = (
        None if apart else float64_copy(run.model.module, type(run.model.module), run.model.config)
    )
    for batch_size in decoder_batches(run.workload.size):
        picks = list(range(batch_size))
        prompt = run.workload.make_batch(picks, run.device, run.dtype)[0]
        length = prompt.shape[1]
        cache = module.new_cache(batch_size, length + GENERATED_TOKENS)  # type: ignore[operator]  # an nn.Module attribute is Tensor | Module to mypy

        def first_token(
            prompt: torch.Tensor = prompt, cache: Any = cache
        ) -> tuple[torch.Tensor, torch.Tensor]:
            cache.length = 0  # reuse the preallocated cache: allocation is not part of TTFT
            logits = call(prompt, cache)[:, -1]
            return logits.argmax(-1, keepdim=True), logits

        untimed_first = _host(first_token()[1])
        timed = partial(_timed, run, seed=seed, name=name, dtype=dtype, salt=f"model:{name}:{dtype}")
        ttft, kept = timed(
            first_token,
            lambda out: out[1],
            group=f"ttft b{batch_size}",
            items=picks,
            extra=partial(dict, expected=untimed_first),
        )
        host_prompt = prompt.detach().cpu()
        first_reference = None if reference_model is None else reference_model(host_prompt)[:, -1]
        samples += [
            OutputSample(f"ttft b{batch_size}@round{r}", picks, _host(t), untimed_first, first_reference)
            for r, t in kept
        ]
        token = first_token()[0]

        def next_token(token: torch.Tensor = token, cache: Any = cache, length: int = length) -> torch.Tensor:
            cache.length = length  # always the same context length, so every step costs the same
            return call(token, cache)

        untimed_step = _host(next_token())[:, -1]
        host_token = token.detach().cpu()
        step, kept = timed(
            next_token,
            lambda out: out[:, -1],
            group=f"decode b{batch_size}",
            items=picks,
            extra=partial(dict, expected=untimed_step, token=host_token),
        )
        # The reference continues the device's own first token (teacher forcing): a device whose
        # first token differed is judged on its step from there, not twice for one divergence.
        step_reference = (
            None
            if reference_model is None
            else reference_model(torch.cat([host_prompt, host_token], dim=1))[:, -1]
        )
        samples += [
            OutputSample(
                f"decode b{batch_size}@round{r}", picks, _host(t), untimed_step, step_reference, host_token
            )
            for r, t in kept
        ]
        raw[f"{name} ttft b{batch_size}"] = stats_to_wire(ttft)
        raw[f"{name} decode b{batch_size}"] = stats_to_wire(step)
        params = {**base, "batch": batch_size, "prompt_tokens": length, "context": length + 1}
        items.append(
            measurement(
                name=f"{name} ttft b{batch_size}",
                kind="ttft",
                unit="s",
                value=ttft.median,
                dtype=dtype,
                params=params,
                stats=ttft,
            )
        )
        items.append(
            measurement(
                name=f"{name} decode b{batch_size}",
                kind="decode",
                unit="tokens/s",
                value=batch_size / step.median,
                dtype=dtype,
                params=params,
                stats=step,
            )
        )
    return items, samples
