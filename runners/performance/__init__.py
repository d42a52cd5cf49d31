"""The performance suite: micro-benchmarks timed by runners.timing, judged against claims.

For each benchmark (see ``benchmarks``): build the inputs from the challenge, time the
device call, derive achieved TFLOP/s and GB/s from the catalog's FLOP and byte counts, and
compare with the job spec's declared peaks (``claims``). Every benchmark has its timed
outputs, taken at seeded rounds, checked against an untimed accuracy-mode call and against
the float64 reference (TEST01); one benchmark per (kind, dtype), drawn from the challenge,
is probed on fresh and on repeated inputs at seeded rounds of its timed run (TEST04), and a
group whose drawn benchmark was never run (a GEMM sweep that stopped earlier) is probed
after the fact on its last measured one. Each GEMM dtype's sizes are swept upwards until
throughput stops rising, judged on stable rows only (``SweepStop``), so the headline is the device's
attainable peak.

Every precision a peak can be declared in has its GEMM: float32, bfloat16 and float16 through
``matmul``, int8 through ``torch._int_mm`` and float8 (e4m3) through ``torch._scaled_mm``. A dtype
the spec asks for that the backend does not declare (``supported_dtypes``, or its GEMM kernel in
``declared_unsupported_kernels``) is recorded as an ``unsupported`` case, never silently left out:
the platform then knows the declared peak was not measured and why.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from typing import Any

import torch

from runners.catalog.base import FLOAT_DTYPES, Case, Dim, element_size, torch_dtype
from runners.commitment import OutputCommitment, performance_output_id
from runners.document import build_document, now_iso
from runners.errors import Phase, classify_exception, declared_unsupported, device_backend, device_call
from runners.integrity import (
    CachingEvidence,
    CachingProbe,
    FreshInput,
    OutputSampler,
    caching_threshold_of,
    chain_hooks,
    judge_caching,
    output_consistency,
    probe_evidence,
    reference_consistency,
    seeded_random,
)
from runners.math_modes import with_pinned_math_modes
from runners.measurements import (
    case_record,
    headline_eligible,
    integrity_section,
    measurement,
    rebuild_integrity,
    timing_section,
)
from runners.performance.benchmarks import (
    Benchmark,
    _catalog_kernel,
    attention_benchmarks,
    bandwidth_benchmarks,
    catalog_benchmark,
    conv_benchmarks,
    gemm_benchmarks,
    gemm_kernel_name,
)
from runners.performance.claims import apply_claims
from runners.probe_frames import ProbeFrameJudge, ProbeFrames, with_frames
from runners.progress import label as progress_label
from runners.timing import TimingPolicy, measure_with_output

# A larger shape is skipped when the previous one predicts a call longer than this: a
# bfloat16 GEMM emulated on a CPU without bf16 units would otherwise take minutes.
MAX_CALL_S = 2.0
# Fresh inputs per caching probe (TEST04). Each is built when its call comes and dropped after, so
# only one is in memory at a time; eight fresh samples (against about as many steady repeated
# ones) make timing noise alone separate the two medians' confidence intervals rarely (with four
# the intervals are the samples' whole range: 1 in 35 by chance against three repeated samples).
FRESH_INPUTS = 8
# Of each probe's fresh outputs, this many (drawn from the challenge) are also judged against the float64
# reference of their own values (``judge_probe``): a cache that answers every input of a shape with one
# result returns the same wrong output timed and apart, which only a reference sees. Each costs one
# host-side draw of the benchmark's inputs and its reference part (some GEMM rows, one conv image).
FRESH_REFERENCE_CHECKS = 2
PERF_DTYPES = ("float32", "bfloat16", "float16", "int8", "float8_e4m3fn")
# GEMMs whose output is wider than their operands (int32 and float32 accumulators).
WIDE_OUTPUT_DTYPES = ("int8", "float8_e4m3fn")
# The GEMM sweep doubles N from the first size while throughput still rises by this share over
# the best so far; it stops after SWEEP_PATIENCE sizes in a row that do not ("until throughput stops
# rising"). One size is not enough: a CPU's throughput often dips at one size (a cache or blocking
# boundary, a noisy neighbour) and rises again at the next, and stopping there left the headline at
# 0.6 x what a bare matmul loop reaches on the same host (issue 11).
SWEEP_RISE = 0.02
SWEEP_PATIENCE = 2


class SweepStop:
    """The GEMM sweep's stop rule for one dtype: stop after ``patience`` sizes in a row whose
    throughput does not rise by ``rise`` over the best so far.

    Only rows that may feed a headline (``runners.measurements.headline_eligible``: stable, not
    refused) are judged. An unstable row says how noisy the host was, not how fast the device is at
    that size: counted as "not rising" it stopped the sweep early, and as the best so far it set a bar
    no stable row had reached, while it can never be the headline itself (issue 11). Such a row
    leaves the count and the best as they were.
    """

    def __init__(self, rise: float = SWEEP_RISE, patience: int = SWEEP_PATIENCE) -> None:
        self.rise = rise
        self.patience = patience
        self.best: float | None = None  # best eligible TFLOP/s so far
        self.flat = 0  # eligible sizes in a row that did not rise over the best

    def observe(self, item: dict[str, Any]) -> bool:
        """Judge one measured row; True when the sweep stops after it."""
        if not headline_eligible(item):
            return False
        value = float(item["value"])
        if self.best is not None and value < self.best * (1 + self.rise):
            self.flat += 1
        else:
            self.flat = 0
        self.best = max(self.best or 0.0, value)
        return self.flat >= self.patience


# Share of the device's free memory the three GEMM operands of one sweep size may take.
SWEEP_MEMORY_SHARE = 0.25
CPU_GEMM_SIZES = [256, 512, 1024, 2048, 4096, 8192]
GPU_GEMM_SIZES = [1024, 2048, 4096, 8192, 16384, 32768]
# Bandwidth buffers are at least this many times the last-level cache, so STREAM measures
# memory and not cache (the STREAM rule: each array at least 4x the sum of all caches).
LLC_MULTIPLE = 4
DEFAULT_LLC_BYTES = 32 * 2**20

Progress = Callable[[int, int, str], None]  # (done, total, label), as the conformance suite


def _options(spec: dict[str, Any]) -> dict[str, Any]:
    """Suite settings: the job spec's ``options`` (plain keys also accepted for library callers)."""
    options = dict(spec.get("options") or {})
    for key in ("quick", "timing", "performance", "claims", "integrity"):
        if key in spec and key not in options:
            options[key] = spec[key]
    return options


