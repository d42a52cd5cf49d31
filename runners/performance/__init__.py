"""The performance suite: micro-benchmarks timed by runners.timing, judged against claims.

For each benchmark (see ``benchmarks``): build the inputs from the challenge, time the
device call, derive achieved TFLOP/s and GB/s from the catalog's FLOP and byte counts, and
compare with the job spec's declared peaks (``claims``). A seeded sample of benchmarks has
its timed output checked against an untimed accuracy-mode call (TEST01), and one GEMM is
timed on fresh and on repeated inputs (TEST04).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from runners.catalog.base import torch_dtype
from runners.document import build_document, now_iso
from runners.errors import classify_exception
from runners.integrity import caching_check, output_consistency, sample_indices
from runners.measurements import case_record, integrity_section, measurement
from runners.performance.benchmarks import (
    Benchmark,
    attention_benchmarks,
    bandwidth_benchmarks,
    conv_benchmarks,
    gemm_benchmarks,
)
from runners.performance.claims import apply_claims
from runners.timing import TimingPolicy, measure_with_output

TEST01_SAMPLES = 3
# A larger shape is skipped when the previous one predicts a call longer than this: a
# bfloat16 GEMM emulated on a CPU without bf16 units would otherwise take minutes.
MAX_CALL_S = 0.5
FRESH_INPUTS = 8
PERF_DTYPES = ("float32", "bfloat16", "float16", "int8")

Progress = Callable[[int, int, str], None]  # (done, total, label), as the conformance suite


def _options(spec: dict[str, Any]) -> dict[str, Any]:
    """Suite settings: the job spec's ``options`` (plain keys also accepted for library callers)."""
    options = dict(spec.get("options") or {})
    for key in ("quick", "timing", "performance", "claims"):
        if key in spec and key not in options:
            options[key] = spec[key]
    return options


def run_performance(spec: dict[str, Any], backend: Any, progress: Progress | None = None) -> dict[str, Any]:
    """The performance suite's result document for a validated job spec (the CLI's suite signature)."""
    started_at, start = now_iso(), time.perf_counter()
    out = run_performance_suite(spec, backend, seed=spec["challenge"], progress=progress)
    return build_document(
        "performance",
        spec,
        backend.fingerprint(),
        out["cases"],
        {"total_s": time.perf_counter() - start},
        started_at,
        measurements=out["measurements"],
        claims=out["claims"],
        integrity=integrity_section(out["consistency"], out["caching"]),
    )


def plan(spec: dict[str, Any], backend: Any, *, challenge: str, quick: bool) -> list[Benchmark]:
    """The benchmarks for this device: small shapes on CPUs and in quick runs, large elsewhere."""
    options = _options(spec).get("performance") or {}
    supported = set(backend.supported_dtypes())
    dtypes = [d for d in options.get("dtypes", PERF_DTYPES) if d in supported]
    floats = [d for d in dtypes if d != "int8"]
    small = quick or backend.name == "cpu"
    sizes = options.get("gemm_sizes") or (
        [256, 512] if quick else [256, 512, 1024] if small else [1024, 2048, 4096, 8192]
    )
    llc = backend.last_level_cache_bytes() or 32 * 2**20
    buffer = options.get("bandwidth_bytes") or (
        16 * 2**20 if quick else max(4 * llc, 64 * 2**20 if small else 1 << 30)
    )
    benches = gemm_benchmarks(sizes, dtypes, challenge)
    benches += bandwidth_benchmarks(int(buffer), challenge)
    if small:
        benches += attention_benchmarks(
            256 if quick else 512, 1024 if quick else 2048, 8, 2, 64, floats, challenge
        )
        benches += conv_benchmarks(1 if quick else 2, floats[:1] if quick else floats, challenge)
    else:
        benches += attention_benchmarks(2048, 8192, 32, 8, 128, floats, challenge)
        benches += conv_benchmarks(32, floats, challenge)
    return benches


