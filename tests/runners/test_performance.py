"""The performance suite: measurements, claims against declared peaks, schema-valid documents."""

from __future__ import annotations

import dataclasses
import functools
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

import runners.performance as performance_module
from runners.backends import get_backend
from runners.backends.base import ClockEvent, TimingEvent
from runners.backends.builtin import CpuBackend
from runners.backends.host_events import HostEventsCpu
from runners.document import validate_document
from runners.measurements import CLOCK_DISAGREEMENT
from runners.models.seeded import seeded_model_entry
from runners.performance import SweepStop, plan, run_performance, run_performance_suite
from runners.performance.claims import apply_claims
from runners.spec import build_spec

QUICK = {
    "quick": True,
    "performance": {"dtypes": ["float32", "int8"], "gemm_sizes": [128, 256], "max_call_s": 60},
}


@functools.lru_cache(maxsize=1)
def quick_run() -> dict:
    return run_performance_suite({"options": QUICK}, get_backend("cpu"), seed="ab" * 16)


def item(name: str, kind: str, dtype: str, tflops: float, gbs: float = 0.0) -> dict:
    return {
        "name": name,
        "kind": kind,
        "dtype": dtype,
        "flags": [],
        "efficiency": None,
        "value": gbs if kind == "bandwidth" else tflops,
        "unstable": False,
        "params": {"achieved_tflops": tflops, "achieved_gbs": gbs, "flops": 2 * 10**9, "bytes": 10**7},
    }


@pytest.mark.slow
def test_it_measures_every_kind_of_micro_benchmark() -> None:
    kinds = {m["kind"] for m in quick_run()["measurements"]}
    assert {"gemm", "bandwidth", "attention", "conv"} <= kinds
    for m in quick_run()["measurements"]:
        assert m["value"] > 0
        assert set(m["stats"]) == {"median", "p90", "p99", "iqr", "cv", "n", "ci_low", "ci_high", "discarded"}
        assert m["params"]["flops"] or m["params"]["bytes"]


@pytest.mark.slow
def test_gemm_is_measured_per_dtype_over_a_size_sweep() -> None:
    gemms = [(m["dtype"], m["params"]["M"]) for m in quick_run()["measurements"] if m["kind"] == "gemm"]
    assert ("float32", 128) in gemms and ("float32", 256) in gemms
    assert any(dtype == "int8" for dtype, _ in gemms)


RATIOS = {"below_claim_ratio": 0.5, "exceeds_physical_ratio": 1.10}  # what a program would send


def test_a_chip_far_below_its_declared_peak_is_flagged() -> None:
    spec = {
        "declared": {"peak_tflops": {"fp32": 100.0}, "memory_bandwidth_gbs": 1000},
        "options": {"claims": RATIOS},
    }
    claims = apply_claims([item("g", "gemm", "float32", 10.0)], spec)
    assert claims["dtypes"]["float32"]["flags"] == ["below_claim"]
    assert claims["dtypes"]["float32"]["best_gemm_efficiency"] == pytest.approx(0.1)


def test_a_chip_impossibly_above_its_declared_peak_is_flagged() -> None:
    spec = {
        "declared": {"peak_tflops": {"bf16": 1.0}, "memory_bandwidth_gbs": 10},
        "options": {"claims": RATIOS},
    }
    items = [item("g", "gemm", "bfloat16", 1.5), item("copy", "bandwidth", "float32", 0.0, gbs=30.0)]
    claims = apply_claims(items, spec)
    assert "exceeds_physical" in claims["dtypes"]["bfloat16"]["flags"]
    assert "exceeds_physical" in claims["dtypes"]["float32"]["flags"]
    assert items[0]["flags"] == ["exceeds_physical"]


def test_claim_thresholds_are_parameters_of_the_spec() -> None:
    spec = {"declared": {"peak_tflops": {"fp32": 100.0}}, "options": {"claims": {"below_claim_ratio": 0.05}}}
    assert apply_claims([item("g", "gemm", "float32", 10.0)], spec)["dtypes"]["float32"]["flags"] == []


def test_the_roofline_bounds_each_kernel_by_peak_and_bandwidth() -> None:
    spec = {"declared": {"peak_tflops": {"fp32": 100.0}, "memory_bandwidth_gbs": 1000}}
    table = apply_claims([item("g", "gemm", "float32", 10.0)], spec)["roofline"]["float32"]
    (row,) = table["rows"]
    assert row["flops_per_byte"] == 200
    assert row["attainable_tflops"] == pytest.approx(100.0)  # 200 FLOP/B x 1 TB/s = 200 TFLOP/s > peak
    assert table["ridge_flops_per_byte"] == pytest.approx(100.0)


