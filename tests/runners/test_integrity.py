"""TEST01 (output consistency) and TEST04 (caching) catch cheating devices."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch

from runners.backends.builtin import CpuBackend
from runners.integrity import CachingProbe, caching_verdict, output_consistency, sample_indices
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


def test_memoization_that_starts_after_the_first_calls_fails_the_caching_check() -> None:
    result = run_performance_suite(GEMM_SPEC, LateMemoBackend(), seed="challenge-late")
    (caching,) = result["caching"]
    assert caching["verdict"] == "fail", caching
    assert caching["speedup_ratio"] > 1.1


def test_memoization_that_refreshes_on_new_inputs_fails_the_caching_check() -> None:
    result = run_performance_suite(GEMM_SPEC, RefreshingMemoBackend(), seed="challenge-refresh")
    (caching,) = result["caching"]
    assert caching["verdict"] == "fail", caching
    assert caching["repeated_side"] == "steady"


def test_caching_probes_land_at_seeded_rounds_with_seeded_patterns() -> None:
    def probe(seed: str) -> CachingProbe:
        p = CachingProbe(lambda: None, [lambda: None] * 6, backend=None, seed=seed, salt="x")
        for round_index in range(20):
            p(round_index, None)
        p.finish()
        return p

    a, b, c = probe("s1"), probe("s1"), probe("s2")
    assert (a.rounds, a.patterns) == (b.rounds, b.patterns)
    assert (a.rounds, a.patterns) != (c.rounds, c.patterns)
    assert len(a.fresh_samples) == 6  # every fresh input used exactly once
    assert all(set(p) <= {"R", "F"} and p.count("R") >= 2 for p in a.patterns)


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
    (caching,) = run_performance_suite(unbounded, MemoizingBackend(), seed="challenge-1")["caching"]
    assert caching["verdict"] == "not_judged" and caching["speedup_ratio"] > 1.1


def test_the_caching_bound_comes_from_the_job_spec() -> None:
    lenient = {**GEMM_SPEC, "integrity": {"caching_threshold": 1e6}}
    (caching,) = run_performance_suite(lenient, MemoizingBackend(), seed="challenge-1")["caching"]
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
    caching = run_performance_suite(PERF_SPEC, MemoizingBackend(), seed="challenge-1")["caching"]
    assert {c["kind"] for c in caching} == {"gemm", "attention", "conv"}  # one probed benchmark per kind
    assert all(c["verdict"] == "fail" for c in caching)


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


def test_an_honest_decoders_first_token_and_decode_samples_pass_against_float64() -> None:
    result = run_model_suite(DECODER_SPEC, CpuBackend(), seed="challenge-decoder")
    (consistency,) = result["consistency"]
    assert consistency["verdict"] == "pass", consistency["details"]
    labels = {label.split("@")[0] for label in consistency["sample_ids"]}
    assert {"ttft b1", "decode b1", "ttft b4", "decode b4"} <= labels


def test_junk_first_tokens_and_decode_steps_fail_against_the_float64_reference() -> None:
    result = run_model_suite(DECODER_SPEC, CachedStepsReturnJunk(), seed="challenge-decoder")
    assert result["cases"][0]["status"] == "pass"  # the accuracy pass (whole prompts) was honest
    (consistency,) = result["consistency"]
    assert consistency["verdict"] == "fail"
    failed = {d["sample"].split("@")[0] for d in consistency["details"]}
    assert failed and failed <= {"ttft b1", "decode b1", "ttft b4", "decode b4"}
    assert all(d["metric"] == "tokens_within_rounding" for d in consistency["details"])