def run_performance_suite(
    spec: dict[str, Any], backend: Any, *, seed: int | str, progress: Progress | None = None
) -> dict[str, Any]:
    """Measurements, claim verdicts and integrity verdicts of the performance suite."""
    options = _options(spec)
    quick = bool(options.get("quick"))
    policy = TimingPolicy.from_dict({**(options.get("timing") or {}), "quick": quick})
    challenge = str(seed)
    device = backend.device()
    prepare: Callable[[Callable[[], Any]], Callable[[], Any]] = backend.prepare
    benches = plan(spec, backend, challenge=challenge, quick=quick)
    sampled = set(sample_indices(seed, len(benches), TEST01_SAMPLES, salt="performance"))

    max_call_s = float((options.get("performance") or {}).get("max_call_s", MAX_CALL_S))
    total = len(benches) + 1

    def say(done: int, label: str) -> None:
        if progress:
            progress(done, total, label)

    items: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    last_rate: dict[tuple[str, str], float] = {}  # (kind, dtype) -> seconds per FLOP or byte
    accuracy: dict[str, torch.Tensor] = {}
    logged: dict[str, torch.Tensor] = {}
    for index, bench in enumerate(benches):
        say(index, f"{bench.name} {bench.dtype}")
        work = bench.flops or bench.bytes
        predicted = last_rate.get((bench.kind, bench.dtype), 0.0) * work
        if predicted > max_call_s:
            skipped.append({"name": bench.name, "dtype": bench.dtype, "predicted_call_s": predicted})
            continue
        try:
            fn = prepare(bench.build(device, 0))
            if index in sampled:
                accuracy[bench.name + ":" + bench.dtype] = _host(fn())  # untimed, accuracy mode
            stats, output = measure_with_output(fn, backend=backend, policy=policy)
        except Exception as exc:  # evidence, not a crash; never "unsupported" (runners/errors.py)
            outcome = classify_exception(exc, phase="device")
            cases.append(
                case_record(
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
            )
            continue
        if index in sampled:
            logged[bench.name + ":" + bench.dtype] = _host(output)
        items.append(_measurement(bench, stats))
        last_rate[(bench.kind, bench.dtype)] = stats.median / max(work, 1)
    claims = apply_claims(items, spec)
    claims["skipped"] = skipped
    say(len(benches), "integrity: output consistency and caching")
    consistency = _per_dtype_consistency(accuracy, logged, sorted(accuracy), benches)
    caching = _caching(benches, device, backend, prepare)
    if progress:
        progress(total, total, "done")
    return {
        "cases": cases,
        "measurements": items,
        "claims": claims,
        "consistency": [consistency],
        "caching": [caching] if caching else [],
    }


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


def _host(output: Any) -> torch.Tensor:
    tensor = output[0] if isinstance(output, tuple | list) else output
    return tensor.detach().to("cpu")


def _per_dtype_consistency(
    accuracy: dict[str, torch.Tensor],
    logged: dict[str, torch.Tensor],
    keys: list[str],
    benches: list[Benchmark],
) -> dict[str, Any]:
    """TEST01 over the sampled benchmarks, each compared within its own dtype's tolerance."""
    dtypes = {f"{b.name}:{b.dtype}": b.dtype for b in benches}
    parts = [output_consistency(accuracy, logged, dtype=torch_dtype(dtypes[k]), sampled=[k]) for k in keys]
    return {
        "verdict": "fail" if any(p["verdict"] == "fail" for p in parts) else "pass",
        "sampled": len(keys),
        "sample_ids": keys,
        "mismatches": sum(p["mismatches"] for p in parts),
        "details": [d for p in parts for d in p["details"]][:10],
        "max_abs_diff": max((p["max_abs_diff"] for p in parts), default=0.0),
        "suite": "performance",
    }


def _caching(
    benches: list[Benchmark],
    device: torch.device,
    backend: Any,
    prepare: Callable[[Callable[[], Any]], Callable[[], Any]],
) -> dict[str, Any] | None:
    gemms = [b for b in benches if b.kind == "gemm" and b.dtype == "float32"]
    if not gemms:
        return None
    bench = gemms[len(gemms) // 2]  # a mid-sized GEMM: long enough to time, short enough to repeat
    fresh = [prepare(bench.build(device, variant)) for variant in range(1, FRESH_INPUTS + 1)]
    repeated = prepare(bench.build(device, 0))
    return {"benchmark": bench.name, "dtype": bench.dtype, **caching_check(fresh, repeated, backend=backend)}