@with_pinned_math_modes
def run_performance(
    spec: dict[str, Any],
    backend: Any,
    progress: Progress | None = None,
    *,
    keep_outputs: list[tuple[Benchmark, torch.Tensor, list[tuple[int, torch.Tensor]]]] | None = None,
    commitment: OutputCommitment | None = None,
    keep_caching: list[tuple[Benchmark, CachingEvidence | str]] | None = None,
    probe_frames: ProbeFrames | None = None,
) -> dict[str, Any]:
    """The performance suite's result document for a validated job spec (the CLI's suite signature).

    With a device process (runners/device), the suite's loop runs there and the judge re-judges
    TEST01 and TEST04 itself from the outputs and figures that come back (``rejudge_output_consistency``,
    ``rejudge_caching``) and commits every judged output itself (``commitment``). ``keep_outputs``
    collects, per benchmark, its accuracy output and timed samples, and ``keep_caching`` each caching
    probe's evidence, or why it has none (what the device process sends); with ``probe_frames`` (the
    device process) each timed call of a caching probe runs in a frame of the judge's
    (runners/probe_frames.py).
    """
    from runners.device import is_isolated, suite_in_device_process

    if is_isolated(backend):  # the vendor's stack runs in the device process (runners/device)
        return suite_in_device_process(spec, backend, progress, commitment=commitment)
    started_at, start = now_iso(), time.perf_counter()
    commitment = commitment if commitment is not None else OutputCommitment()
    out = run_performance_suite(
        spec,
        backend,
        seed=spec["challenge"],
        progress=progress,
        keep_outputs=keep_outputs,
        commitment=commitment,
        keep_caching=keep_caching,
        probe_frames=probe_frames,
    )
    return build_document(
        "performance",
        spec,
        backend.fingerprint(),
        out["cases"],
        {"total_s": time.perf_counter() - start},
        started_at,
        measurements=out["measurements"],
        claims=out["claims"],
        integrity=integrity_section(out["consistency"], out["caching"], out["timing"]),
        timing_policy=out["timing_policy"],
        support=out["support"],
        commitment=commitment.section(),
    )


def _gemm_sizes(options: dict[str, Any], backend: Any, dtype: str, *, quick: bool) -> tuple[list[int], bool]:
    """Candidate GEMM sizes for ``dtype`` and whether they are a sweep (stop when throughput stops rising).

    Explicit ``gemm_sizes`` are measured as given; otherwise sizes double up to what fits in
    ``SWEEP_MEMORY_SHARE`` of the device's free memory (3 operands of N x N).
    """
    perf = options.get("performance") or {}
    sizes, sweep = gemm_candidate_sizes(options, backend.name, quick=quick)
    if perf.get("gemm_sizes") or quick:
        return sizes, sweep
    free = (backend.memory_info() or {}).get("free_bytes")
    if free:
        per_element = 2 * element_size(dtype) + (4 if dtype in WIDE_OUTPUT_DTYPES else element_size(dtype))
        sizes = [n for n in sizes if per_element * n * n <= SWEEP_MEMORY_SHARE * free] or sizes[:1]
    return list(sizes), True