def test_nothing_declared_means_no_efficiency_and_no_flags() -> None:
    claims = apply_claims([item("g", "gemm", "float32", 10.0)], {})
    verdict = claims["dtypes"]["float32"]
    assert (verdict["declared_peak_tflops"], verdict["best_gemm_efficiency"], verdict["flags"]) == (
        None,
        None,
        [],
    )
    assert verdict["best_gemm_tflops"] == 10.0  # the raw figure is reported all the same


def test_without_the_programs_ratios_the_runner_reports_raw_figures_and_sets_no_flag() -> None:
    spec = {"declared": {"peak_tflops": {"fp32": 1.0}}}
    claims = apply_claims([item("g", "gemm", "float32", 5.0)], spec)
    assert (claims["below_claim_ratio"], claims["exceeds_physical_ratio"]) == (None, None)
    assert claims["dtypes"]["float32"]["flags"] == []
    assert claims["dtypes"]["float32"]["best_gemm_efficiency"] == pytest.approx(5.0)


def test_unstable_or_refused_measurements_never_feed_the_best_figure() -> None:
    stable = item("small", "gemm", "float32", 1.0)
    noisy = {**item("big", "gemm", "float32", 9.0), "unstable": True}
    refused = {**item("huge", "gemm", "float32", 12.0), "value": None, "flags": ["clock_disagreement"]}
    verdict = apply_claims([stable, noisy, refused], {"declared": {"peak_tflops": {"fp32": 10.0}}})["dtypes"][
        "float32"
    ]
    assert verdict["best_gemm"] == "small"
    assert verdict["best_gemm_efficiency"] == pytest.approx(0.1)
    assert {e["name"]: e["reason"] for e in verdict["excluded"]} == {
        "big": "unstable",
        "huge": "clock_disagreement",
    }


@pytest.mark.slow
def test_the_document_is_schema_valid_with_integrity_verdicts() -> None:
    spec = build_spec(
        suite="performance",
        device="cpu",
        options={**QUICK, "claims": RATIOS, "integrity": {"caching_threshold": 0.10}},
        declared={"peak_tflops": {"fp32": 0.001}, "memory_bandwidth_gbs": 1},
    )
    document = run_performance(spec, get_backend("cpu"))
    validate_document(document)
    assert document["integrity"]["output_consistency"]["verdict"] == "pass"
    assert document["integrity"]["caching"]["threshold"] == 0.10  # the program's, from the spec
    assert document["integrity"]["timing"]["verdict"] == "not_applicable"  # host clock only
    assert document["timing_policy"]["quick"] is True
    assert "exceeds_physical" in document["claims"]["dtypes"]["float32"]["flags"]
    for m in document["measurements"]:
        assert 1 <= m["significant_digits"] <= 4


@pytest.mark.slow
@pytest.mark.parametrize("suite", ["performance", "model"])
def test_the_cli_runs_the_suite_and_writes_a_valid_document(tmp_path: Path, suite: str) -> None:
    spec = build_spec(
        suite=suite,
        device="cpu",
        options={**QUICK, "model_dtypes": ["float32"]},
        models=[seeded_model_entry("r", "resnet-cnn", {}, seed=0, directory=tmp_path / "seeded")],
    )
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    out = tmp_path / "r.json"
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "runners", "run", "--spec", str(spec_path), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "integrity caching" in done.stderr
    validate_document(json.loads(out.read_text()))


GEMM_ONLY = {
    "quick": True,
    "performance": {"dtypes": ["float32"], "gemm_sizes": [192], "kinds": ["gemm"]},
    # The program level's clock_ratio_bounds, as a platform job spec carries them.
    "timing": {"clock_ratio_min": 0.5, "clock_ratio_max": 1.05},
}


class UnderReportingEvent(ClockEvent):
    def elapsed_ms(self, end: TimingEvent) -> float:
        return super().elapsed_ms(end) / 12


class UnderReportingCpu(HostEventsCpu):
    """A backend whose timing events report 1/12 of the time that really passed: 12x 'faster'."""

    def event(self) -> TimingEvent:
        return UnderReportingEvent(self)


