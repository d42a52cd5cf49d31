"""TEST01 (output consistency) and TEST04 (caching) catch cheating devices."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

from runners.backends.builtin import CpuBackend
from runners.integrity import CachingProbe, FreshInput, caching_verdict, output_consistency, sample_indices
from runners.model_suite import run_model_suite
from runners.models.resnet import ResNetConfig
from runners.models.seeded import seeded_model_entry
from runners.performance import run_performance_suite
from runners.timing import summarize

# A real weights file (seeded, written once for this module's tests): models run files only.
SMALL_MODEL = seeded_model_entry(
    "resnet-tiny",
    "resnet-cnn",
    asdict(ResNetConfig.small()),
    seed=0,
    directory=Path(tempfile.gettempdir()) / "runners-tests-seeded",
)
# The TEST04 bound a platform job spec carries (the program level's test04_max_speedup).
BARS = {"integrity": {"caching_threshold": 0.1}}
MODEL_SPEC = {"quick": True, "models": [SMALL_MODEL], "model_dtypes": ["float32"], **BARS}
PERF_SPEC = {"quick": True, "performance": {"dtypes": ["float32"], "gemm_sizes": [128, 256]}, **BARS}
# A reduced plan for the cheats below: GEMMs only, so each test times a handful of kernels.
GEMM_SPEC = {
    "quick": True,
    "performance": {"dtypes": ["float32"], "gemm_sizes": [192], "kinds": ["gemm"]},
    **BARS,
}


class MemoizingBackend(CpuBackend):
    """Returns the remembered output when it has seen the same input content before."""

    def prepare(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        memory: dict[str, Any] = {}

        def memoized(*args: Any) -> Any:
            digest = hashlib.sha256()
            for a in args:
                digest.update(a.numpy().tobytes() if isinstance(a, torch.Tensor) else repr(a).encode())
            key = digest.hexdigest()
            if key not in memory:
                memory[key] = fn(*args)
            return memory[key]

        return memoized


# The device kernels a memoizing device below serves from memory (the suites' timed work).
MEMO_KERNELS = {"matmul", "_int_mm", "_scaled_mm", "conv2d", "scaled_dot_product_attention", "linear"}


def _content_key(t: torch.Tensor) -> object:
    # A fingerprint of the values (every 61st element), cheap beside the kernel it saves.
    return tuple(t.shape), t.detach().flatten()[::61].float().numpy().tobytes()


def _address_key(t: torch.Tensor) -> object:
    return t.data_ptr(), tuple(t.shape), t.stride()


class _KernelMemo(TorchFunctionMode):
    """Serves a kernel from memory when its tensor arguments' keys were seen before."""

    def __init__(self, memory: dict[Any, Any], key: Callable[[torch.Tensor], object]) -> None:
        super().__init__()
        self.memory, self.key = memory, key

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") not in MEMO_KERNELS:
            return func(*args, **kwargs)
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        key = (func.__name__, *(self.key(t) for t in tensors))
        if key not in self.memory:
            self.memory[key] = func(*args, **kwargs)
        return self.memory[key]