def gemm_candidate_sizes(
    options: dict[str, Any], backend_name: str, *, quick: bool
) -> tuple[list[int], bool]:
    """The GEMM sizes a plan names before the device is seen, and whether they are a sweep: the
    explicit ``gemm_sizes``, else the backend's candidates (``_gemm_sizes`` then keeps those that fit
    the device's memory, and the sweep may stop before the last)."""
    explicit = (options.get("performance") or {}).get("gemm_sizes")
    if explicit:  # measured as given, or swept in that order with ``sweep: true``
        return [int(n) for n in explicit], bool((options.get("performance") or {}).get("sweep", False))
    if quick:
        return [256, 512], True
    return list(CPU_GEMM_SIZES if backend_name == "cpu" else GPU_GEMM_SIZES), True


def _shaped_benchmarks(floats: list[str], *, small: bool, quick: bool, challenge: str) -> list[Benchmark]:
    """The attention and convolution benchmarks of a plan: fixed shapes, small on CPUs and in quick runs."""
    if small:
        return attention_benchmarks(
            256 if quick else 512, 1024 if quick else 2048, 8, 2, 64, floats, challenge
        ) + conv_benchmarks(1 if quick else 2, floats[:1] if quick else floats, challenge)
    return attention_benchmarks(2048, 8192, 32, 8, 128, floats, challenge) + conv_benchmarks(
        32, floats, challenge
    )


def planned_benchmarks(spec: dict[str, Any], backend_name: str) -> list[Benchmark]:
    """What the platform can name of a job's performance plan before its device runs it (issue 13:
    the reveal's references computed while the runner runs): the GEMMs of every candidate size of
    each planned dtype (the device measures a prefix of them), the attention and convolution
    benchmarks. Not the STREAM buffers, whose size follows the device's cache, nor the dtypes of a
    plan that names none (the device's declaration chooses them)."""
    options = _options(spec)
    perf = options.get("performance") or {}
    dtypes = list(perf.get("dtypes") or [])
    quick = bool(options.get("quick"))
    small = quick or backend_name == "cpu"
    benches: list[Benchmark] = []
    for dtype in dtypes:
        sizes, _ = gemm_candidate_sizes(options, backend_name, quick=quick)
        benches += gemm_benchmarks(sizes, [dtype], spec["challenge"])
    floats = [d for d in dtypes if d in FLOAT_DTYPES]
    benches += _shaped_benchmarks(floats, small=small, quick=quick, challenge=spec["challenge"])
    kinds = perf.get("kinds")
    return [b for b in benches if not kinds or b.kind in kinds]


def bandwidth_buffer_bytes(backend: Any, requested: int | None = None) -> int:
    """STREAM buffer size: at least ``LLC_MULTIPLE`` x the last-level cache, whatever was requested."""
    llc = backend.last_level_cache_bytes() or DEFAULT_LLC_BYTES
    return max(LLC_MULTIPLE * llc, int(requested or 0))


def plan(spec: dict[str, Any], backend: Any, *, challenge: str, quick: bool) -> list[Benchmark]:
    """The benchmarks for this device: small shapes on CPUs and in quick runs, large elsewhere.

    GEMMs come first, each dtype's candidate sizes in ascending order (the suite stops a
    dtype's sweep once throughput stops rising).
    """
    options = _options(spec)
    perf = options.get("performance") or {}
    # A planned dtype stays in the plan whatever the backend declares: one it does not declare ends as
    # "unsupported" cases (recorded, never silently dropped); a standalone run's default set is only
    # what the backend declares.
    if perf.get("dtypes"):
        dtypes = list(perf["dtypes"])
    else:
        supported = set(backend.supported_dtypes())
        dtypes = [d for d in PERF_DTYPES if d in supported]
    floats = [d for d in dtypes if d in FLOAT_DTYPES]
    small = quick or backend.name == "cpu"
    benches: list[Benchmark] = []
    declaration = backend.support_declaration()
    for dtype in dtypes:
        if declared_unsupported(declaration, gemm_kernel_name(dtype), dtype) is not None:
            continue  # recorded as an unsupported case by unmeasured_gemms
        sizes, _ = _gemm_sizes(options, backend, dtype, quick=quick)
        benches += gemm_benchmarks(sizes, [dtype], challenge)
    if not perf.get("kinds") or "bandwidth" in perf["kinds"]:
        default = None if small else 1 << 30
        buffer = bandwidth_buffer_bytes(backend, perf.get("bandwidth_bytes") or default)
        benches += bandwidth_benchmarks(buffer, challenge)
    benches += _shaped_benchmarks(floats, small=small, quick=quick, challenge=challenge)
    kinds = perf.get("kinds")  # a reduced plan (tests, the bench scripts): only these kinds
    return [b for b in benches if not kinds or b.kind in kinds]