def test_events_that_under_report_time_get_every_figure_refused() -> None:
    spec = build_spec(
        suite="performance", device="cpu", options=GEMM_ONLY, declared={"peak_tflops": {"fp32": 1.0}}
    )
    document = run_performance(spec, UnderReportingCpu())
    validate_document(document)
    timing = document["integrity"]["timing"]
    assert timing["verdict"] == "fail"
    assert timing["disagreements"] == timing["checked"] == len(document["measurements"]) > 0
    assert timing["max_ratio"] < 0.2
    for m in document["measurements"]:
        assert m["value"] is None and m["efficiency"] is None
        assert "clock_disagreement" in m["flags"]
        assert m["params"]["event_value"] > 0  # what the events claimed, kept as evidence
    assert document["claims"]["dtypes"]["float32"]["best_gemm_tflops"] is None


def test_honest_events_pass_the_clock_cross_check() -> None:
    out = run_performance_suite({"options": GEMM_ONLY}, HostEventsCpu(), seed="honest-events")
    assert out["timing"]["verdict"] == "pass"
    assert all(m["value"] > 0 and m["clock"]["agrees"] for m in out["measurements"])


class Fp8MatmulMode(TorchFunctionMode):
    """Computes every bfloat16 matmul from float8_e4m3fn-rounded operands."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func in (torch.matmul, torch.Tensor.matmul, torch.mm) and args[0].dtype == torch.bfloat16:
            a, b = (t.to(torch.float8_e4m3fn).to(torch.bfloat16) for t in args[:2])
            return func(a, b)
        return func(*args, **kwargs)


class Fp8Backend(CpuBackend):
    """Asked for bfloat16, computes GEMMs in FP8 in every prepared call, accuracy mode included."""

    def prepare(self, fn):  # noqa: ANN001, ANN201
        def degraded(*args):  # noqa: ANN002, ANN202
            with Fp8MatmulMode():
                return fn(*args)

        return degraded


def test_fp8_throughout_a_bfloat16_run_fails_against_the_float64_reference() -> None:
    spec = {"quick": True, "performance": {"dtypes": ["bfloat16"], "gemm_sizes": [128], "kinds": ["gemm"]}}
    (consistency,) = run_performance_suite(spec, Fp8Backend(), seed="fp8")["consistency"]
    (bench,) = consistency["benchmarks"]
    assert bench["against_accuracy"]["verdict"] == "pass"  # equally degraded: the old check passed
    assert bench["against_reference"]["verdict"] == "fail"
    assert consistency["verdict"] == "fail"
    assert consistency["reference_failures"] == ["matmul perf_128:bfloat16"]


def test_an_honest_bfloat16_gemm_passes_against_the_float64_reference() -> None:
    spec = {"quick": True, "performance": {"dtypes": ["bfloat16"], "gemm_sizes": [128], "kinds": ["gemm"]}}
    (consistency,) = run_performance_suite(spec, CpuBackend(), seed="fp8")["consistency"]
    assert consistency["verdict"] == "pass", consistency


def test_bandwidth_buffers_are_at_least_four_times_the_last_level_cache() -> None:
    backend = get_backend("cpu")
    llc = backend.last_level_cache_bytes() or 32 * 2**20
    benches = plan(
        {"options": {"quick": True, "performance": {"bandwidth_bytes": 1 << 20}}},
        backend,
        challenge="c",
        quick=True,
    )
    stream = [b for b in benches if b.kind == "bandwidth"]
    assert stream and all(b.params["elements"] * 4 >= 4 * llc for b in stream)


class SlowerWhenLargerGemm(CpuBackend):
    """Throughput falls with size: a call takes 5 ms x (N/64)^4 whatever the host's load.

    It computes once and then only waits, so that the compute time (noisy on a shared host)
    does not blur the falling throughput this test needs.
    """

    def prepare(self, fn):  # noqa: ANN001, ANN201
        memo = {}

        def slow():  # noqa: ANN202
            if "out" not in memo:
                memo["out"] = fn()
            time.sleep((memo["out"].shape[0] / 64) ** 4 * 5e-3)
            return memo["out"]

        return slow


# The stop rule judges stable rows only, so these tests about it must not depend on how steady a slept
# call is on a loaded host: a 50 % relative-IQR bar keeps the slept rows stable (5 to 30 ms, jitter of
# a few ms); the test of an unstable row marks that row unstable itself.
SWEEP_TIMING = {"target_rel_iqr": 0.5}


def sweep_spec(sizes: list[int]) -> dict:
    return {
        "quick": True,
        "timing": SWEEP_TIMING,
        "performance": {"dtypes": ["float32"], "gemm_sizes": sizes, "sweep": True, "kinds": ["gemm"]},
    }


def test_the_gemm_sweep_stops_once_throughput_stops_rising() -> None:
    out = run_performance_suite(sweep_spec([64, 80, 96, 128]), SlowerWhenLargerGemm(), seed="sweep")
    # Two sizes in a row that do not rise over the best (SWEEP_PATIENCE), then the sweep stops.
    assert [m["params"]["M"] for m in out["measurements"]] == [64, 80, 96]
    (skipped,) = out["claims"]["skipped"]
    assert skipped["name"] == "matmul perf_128" and "stopped rising at N=96" in skipped["reason"]


class DipsThenRisesGemm(SlowerWhenLargerGemm):
    """Throughput dips at N=128 (a blocking boundary, a noisy neighbour) and peaks at N=256."""

    RATE = {64: 1.0, 128: 0.5, 256: 2.0, 512: 1.0}

    def prepare(self, fn):  # noqa: ANN001, ANN201
        memo = {}

        def timed():  # noqa: ANN202
            if "out" not in memo:
                memo["out"] = fn()
            n = memo["out"].shape[0]
            time.sleep(1e-2 * (n / 128) ** 3 / self.RATE[n])
            return memo["out"]

        return timed


@pytest.mark.slow
def test_one_size_that_dips_does_not_stop_the_sweep_before_the_peak() -> None:
    out = run_performance_suite(sweep_spec([64, 128, 256, 512]), DipsThenRisesGemm(), seed="sweep")
    assert [m["params"]["M"] for m in out["measurements"]] == [64, 128, 256, 512]
    best = max(out["measurements"], key=lambda m: m["value"])
    assert best["params"]["M"] == 256


# Issue 11: the sweep's stop rule judges stable rows only ------------------------------------------


def row(tflops: float, *, unstable: bool = False, flags: tuple[str, ...] = ()) -> dict:
    return {**item("matmul perf", "gemm", "float32", tflops), "unstable": unstable, "flags": list(flags)}


def test_an_unstable_row_that_looks_slower_does_not_count_towards_stopping_the_sweep() -> None:
    rule = SweepStop(rise=0.02, patience=2)
    assert not rule.observe(row(1.0))
    assert not rule.observe(row(0.4, unstable=True))  # the old rule: first size "not rising"
    assert not rule.observe(row(0.9))  # the old rule stopped here, before the peak
    assert (rule.best, rule.flat) == (1.0, 1)
    assert not rule.observe(row(3.0))
    assert (rule.best, rule.flat) == (3.0, 0)


def test_an_unstable_row_that_looks_faster_does_not_set_the_bar_stable_rows_must_beat() -> None:
    rule = SweepStop(rise=0.02, patience=2)
    rule.observe(row(1.0))
    rule.observe(row(6.0, unstable=True))
    assert rule.best == 1.0  # the old rule's best was 6.0, so 1.2 and 1.3 below were "not rising"
    assert not rule.observe(row(1.2))
    assert not rule.observe(row(1.3))
    assert rule.flat == 0


def test_refused_rows_are_ignored_like_unstable_ones_and_stable_ones_still_stop_the_sweep() -> None:
    rule = SweepStop(rise=0.02, patience=2)
    rule.observe(row(2.0))
    assert not rule.observe(row(9.0, flags=(CLOCK_DISAGREEMENT,)))
    assert not rule.observe({**row(0.0), "value": None})
    assert not rule.observe(row(2.01))  # within the 2 % rise: not rising, flat 1
    assert rule.best == 2.01  # the refused 9.0 never became the bar
    assert rule.observe(row(1.5))  # two stable sizes in a row: stop


class UnstableDipGemm(SlowerWhenLargerGemm):
    """Throughput 1.0 at N=64, 0.4 at N=72 (which the test marks unstable), a stable dip to 0.6 at
    N=80 and the peak (4x) at N=96; time per call is FLOPs / rate, slept, whatever the host's load."""

    BASE_S = 4e-3  # one call at N=64 and rate 1.0
    RATE = {64: 1.0, 72: 0.4, 80: 0.6, 96: 4.0}

    def prepare(self, fn):  # noqa: ANN001, ANN201
        memo = {}

        def timed():  # noqa: ANN202
            if "out" not in memo:
                memo["out"] = fn()
            n = memo["out"].shape[0]
            time.sleep(self.BASE_S * (n / 64) ** 3 / self.RATE[n])
            return memo["out"]

        return timed


