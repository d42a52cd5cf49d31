"""The performance suite: measurements, claims against declared peaks, schema-valid documents."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from runners.backends import get_backend
from runners.document import validate_document
from runners.models.seeded import seeded_model_entry
from runners.performance import run_performance, run_performance_suite
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
        "params": {"achieved_tflops": tflops, "achieved_gbs": gbs, "flops": 2 * 10**9, "bytes": 10**7},
    }


def test_it_measures_every_kind_of_micro_benchmark() -> None:
    kinds = {m["kind"] for m in quick_run()["measurements"]}
    assert {"gemm", "bandwidth", "attention", "conv"} <= kinds
    for m in quick_run()["measurements"]:
        assert m["value"] > 0
        assert set(m["stats"]) == {"median", "p90", "p99", "iqr", "cv", "n", "ci_low", "ci_high"}
        assert m["params"]["flops"] or m["params"]["bytes"]


def test_gemm_is_measured_per_dtype_over_a_size_sweep() -> None:
    gemms = [(m["dtype"], m["params"]["M"]) for m in quick_run()["measurements"] if m["kind"] == "gemm"]
    assert ("float32", 128) in gemms and ("float32", 256) in gemms
    assert any(dtype == "int8" for dtype, _ in gemms)


def test_a_chip_far_below_its_declared_peak_is_flagged() -> None:
    spec = {"declared": {"peak_tflops": {"fp32": 100.0}, "memory_bandwidth_gbs": 1000}}
    claims = apply_claims([item("g", "gemm", "float32", 10.0)], spec)
    assert claims["dtypes"]["float32"]["flags"] == ["below_claim"]
    assert claims["dtypes"]["float32"]["best_gemm_efficiency"] == pytest.approx(0.1)


def test_a_chip_impossibly_above_its_declared_peak_is_flagged() -> None:
    spec = {"declared": {"peak_tflops": {"bf16": 1.0}, "memory_bandwidth_gbs": 10}}
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
    assert claims["dtypes"]["float32"] == {
        "declared_peak_tflops": None,
        "best_gemm_efficiency": None,
        "best_bandwidth_efficiency": None,
        "flags": [],
    }


def test_the_document_is_schema_valid_with_integrity_verdicts() -> None:
    spec = build_spec(
        suite="performance",
        device="cpu",
        options=QUICK,
        declared={"peak_tflops": {"fp32": 0.001}, "memory_bandwidth_gbs": 1},
    )
    document = run_performance(spec, get_backend("cpu"))
    validate_document(document)
    assert document["integrity"]["output_consistency"]["verdict"] == "pass"
    assert document["integrity"]["caching"]["threshold"] == 0.10
    assert "exceeds_physical" in document["claims"]["dtypes"]["float32"]["flags"]


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