def unmeasured_gemms(spec: dict[str, Any], backend: Any) -> list[dict[str, Any]]:
    """An ``unsupported`` case for every requested GEMM dtype the backend's declaration leaves out,
    with the declaration's reason (runners/errors.py): what this device cannot measure, said plainly."""
    perf = _options(spec).get("performance") or {}
    declaration = backend.support_declaration()
    records = []
    for dtype in perf.get("dtypes", PERF_DTYPES):
        kernel = gemm_kernel_name(dtype)
        outcome = declared_unsupported(declaration, kernel, dtype)
        if outcome is not None:
            records.append(
                case_record(
                    kernel,
                    dtype,
                    f"{kernel} gemm sweep",
                    outcome.status,
                    error_class=outcome.error_class,
                    code=outcome.code,
                    reason=outcome.reason,
                    message=f"{backend.name}: {outcome.reason}; the declared peak cannot be measured here",
                )
            )
    return records


def _probe_choice(benches: list[Benchmark], seed: int | str, salt: str) -> dict[tuple[str, str], int]:
    """One benchmark index per (kind, dtype), drawn from the challenge."""
    groups: dict[tuple[str, str], list[int]] = {}
    for index, bench in enumerate(benches):
        groups.setdefault(bench.group, []).append(index)
    chooser = seeded_random(seed, salt)
    return {group: chooser.choice(indices) for group, indices in sorted(groups.items())}