def test_an_unstable_size_does_not_stop_the_sweep_before_the_peak(monkeypatch: pytest.MonkeyPatch) -> None:
    measure_with_output = performance_module.measure_with_output

    def noisy_at_72(fn, **kwargs):  # noqa: ANN001, ANN003, ANN202 - as a neighbour's burst would
        stats, output = measure_with_output(fn, **kwargs)
        return (dataclasses.replace(stats, unstable=True) if output.shape[0] == 72 else stats), output

    monkeypatch.setattr(performance_module, "measure_with_output", noisy_at_72)
    out = run_performance_suite(sweep_spec([64, 72, 80, 96]), UnstableDipGemm(), seed="sweep")
    rows = {m["params"]["M"]: m for m in out["measurements"]}
    assert rows[72]["unstable"] and not rows[64]["unstable"] and not rows[80]["unstable"]
    # The old rule counted N=72 and N=80 as two sizes that did not rise and skipped N=96.
    assert sorted(rows) == [64, 72, 80, 96], out["claims"]["skipped"]
    assert out["claims"]["skipped"] == []
    if not rows[96]["unstable"]:  # a slept call is steady; only a badly overloaded host upsets it
        assert out["claims"]["dtypes"]["float32"]["best_gemm"] == "matmul perf_96"


# Issue 13: every declared peak is measured, fp8 and int8 included ---------------------------------