class ContentMemoBackend(CpuBackend):
    """A device that memoizes each kernel by the content of its inputs (right answers, no work)."""

    key = staticmethod(_content_key)

    def __init__(self) -> None:
        super().__init__()
        self.memory: dict[Any, Any] = {}

    def prepare(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def memoized(*args: Any) -> Any:
            with _KernelMemo(self.memory, self.key):
                return fn(*args)

        return memoized


class AddressMemoBackend(ContentMemoBackend):
    """A device that memoizes each kernel by its input buffers' addresses (as a captured graph
    replayed without looking at its inputs would): stale answers once the buffers are refilled."""

    key = staticmethod(_address_key)


class SkipComputeBackend(CpuBackend):
    """Computes honestly for the first calls (the accuracy run, 4 batches), then returns zeros."""

    honest_calls = 6

    def prepare(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        state: dict[str, Any] = {"calls": 0, "first": None}

        def lazy(*args: Any) -> Any:
            state["calls"] += 1
            if state["calls"] <= self.honest_calls:
                state["first"] = fn(*args)
                return state["first"]
            return torch.zeros_like(state["first"])

        return lazy


class LateMemoBackend(CpuBackend):
    """Computes honestly for the first calls of each prepared callable, then returns the remembered output.

    The old caching check timed a separately prepared callable ten times: this memo never
    started there, while the timed run (hundreds of calls) was served from memory.
    """

    honest_calls = 12

    def prepare(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        state: dict[str, Any] = {"calls": 0, "output": None}

        def late(*args: Any) -> Any:
            state["calls"] += 1
            if state["calls"] <= self.honest_calls or state["output"] is None:
                state["output"] = fn(*args)
            return state["output"]

        return late


class RefreshingMemoBackend(CpuBackend):
    """Memoizes every prepared callable, and drops every memo when a different callable runs.

    A fresh input (another prepared callable) refreshes the cache, so the repeated call right
    after it is honest: the old check's strict fresh/repeated alternation only saw those.
    """

    def __init__(self) -> None:
        super().__init__()
        self.memo: dict[int, Any] = {}
        self.last: int | None = None

    def prepare(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def refreshing(*args: Any) -> Any:
            me = id(refreshing)
            if self.last != me:
                self.memo.clear()
                self.last = me
            if me not in self.memo:
                self.memo[me] = fn(*args)
            return self.memo[me]

        return refreshing


@pytest.mark.slow
def test_memoization_that_starts_after_the_first_calls_fails_the_caching_check() -> None:
    result = run_performance_suite(GEMM_SPEC, LateMemoBackend(), seed="challenge-late")
    (caching,) = result["caching"]
    assert caching["verdict"] == "fail", caching
    # A memo of the callable serves the refilled buffers the repeated input's answer.
    assert caching["fresh_output_mismatches"] > 0 and caching["fresh_outputs_stale"] > 0


def test_memoization_that_refreshes_on_new_inputs_fails_the_caching_check() -> None:
    result = run_performance_suite(GEMM_SPEC, RefreshingMemoBackend(), seed="challenge-refresh")
    (caching,) = result["caching"]
    assert caching["verdict"] == "fail", caching
    assert caching["repeated_side"] == "steady"


def test_a_device_memoizing_by_content_is_caught_by_the_repeat_speedup() -> None:
    (caching,) = run_performance_suite(GEMM_SPEC, ContentMemoBackend(), seed="challenge-content")["caching"]
    assert caching["verdict"] == "fail", caching
    assert caching["speedup_ratio"] > 1.1
    assert caching["fresh_outputs_checked"] == caching["fresh_n"] > 0
    assert caching["fresh_output_mismatches"] == 0  # its answers are right: only the timing shows it


def test_a_device_memoizing_by_buffer_address_is_caught_by_its_stale_fresh_outputs() -> None:
    (caching,) = run_performance_suite(GEMM_SPEC, AddressMemoBackend(), seed="challenge-address")["caching"]
    # The refilled buffers keep their addresses: this memo is as fast on both sides, and wrong.
    assert caching["verdict"] == "fail", caching
    assert caching["fresh_output_mismatches"] == caching["fresh_outputs_checked"] == caching["fresh_n"]
    assert caching["fresh_outputs_stale"] == caching["fresh_n"]
    assert "fresh calls returned an output other than" in caching["reason"]


@pytest.fixture
def one_thread():
    """One torch thread: on a shared 2-core host a 2-thread GEMM's calls stall for whole scheduler
    slices (40 us to 40 ms), which hides the cache effect under test in noise both ways."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("size", [64, 128])
def test_an_honest_cpu_passes_the_caching_probe_at_cache_resident_gemm_sizes(size: int, one_thread) -> None:
    """Inputs of 16-64 KiB stay in this CPU's caches. The old probe, whose fresh inputs were filled
    long before their call, timed them cold against a hot repeated input and failed honest runs:
    repeat speed-ups 1.1-2.5, 4 of 12 runs of this loop failed on the old code (bench/test04_probe.py)."""
    spec = {**GEMM_SPEC, "performance": {**GEMM_SPEC["performance"], "gemm_sizes": [size]}}
    for run in range(4):
        (caching,) = run_performance_suite(spec, CpuBackend(), seed=f"honest-{size}-{run}")["caching"]
        assert caching["verdict"] == "pass", caching
        assert (
            caching["fresh_outputs_checked"] == caching["fresh_n"] and not caching["fresh_output_mismatches"]
        )


def _counting_probe(seed: str, fresh: int = 6) -> CachingProbe:
    buffer = torch.zeros(4)

    def fresh_input(i: int) -> FreshInput:
        values = torch.full((4,), float(i))
        return FreshInput((values,), values.clone)

    return CachingProbe(
        buffer.clone,
        [buffer],
        [partial(fresh_input, i) for i in range(1, fresh + 1)],
        backend=None,
        seed=seed,
        salt="x",
    )


def test_caching_probes_land_at_seeded_rounds_with_seeded_patterns() -> None:
    def probe(seed: str) -> CachingProbe:
        p = _counting_probe(seed)
        for round_index in range(20):
            p(round_index, None)
        p.finish()
        return p

    a, b, c = probe("s1"), probe("s1"), probe("s2")
    assert (a.rounds, a.patterns) == (b.rounds, b.patterns)
    assert (a.rounds, a.patterns) != (c.rounds, c.patterns)
    assert len(a.fresh_samples) == 6  # every fresh input used exactly once
    assert all(set(p) <= {"R", "F"} and p.count("R") >= 2 for p in a.patterns)


def test_the_probe_refills_the_timed_buffers_and_hands_them_back_with_their_own_values() -> None:
    seen: list[float] = []
    buffer = torch.zeros(4)

    def call() -> torch.Tensor:
        seen.append(float(buffer[0]))
        return buffer.clone()

    fresh = [
        partial(lambda i: FreshInput((torch.full((4,), float(i)),), lambda: torch.full((4,), float(i))), i)
        for i in (1, 2, 3)
    ]
    probe = CachingProbe(call, [buffer], fresh, backend=None, seed="s", salt="x", threshold=0.1)
    verdict = probe.finish()
    assert sorted(v for v in seen if v) == [1.0, 2.0, 3.0]  # each fresh value timed once, in place
    assert float(buffer.abs().sum()) == 0.0  # the timed run goes on with its own input
    assert verdict["fresh_outputs_checked"] == 3 and verdict["fresh_output_mismatches"] == 0


def test_sampled_indices_follow_the_challenge_seed() -> None:
    assert sample_indices("seed-a", 100, 5, salt="x") == sample_indices("seed-a", 100, 5, salt="x")
    assert sample_indices("seed-a", 100, 5, salt="x") != sample_indices("seed-b", 100, 5, salt="x")
    assert sample_indices("s", 3, 10, salt="x") == [0, 1, 2]


def test_output_consistency_detects_a_changed_output() -> None:
    a = {0: torch.ones(4), 1: torch.ones(4)}
    assert output_consistency(a, dict(a), dtype=torch.float32, sampled=[0, 1])["verdict"] == "pass"
    bad = output_consistency(a, {0: torch.ones(4), 1: torch.zeros(4)}, dtype=torch.float32, sampled=[0, 1])
    assert (bad["verdict"], bad["mismatches"]) == ("fail", 1)
    assert output_consistency(a, {0: torch.ones(4)}, dtype=torch.float32, sampled=[0, 1])["verdict"] == "fail"


def test_caching_verdict_needs_a_real_and_significant_speedup() -> None:
    fresh = summarize([1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.0])
    fast = summarize([0.5, 0.51, 0.49, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert caching_verdict(fresh, fast, threshold=0.1)["verdict"] == "fail"
    close = summarize([0.97, 0.98, 0.99, 0.98, 0.97, 0.98, 0.98, 0.99])
    assert caching_verdict(fresh, close, threshold=0.1)["verdict"] == "pass"
    noisy = summarize([0.2, 3.0, 0.5, 2.0, 0.1, 4.0, 0.3, 1.0])
    assert caching_verdict(fresh, noisy, threshold=0.1)["verdict"] == "pass"  # noise alone never fails


def test_without_the_programs_bound_the_caching_check_reports_raw_figures_and_judges_nothing() -> None:
    fresh = summarize([1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.0])
    verdict = caching_verdict(fresh, summarize([0.5, 0.51, 0.49, 0.5, 0.5, 0.5, 0.5, 0.5]))
    assert verdict["verdict"] == "not_judged" and verdict["threshold"] is None
    assert verdict["speedup_ratio"] == pytest.approx(2.0, rel=0.05)
    unbounded = {**GEMM_SPEC, "integrity": {}}
    (caching,) = run_performance_suite(unbounded, ContentMemoBackend(), seed="challenge-1")["caching"]
    assert caching["verdict"] == "not_judged" and caching["speedup_ratio"] > 1.1


@pytest.mark.slow
def test_the_caching_bound_comes_from_the_job_spec() -> None:
    lenient = {**GEMM_SPEC, "integrity": {"caching_threshold": 1e6}}
    (caching,) = run_performance_suite(lenient, ContentMemoBackend(), seed="challenge-1")["caching"]
    assert caching["verdict"] == "pass" and caching["threshold"] == 1e6


@pytest.mark.slow
def test_a_memoizing_backend_is_flagged_by_the_caching_check() -> None:
    result = run_model_suite(MODEL_SPEC, MemoizingBackend(), seed="challenge-1")
    (caching,) = result["caching"]
    assert caching["verdict"] == "fail", caching
    assert caching["speedup_ratio"] > 1.1
    # Memoized answers are still right: only TEST04 can see this cheat.
    assert result["consistency"][0]["verdict"] == "pass"


@pytest.mark.slow
def test_a_memoizing_backend_is_flagged_in_the_performance_suite_too() -> None:
    caching = run_performance_suite(PERF_SPEC, ContentMemoBackend(), seed="challenge-1")["caching"]
    assert {c["kind"] for c in caching} == {"gemm", "attention", "conv"}  # one probed benchmark per kind
    assert all(c["verdict"] == "fail" and not c["fresh_output_mismatches"] for c in caching), caching


@pytest.mark.slow
def test_a_backend_that_skips_compute_while_timed_fails_output_consistency() -> None:
    class SkipAfterAccuracy(SkipComputeBackend):
        honest_calls = 1  # the performance suite's accuracy-mode call

    result = run_performance_suite(PERF_SPEC, SkipAfterAccuracy(), seed="challenge-1")
    (consistency,) = result["consistency"]
    assert consistency["verdict"] == "fail"
    assert consistency["sampled"] > 0
    assert all(b["verdict"] == "fail" for b in consistency["benchmarks"])


@pytest.mark.slow
def test_a_model_that_returns_zeros_in_the_timed_run_fails_output_consistency() -> None:
    result = run_model_suite(MODEL_SPEC, SkipComputeBackend(), seed="challenge-1")
    assert result["cases"][0]["status"] == "pass"  # the accuracy run was honest
    assert result["consistency"][0]["verdict"] == "fail"


class PrecisionDropBackend(CpuBackend):
    """After the accuracy pass (batches of 4), runs one-item batches under bfloat16 autocast.

    The timed latency run and the b1 sweep are then faster and less precise; the b4 sweep,
    whose last output was all the old check logged, stays honest.
    """

    def prepare(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def dropping(*args: Any) -> Any:
            batch = args[0].shape[0] if args and isinstance(args[0], torch.Tensor) else 0
            if batch == 1:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return fn(*args).float()
            return fn(*args)

        return dropping


@pytest.mark.slow
def test_precision_dropped_after_the_accuracy_pass_fails_output_consistency() -> None:
    result = run_model_suite(MODEL_SPEC, PrecisionDropBackend(), seed="challenge-drop")
    assert result["cases"][0]["status"] == "pass"  # the accuracy pass was honest
    (consistency,) = result["consistency"]
    assert consistency["verdict"] == "fail"
    failed = {d["sample"].split("@")[0] for d in consistency["details"]}
    assert failed <= {"latency", "b1"} and failed


@pytest.mark.slow
@pytest.mark.parametrize("suite", [run_model_suite, run_performance_suite])
def test_an_honest_cpu_passes_output_consistency(suite) -> None:
    spec = MODEL_SPEC if suite is run_model_suite else PERF_SPEC
    result = suite(spec, CpuBackend(), seed="challenge-2")
    assert all(c["verdict"] == "pass" for c in result["consistency"])


# TEST01 of a decoder's first token and decode step ----------------------------------------------

from runners.models.llama import LlamaConfig  # noqa: E402

DECODER = seeded_model_entry(
    "llama-tiny",
    "llama-decoder",
    dict(LlamaConfig.small().__dict__),
    seed=0,
    directory=Path(tempfile.gettempdir()) / "runners-tests-seeded",
    task="text-generation",
)
DECODER_SPEC = {"quick": True, "models": [DECODER], "model_dtypes": ["float32"], **BARS}


class CachedStepsReturnJunk(CpuBackend):
    """Honest on whole prompts (the accuracy pass), junk logits whenever a KV cache is passed (TTFT, decode)."""

    def prepare(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def junk(*args: Any) -> Any:
            out = fn(*args)
            if len(args) > 1:  # (tokens, cache): a timed first token or decode step
                return torch.flip(out, dims=[-1])
            return out

        return junk


@pytest.mark.slow
def test_an_honest_decoders_first_token_and_decode_samples_pass_against_float64() -> None:
    result = run_model_suite(DECODER_SPEC, CpuBackend(), seed="challenge-decoder")
    (consistency,) = result["consistency"]
    assert consistency["verdict"] == "pass", consistency["details"]
    labels = {label.split("@")[0] for label in consistency["sample_ids"]}
    assert {"ttft b1", "decode b1", "ttft b4", "decode b4"} <= labels


@pytest.mark.slow
def test_junk_first_tokens_and_decode_steps_fail_against_the_float64_reference() -> None:
    result = run_model_suite(DECODER_SPEC, CachedStepsReturnJunk(), seed="challenge-decoder")
    assert result["cases"][0]["status"] == "pass"  # the accuracy pass (whole prompts) was honest
    (consistency,) = result["consistency"]
    assert consistency["verdict"] == "fail"
    failed = {d["sample"].split("@")[0] for d in consistency["details"]}
    assert failed and failed <= {"ttft b1", "decode b1", "ttft b4", "decode b4"}
    assert all(d["metric"] == "tokens_within_rounding" for d in consistency["details"])


def test_a_fresh_model_output_must_lie_nearer_its_own_float64_reference_than_any_other() -> None:
    from runners.integrity import NearestReference

    g = torch.Generator().manual_seed(3)
    own, repeated, other = (torch.randn(1, 10, generator=g, dtype=torch.float64) for _ in range(3))
    check = NearestReference(own, (repeated, other))
    assert check.passes((own + 1e-3 * torch.randn(1, 10, generator=g, dtype=torch.float64)).float())
    assert not check.passes(repeated.float())  # a cache's answer: another input's output
    assert not check.passes(other)
    assert not check.passes(own[:, :5])  # not the reference's shape
    assert not check.passes(torch.full_like(own, float("nan")))
    assert not NearestReference(own, ()).passes(own)  # nothing to be nearer than: no verdict given


def _model_document_with_latency(model: str, dtype: str) -> dict[str, Any]:
    return {
        "measurements": [{"kind": "model_latency", "dtype": dtype, "params": {"model": model}}],
        "integrity": {"caching": {"items": [{"model": model, "dtype": dtype, "verdict": "pass"}]}},
    }


def test_the_judge_fails_a_model_whose_caching_probe_did_not_come_back_or_does_not_add_up() -> None:
    """rejudge_model_caching: the device process's own TEST04 items are dropped; a timed model and dtype
    with no probe, a probe whose evidence is malformed, and a probe of a model the job does not name fail."""
    from runners.integrity import CachingEvidence
    from runners.model_suite import JudgeModel, rejudge_model_caching
    from runners.model_suite.workloads import workload_for
    from runners.models import ModelSpec, load_model

    spec = {"challenge": "c", "options": BARS}
    document = _model_document_with_latency("resnet-tiny", "float32")
    rejudge_model_caching(document, spec, [], {}, {})
    [item] = document["integrity"]["caching"]["items"]
    assert item["verdict"] == "fail" and "no caching probe" in item["reason"]
    assert item["threshold"] == 0.1

    loaded = load_model(ModelSpec.from_dict(SMALL_MODEL))
    workload = workload_for(loaded, "c", quick=True)
    workloads: dict[str, Any] = {"resnet-tiny": JudgeModel(workload, workload.reference(), loaded)}
    out = torch.zeros(1, 10)
    evidence = CachingEvidence([1.0], [1.0, 1.0, 1.0], [1.0, 1.0], ["RRRF"], [None], [out], [out], out)
    figures, tensors = evidence.to_wire("caching1")  # one fresh input where the suite's probe runs 12
    records = [
        {"model": "resnet-tiny", "dtype": "float32", **figures, "fresh_outputs": 2},  # one never sent
        {"model": "resnet-tiny", "dtype": "float32", **figures},
        {"model": "other", "dtype": "float32"},
    ]
    document = _model_document_with_latency("resnet-tiny", "float32")
    rejudge_model_caching(
        document,
        spec,
        records,
        {k.replace("caching1", "caching0"): v for k, v in tensors.items()} | tensors,
        workloads,
    )
    items = document["integrity"]["caching"]["items"]
    assert [i["verdict"] for i in items] == ["fail", "fail", "fail"]
    assert "not well formed" in items[0]["reason"]
    assert "the suite's probe runs 12" in items[1]["reason"]
    assert "no such model" in items[2]["reason"]