def run_performance_suite(
    spec: dict[str, Any],
    backend: Any,
    *,
    seed: int | str,
    progress: Progress | None = None,
    keep_outputs: list[tuple[Benchmark, torch.Tensor, list[tuple[int, torch.Tensor]]]] | None = None,
    commitment: OutputCommitment | None = None,
    keep_caching: list[tuple[Benchmark, CachingEvidence | str]] | None = None,
    probe_frames: ProbeFrames | None = None,
) -> dict[str, Any]:
    """Measurements, claim verdicts and integrity verdicts of the performance suite.

    Every output TEST01 judges (the accuracy-mode call and the samples of the timed run) is committed
    in ``commitment`` for the platform's reveal. With ``keep_caching`` (the device process) each
    caching probe's evidence is kept for the judge, and this process's TEST04 items, which the judge
    replaces, skip the float64 reference of the fresh inputs."""
    options = _options(spec)
    quick = bool(options.get("quick"))
    policy = TimingPolicy.from_dict({**(options.get("timing") or {}), "quick": quick})
    perf = options.get("performance") or {}
    caching_threshold = caching_threshold_of(options)
    challenge = str(seed)
    device = backend.device()
    prepare: Callable[[Callable[[], Any]], Callable[[], Any]] = backend.prepare
    timed_backend = device_backend(backend)  # what the timing code calls is the device's
    # What the backend declares it supports, before anything runs: only a benchmark this leaves out
    # is "unsupported" (runners/errors.py); the document records it for the platform's check.
    declaration = backend.support_declaration()
    benches = plan(spec, backend, challenge=challenge, quick=quick)
    # Bandwidth is not probed: its fresh inputs would be several more buffers of 4x the LLC.
    computing = [b for b in benches if b.kind != "bandwidth"]
    probed = {_key(computing[i]) for i in _probe_choice(computing, seed, "performance:caching").values()}
    sweeps = {d: _gemm_sizes(options, backend, d, quick=quick)[1] for d in {b.dtype for b in benches}}
    rise = float(perf.get("sweep_rise", SWEEP_RISE))
    patience = int(perf.get("sweep_patience", SWEEP_PATIENCE))
    max_call_s = float(perf.get("max_call_s", MAX_CALL_S))
    total = len(benches) + 1

    def say(done: int, label: str) -> None:
        if progress:
            progress(done, total, label)

    items: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = unmeasured_gemms(spec, backend)
    skipped: list[dict[str, Any]] = []
    consistency: list[dict[str, Any]] = []
    caching: list[dict[str, Any]] = []
    last_rate: dict[tuple[str, str], float] = {}  # (kind, dtype) -> seconds per FLOP or byte
    sweep_rules: dict[str, SweepStop] = {}  # dtype -> its sweep's stop rule (stable rows only)
    stopped: dict[str, int] = {}  # dtype -> the size at which its sweep stopped rising
    probed_groups: set[tuple[str, str]] = set()
    last_measured: dict[
        tuple[str, str], tuple[Benchmark, Callable[[], Any], tuple[torch.Tensor, ...], Callable[[Any], Any]]
    ] = {}
    for index, bench in enumerate(benches):
        say(index, f"{bench.name} {bench.dtype}")
        work = bench.flops or bench.bytes
        if bench.kind == "gemm" and bench.dtype in stopped:
            skipped.append(
                {
                    "name": bench.name,
                    "dtype": bench.dtype,
                    "reason": f"throughput stopped rising at N={stopped[bench.dtype]}",
                }
            )
            continue
        predicted = last_rate.get(bench.group, 0.0) * work
        if predicted > max_call_s:
            skipped.append(
                {
                    "name": bench.name,
                    "dtype": bench.dtype,
                    "predicted_call_s": predicted,
                    "reason": "too long",
                }
            )
            continue
        declared = declared_unsupported(declaration, bench.params.get("kernel", bench.kind), bench.dtype)
        if declared is not None:
            cases.append(
                case_record(
                    bench.params.get("kernel", bench.kind),
                    bench.dtype,
                    bench.name,
                    declared.status,
                    error_class=declared.error_class,
                    code=declared.code,
                    reason=declared.reason,
                    message=f"{backend.name}: {declared.reason}",
                    flops=bench.flops,
                    bytes_moved=bench.bytes,
                )
            )
            continue
        # The float64 reference is the judge's own work on the host, from the challenge alone.
        reference = bench.reference() if bench.reference is not None else None
        select = reference.select if reference is not None else _first
        try:  # the device builds its inputs and computes once, untimed (accuracy mode)
            built = bench.build(device, 0)
            fn = device_call(prepare(built))
            accuracy = select(fn()).detach().to("cpu")
        except Exception as exc:  # evidence, not a crash; never "unsupported" (runners/errors.py)
            cases.append(_error_case(bench, exc, phase="device"))
            continue
        try:  # the timed block: device calls marked, the harness's sampling, probes and statistics not
            sampler = OutputSampler(select, seed=seed, salt=f"performance:{bench.name}:{bench.dtype}")
            probe = None
            if _key(bench) in probed:
                probe = _caching_probe(
                    bench,
                    fn,
                    built.inputs,
                    device,
                    backend,
                    prepare,
                    seed,
                    caching_threshold,
                    select,
                    frames=probe_frames,
                )
            stats, _ = measure_with_output(
                fn, backend=timed_backend, policy=policy, between_rounds=chain_hooks(sampler, probe)
            )
            if probe is not None:
                probe.complete()
        except Exception as exc:
            cases.append(_error_case(bench, exc, phase="timed"))
            continue
        samples = sampler.finish()
        if commitment is not None:
            commitment.record(performance_output_id(bench.name, bench.dtype, "accuracy"), accuracy)
            for round_index, output in samples:
                commitment.record(
                    performance_output_id(bench.name, bench.dtype, f"round{round_index}"), output
                )
        consistency.append(_consistency(bench, accuracy, samples, reference))
        if keep_outputs is not None:
            keep_outputs.append((bench, accuracy, samples))
        if probe is not None:
            probed_groups.add(bench.group)
            caching.append(_probe_verdict(bench, probe, challenge, caching_threshold, keep_caching))
        elif bench.kind != "bandwidth":
            last_measured[bench.group] = (bench, fn, built.inputs, select)
        item = _measurement(bench, stats)
        items.append(item)
        last_rate[bench.group] = stats.median / max(work, 1)
        if bench.kind == "gemm" and sweeps.get(bench.dtype):
            rule = sweep_rules.setdefault(bench.dtype, SweepStop(rise, patience))
            if rule.observe(item):
                stopped[bench.dtype] = bench.params["M"]
    say(len(benches), progress_label("caching_after"))
    for group, (bench, fn, inputs, select) in sorted(last_measured.items(), key=lambda kv: kv[0]):
        if group in probed_groups:
            continue
        try:
            probe = _caching_probe(
                bench,
                fn,
                inputs,
                device,
                backend,
                prepare,
                seed,
                caching_threshold,
                select,
                after=True,
                frames=probe_frames,
            )
            probe.complete()
        except Exception as exc:  # noqa: BLE001 - the device failed on a fresh input: evidence
            reason = f"{type(exc).__name__}: {exc}"[:500]
            if keep_caching is not None:
                keep_caching.append((bench, reason))
            caching.append(_probe_failure(bench, reason))
            continue
        caching.append(_probe_verdict(bench, probe, challenge, caching_threshold, keep_caching))
    last_measured.clear()
    claims = apply_claims(items, spec)
    claims["skipped"] = skipped
    if progress:
        progress(total, total, progress_label("done"))
    return {
        "cases": cases,
        "measurements": items,
        "claims": claims,
        "consistency": [_merge_consistency(consistency)] if consistency else [],
        "caching": caching,
        "timing": timing_section(items, policy),
        "timing_policy": {**asdict(policy), "quick": quick},
        "support": declaration,
    }


