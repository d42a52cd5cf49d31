"""Runner-measured GEMM throughput against a bare torch.utils.benchmark loop, per dtype.

Same process, same input tensors, same thread count (Timer defaults to one thread, so
``num_threads`` is passed explicitly), rounds interleaved with alternating order so drift
and noisy neighbours hit both sides alike; the median over rounds is reported.

    python bench/gemm_vs_bare.py [--device cpu] [--rounds 7] [--size N]

Targets (issue 4): runner / bare throughput >= 0.97, harness overhead <= 3 %.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch.utils.benchmark import Timer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runners.backends import get_backend  # noqa: E402
from runners.catalog.base import Case, case_generator  # noqa: E402
from runners.performance.benchmarks import _catalog_kernel  # noqa: E402
from runners.timing import TimingPolicy, measure  # noqa: E402

# Sizes giving calls of a few milliseconds on a 2-core CPU (bf16/fp16 are emulated there).
CPU_SIZES = {"float32": 512, "bfloat16": 192, "float16": 192, "int8": 384}
GPU_SIZE = 8192


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--min-run-time", type=float, default=0.3)
    args = parser.parse_args()

    backend = get_backend(args.device)
    device = backend.device()
    threads = torch.get_num_threads()
    policy = TimingPolicy(min_time_s=args.min_run_time, max_time_s=10 * args.min_run_time)
    dtypes = [d for d in ("float32", "bfloat16", "float16", "int8") if d in backend.supported_dtypes()]
    print(f"device={device} threads={threads} rounds={args.rounds} torch={torch.__version__}")
    header = ("dtype", "size", "runner TFLOP/s", "bare TFLOP/s", "ratio", "overhead %")
    print("{:9s} {:>5s} {:>15s} {:>13s} {:>7s} {:>10s}".format(*header))
    for dtype in dtypes:
        kernel = _catalog_kernel("int8_matmul" if dtype == "int8" else "matmul")
        if kernel is None:
            continue
        n = args.size or (CPU_SIZES[dtype] if backend.name == "cpu" else GPU_SIZE)
        case = Case(f"perf_{n}", {"M": n, "K": n, "N": n})
        inputs = kernel.make_inputs(
            case, dtype, case_generator("bench", kernel.name, case.name, dtype), device
        )
        run = kernel.run
        stmt = "torch._int_mm(a, b)" if dtype == "int8" else "torch.matmul(a, b)"
        timer = Timer(stmt, globals={"torch": torch, "a": inputs["a"], "b": inputs["b"]}, num_threads=threads)
        ratios, overheads, runner_times, bare_times = [], [], [], []
        for round_index in range(args.rounds):

            def runner_time(run=run, inputs=inputs) -> float:  # noqa: ANN001 - binds this dtype's call
                return measure(lambda: run(inputs), backend=backend, policy=policy).median

            def bare_time(timer: Timer = timer) -> float:
                backend.synchronize()
                return timer.blocked_autorange(min_run_time=args.min_run_time).median

            if round_index % 2 == 0:
                r, b = runner_time(), bare_time()
            else:
                b, r = bare_time(), runner_time()
            runner_times.append(r)
            bare_times.append(b)
            ratios.append(b / r)  # throughput ratio = inverse time ratio
            overheads.append((r - b) / b * 100)
        flops = kernel.flops(case)
        print(
            f"{dtype:9s} {n:5d} {flops / statistics.median(runner_times) / 1e12:15.4f} "
            f"{flops / statistics.median(bare_times) / 1e12:13.4f} {statistics.median(ratios):7.3f} "
            f"{statistics.median(overheads):10.2f}"
        )


if __name__ == "__main__":
    main()