FP8_INT8 = {"performance": {"dtypes": ["int8", "float8_e4m3fn"], "kinds": ["gemm"], "gemm_sizes": [64]}}
FP8_INT8_TIMING = {"min_time_s": 0.01, "max_time_s": 0.05, "min_samples": 5}


def test_fp8_and_int8_gemms_are_timed_through_scaled_mm_and_int_mm_and_judged_against_their_peaks() -> None:
    spec = build_spec(
        suite="performance",
        device="cpu",
        challenge="f8" * 32,
        declared={"peak_tflops": {"fp8": 0.001, "int8": 0.001}},
        options={**FP8_INT8, "timing": FP8_INT8_TIMING},
    )
    document = run_performance(spec, get_backend("cpu"))
    validate_document(document)
    gemms = {m["dtype"]: m for m in document["measurements"] if m["kind"] == "gemm"}
    assert gemms["float8_e4m3fn"]["params"]["kernel"] == "scaled_matmul_fp8"  # torch._scaled_mm
    assert gemms["int8"]["params"]["kernel"] == "int8_matmul"  # torch._int_mm
    for dtype in ("float8_e4m3fn", "int8"):
        assert gemms[dtype]["value"] > 0
        assert document["claims"]["dtypes"][dtype]["declared_peak_tflops"] == 0.001
        assert gemms[dtype]["efficiency"] == pytest.approx(gemms[dtype]["value"] / 0.001)
    # TEST01 covers both: their timed outputs are checked against the float64 reference.
    checked = {i["dtype"] for i in document["integrity"]["output_consistency"]["items"][0]["benchmarks"]}
    assert checked == {"float8_e4m3fn", "int8"}
    assert not document["cases"]  # both measurable on this CPU: nothing recorded unsupported


class NoFp8Cpu(CpuBackend):
    """A CPU that declares no float8 (as a GPU before Hopper would)."""

    def supported_dtypes(self) -> list[str]:
        return [d for d in super().supported_dtypes() if not d.startswith("float8")]


def test_a_declared_dtype_the_device_does_not_support_is_recorded_unsupported_not_dropped() -> None:
    spec = build_spec(
        suite="performance",
        device="cpu",
        challenge="0f" * 32,
        declared={"peak_tflops": {"fp8": 1.0}},
        options={**FP8_INT8, "timing": FP8_INT8_TIMING},
    )
    document = run_performance(spec, NoFp8Cpu())
    validate_document(document)
    assert {m["dtype"] for m in document["measurements"]} == {"int8"}
    (case,) = document["cases"]
    assert (case["kernel"], case["dtype"], case["status"], case["code"]) == (
        "scaled_matmul_fp8",
        "float8_e4m3fn",
        "unsupported",
        "unsupported_dtype",
    )
    assert "cannot be measured" in case["message"]
    # The platform's spot check accepts it only because the document's declaration leaves fp8 out.
    assert "float8_e4m3fn" not in document["support"]["dtypes"]