def _key(bench: Benchmark) -> tuple[str, str]:
    return bench.name, bench.dtype


def _caching_probe(
    bench: Benchmark,
    fn: Callable[[], Any],
    inputs: tuple[torch.Tensor, ...],
    device: torch.device,
    backend: Any,
    prepare: Callable[[Callable[[], Any]], Callable[[], Any]],
    seed: int | str,
    threshold: float | None,
    select: Callable[[Any], torch.Tensor],
    *,
    after: bool = False,
    frames: ProbeFrames | None = None,
) -> CachingProbe:
    """TEST04 for one benchmark: ``fn`` (its timed callable, reading ``inputs``) against
    ``FRESH_INPUTS`` new inputs, copied into ``inputs`` before their calls (runners/integrity.py)."""
    fresh = [partial(_fresh_input, bench, device, prepare, v) for v in range(1, FRESH_INPUTS + 1)]
    return CachingProbe(
        fn,
        inputs,
        fresh,
        backend=device_backend(backend),
        seed=seed,
        salt=f"performance:{bench.name}:{bench.dtype}",
        probability=0.0 if after else 0.25,
        threshold=threshold,
        select=select,
        frames=frames,
    )


def _probe_verdict(
    bench: Benchmark,
    probe: CachingProbe,
    challenge: str,
    threshold: float | None,
    keep_caching: list[tuple[Benchmark, CachingEvidence | str]] | None,
) -> dict[str, Any]:
    """One probed benchmark's TEST04 item. In the device process (``keep_caching``) the evidence is
    kept for the judge, who replaces this item with its own (``rejudge_caching``)."""
    evidence = probe.evidence()
    if keep_caching is not None:
        keep_caching.append((bench, evidence))
        head = {"benchmark": bench.name, "dtype": bench.dtype, "kind": bench.kind}
        return {**head, **judge_caching(evidence, threshold=threshold)}
    return judge_probe(bench, evidence, challenge=challenge, threshold=threshold)


def _probe_failure(bench: Benchmark, reason: str) -> dict[str, Any]:
    return {
        "benchmark": bench.name,
        "dtype": bench.dtype,
        "kind": bench.kind,
        "verdict": "fail",
        "reason": reason,
    }


def judge_probe(
    bench: Benchmark,
    evidence: CachingEvidence,
    *,
    challenge: str,
    threshold: float | None,
    draw: random.Random | None = None,
) -> dict[str, Any]:
    """TEST04 of one probed benchmark, decided by the judge from the probe's evidence: timings, every
    fresh output against the device's own output for its values apart, ``FRESH_REFERENCE_CHECKS`` fresh
    outputs (drawn from the challenge) against the float64 reference of their values, and the suite's
    count of fresh inputs (``FRESH_INPUTS``, fresh input i being variant i + 1 of the benchmark). ``draw``:
    the judge's own secret draw of the checked inputs (the probe ran in its frames, its fresh outputs
    committed: runners/probe_frames.py); without, the challenge draws them."""
    head = {"benchmark": bench.name, "dtype": bench.dtype, "kind": bench.kind}
    if len(evidence.fresh_outputs) != FRESH_INPUTS:
        return {
            **head,
            **_probe_failure(
                bench,
                f"the probe ran {len(evidence.fresh_outputs)} fresh inputs; the suite's probe runs {FRESH_INPUTS}",
            ),
            "threshold": threshold,
        }
    references: dict[int, Any] = {}
    if bench.reference is not None:
        chooser = draw or seeded_random(challenge, f"caching-reference:{bench.name}:{bench.dtype}")
        for position in sorted(
            chooser.sample(range(FRESH_INPUTS), min(FRESH_REFERENCE_CHECKS, FRESH_INPUTS))
        ):
            references[position] = bench.reference(position + 1)
    return {**head, **judge_caching(evidence, threshold=threshold, references=references)}


def _fresh_input(
    bench: Benchmark,
    device: torch.device,
    prepare: Callable[[Callable[[], Any]], Callable[[], Any]],
    variant: int,
) -> FreshInput:
    """Fresh input ``variant`` of ``bench`` (built when the probe needs it) and its call apart."""
    other = device_call(bench.build)(device, variant)
    # Prepared only when called, after its timed call: a backend that runs what it prepares (graph
    # capture) must not see the fresh values before then.
    return FreshInput(other.inputs, partial(_prepare_and_call, prepare, other))


def _prepare_and_call(
    prepare: Callable[[Callable[[], Any]], Callable[[], Any]], call: Callable[[], Any]
) -> Any:
    return device_call(prepare(call))()


def _error_case(bench: Benchmark, exc: Exception, *, phase: Phase) -> dict[str, Any]:
    """The error case of a benchmark that raised, classified by where (runners/errors.py)."""
    outcome = classify_exception(exc, phase=phase)
    return case_record(
        bench.params.get("kernel", bench.kind),
        bench.dtype,
        bench.name,
        outcome.status,
        error_class=outcome.error_class,
        code=outcome.code,
        reason=outcome.reason,
        message=f"{type(exc).__name__}: {exc}"[:500],
        flops=bench.flops,
        bytes_moved=bench.bytes,
    )


def _measurement(bench: Benchmark, stats: Any) -> dict[str, Any]:
    seconds = stats.median
    tflops = bench.flops / seconds / 1e12
    gbs = bench.bytes / seconds / 1e9
    value, unit = (gbs, "GB/s") if bench.kind == "bandwidth" else (tflops, "TFLOP/s")
    params = {
        **bench.params,
        "flops": bench.flops,
        "bytes": bench.bytes,
        "achieved_tflops": tflops,
        "achieved_gbs": gbs,
        "seconds": seconds,
    }
    return measurement(
        name=bench.name,
        kind=bench.kind,
        unit=unit,
        value=value,
        dtype=bench.dtype,
        params=params,
        stats=stats,
    )


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple | list) else output


def _consistency(
    bench: Benchmark, accuracy: torch.Tensor, samples: list[tuple[int, torch.Tensor]], reference: Any
) -> dict[str, Any]:
    """TEST01 of one benchmark: timed samples against the accuracy pass and against float64."""
    key = f"{bench.name}:{bench.dtype}"
    labels = [f"{key}@round{r}" for r, _ in samples]
    against_accuracy = output_consistency(
        {label: accuracy for label in labels},
        dict(zip(labels, (t for _, t in samples), strict=True)),
        dtype=torch_dtype(bench.dtype),
        sampled=labels,
    )
    item: dict[str, Any] = {
        "benchmark": bench.name,
        "dtype": bench.dtype,
        "kind": bench.kind,
        "rounds": [r for r, _ in samples],
        "against_accuracy": against_accuracy,
    }
    failed = against_accuracy["verdict"] == "fail"
    if reference is not None:
        outputs = [(f"{key}@accuracy", accuracy), *zip(labels, (t for _, t in samples), strict=True)]
        item["against_reference"] = reference_consistency(
            outputs, reference.expected, reference.tolerance, reference.bound
        )
        failed = failed or item["against_reference"]["verdict"] == "fail"
    item["verdict"] = "fail" if failed else "pass"
    return item


def _merge_consistency(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The performance suite's one TEST01 verdict over its checked benchmarks."""
    mismatches = sum(
        p["against_accuracy"]["mismatches"] + (p.get("against_reference") or {}).get("mismatches", 0)
        for p in parts
    )
    return {
        "verdict": "fail" if any(p["verdict"] == "fail" for p in parts) else "pass",
        "sampled": sum(p["against_accuracy"]["sampled"] for p in parts),
        "sample_ids": [f"{p['benchmark']}:{p['dtype']}" for p in parts],
        "mismatches": mismatches,
        "details": [d for p in parts for d in p["against_accuracy"]["details"]][:10],
        "max_abs_diff": max((p["against_accuracy"]["max_abs_diff"] for p in parts), default=0.0),
        "reference_failures": [
            f"{p['benchmark']}:{p['dtype']}"
            for p in parts
            if (p.get("against_reference") or {}).get("verdict") == "fail"
        ],
        "suite": "performance",
        "benchmarks": parts,
    }


def rebuild_benchmark(
    name: str, kind: str, dtype: str, params: dict[str, Any], challenge: str
) -> Benchmark | None:
    """The benchmark the device process says it ran, rebuilt by the judge from the challenge (its
    float64 reference included); None when no benchmark of this suite has that name and parameters."""
    try:
        if "kernel" in params and "case" in params:
            kernel = _catalog_kernel(str(params["kernel"]))
            dims: dict[str, Dim] = {k: int(v) for k, v in params.items() if k not in ("kernel", "case")}
            bench = (
                catalog_benchmark(kernel, Case(str(params["case"]), dims), dtype, kind, challenge)
                if kernel
                else None
            )
        elif kind == "bandwidth":
            bench = next(
                (b for b in bandwidth_benchmarks(int(params["elements"]) * 4, challenge) if b.name == name),
                None,
            )
        elif kind == "attention" and params.get("phase") == "prefill":
            heads = int(params["heads"])
            bench = attention_benchmarks(
                int(params["seq"]), 1, heads, heads, int(params["head_dim"]), [dtype], challenge
            )[0]
        elif kind == "attention" and params.get("phase") == "decode":
            bench = attention_benchmarks(
                1,
                int(params["context"]),
                int(params["heads"]),
                int(params["kv_heads"]),
                int(params["head_dim"]),
                [dtype],
                challenge,
            )[1]
        else:
            bench = None
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if bench is None or bench.name != name or bench.kind != kind or bench.dtype != dtype:
        return None
    return bench


def rejudge_output_consistency(
    document: dict[str, Any], outputs: list[dict[str, Any]], tensors: dict[str, torch.Tensor], challenge: str
) -> dict[str, Any]:
    """TEST01 judged by the judge: the device process's outputs against the judge's own float64
    references and tolerances; the document's ``integrity`` is rebuilt around this verdict (caching
    and timing figures are the device's measurements and stay as measured)."""
    parts: list[dict[str, Any]] = []
    for index, item in enumerate(outputs):
        name, kind, dtype = str(item.get("name")), str(item.get("kind")), str(item.get("dtype"))
        bench = rebuild_benchmark(name, kind, dtype, dict(item.get("params") or {}), challenge)
        accuracy = tensors.get(f"{index}.accuracy")
        rounds = [int(r) for r in item.get("rounds") or []]
        samples = [(r, tensors[f"{index}.round{r}"]) for r in rounds if f"{index}.round{r}" in tensors]
        if bench is None or accuracy is None or not samples or len(samples) != len(rounds):
            parts.append(
                {
                    "benchmark": name,
                    "dtype": dtype,
                    "kind": kind,
                    "rounds": rounds,
                    "against_accuracy": {
                        "verdict": "fail",
                        "sampled": 0,
                        "mismatches": 1,
                        "details": [
                            f"{name}:{dtype}: the judge cannot rebuild this benchmark or its outputs are missing"
                        ],
                        "max_abs_diff": 0.0,
                    },
                    "verdict": "fail",
                }
            )
            continue
        reference = bench.reference() if bench.reference is not None else None
        parts.append(_consistency(bench, accuracy, samples, reference))
    rebuild_integrity(document, consistency=[_merge_consistency(parts)] if parts else [])
    return document


def rejudge_caching(
    document: dict[str, Any],
    records: list[dict[str, Any]],
    tensors: dict[str, torch.Tensor],
    spec: dict[str, Any],
    frames: ProbeFrameJudge | None = None,
) -> dict[str, Any]:
    """TEST04 judged by the judge: each caching probe's timings and kept outputs from the device process
    (``records``, tensors ``caching<i>.*``), judged by ``judge_probe`` with the judge's own spec, rebuilt
    benchmark and float64 references; the device process's own TEST04 items are dropped. Every measured
    (kind, dtype) group but bandwidth must come back probed, or it fails.

    With the judge's frames around the probe's calls (``frames``: the device process,
    runners/probe_frames.py) the timings must be the frames' and fit the judge's clock within the
    program's clock bounds, each fresh output must be the one committed in its frame, and the fresh
    inputs judged against the float64 reference are the judge's own secret draw."""
    challenge = str(spec["challenge"])
    options = _options(spec)
    threshold = caching_threshold_of(options)
    policy = TimingPolicy.from_dict({**(options.get("timing") or {}), "quick": bool(options.get("quick"))})
    bounds = (policy.clock_bounds, policy.block_min_s)
    draw = secrets.SystemRandom() if frames is not None else None
    items: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        name, kind, dtype = str(record.get("name")), str(record.get("kind")), str(record.get("dtype"))
        head = {"benchmark": name, "dtype": dtype, "kind": kind, "verdict": "fail", "threshold": threshold}
        params = record.get("params")
        bench = rebuild_benchmark(
            name, kind, dtype, dict(params) if isinstance(params, dict) else {}, challenge
        )
        if bench is None or kind == "bandwidth":
            items.append({**head, "reason": "the judge cannot rebuild this benchmark from the challenge"})
            continue
        evidence = probe_evidence(record, tensors, index)
        if isinstance(evidence, str):
            items.append({**head, "reason": evidence})
            continue
        item = judge_probe(bench, evidence, challenge=challenge, threshold=threshold, draw=draw)
        items.append(with_frames(item, frames, f"performance:{bench.name}:{bench.dtype}", evidence, bounds))
    probed = {(item["kind"], item["dtype"]) for item in items}
    for entry in document.get("measurements") or []:
        group = (str(entry.get("kind")), str(entry.get("dtype")))
        if group[0] != "bandwidth" and group not in probed:
            probed.add(group)
            items.append(
                {
                    "benchmark": str(entry.get("name")),
                    "dtype": group[1],
                    "kind": group[0],
                    "verdict": "fail",
                    "threshold": threshold,
                    "reason": "no caching probe of this kind and dtype came back from the device process",
                }
            )
    rebuild_integrity(document, caching=items)
    return document
