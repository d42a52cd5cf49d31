"""The performance suite's GEMM headline against the best a bare loop reaches, per dtype.

Issue 11, item 4: the headline (the best headline-eligible GEMM of the suite's own sweep,
certification timing policy) must be at least 0.95 x the best throughput a bare
``torch.utils.benchmark`` loop of ``torch.matmul`` reaches on the same device at equal
threads over N = 256 ... 4096 (CPU) or 1024 ... 16384 (GPU). Sizes whose call would take
longer than ``--max-call-s`` (predicted from the previous size, N^3) are skipped on both
sides, as the suite skips them. Prints, per dtype, both figures, their sizes and the ratio;
``all rows`` is the ratio when unstable measurements are admitted too (on a loaded host the
eligible headline may have to fall back to a smaller, stable size).

    python bench/gemm_vs_bare.py [--device cpu] [--dtypes float32,bfloat16,float16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.benchmark import Timer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runners.backends import get_backend  # noqa: E402
from runners.performance import MAX_CALL_S, run_performance_suite  # noqa: E402

CPU_SIZES = [256, 512, 1024, 2048, 4096]
GPU_SIZES = [1024, 2048, 4096, 8192, 16384]


def bare_best(
    dtype: str, sizes: list[int], device: torch.device, backend, max_call_s: float
) -> tuple[float, int]:
    threads = torch.get_num_threads()
    best, best_n, rate = 0.0, 0, 0.0
    for n in sizes:
        if rate and rate * 2 * n**3 > max_call_s:
            break
        g = torch.Generator().manual_seed(n)
        a = torch.randn(n, n, generator=g).to(device, getattr(torch, dtype))
        b = torch.randn(n, n, generator=g).to(device, getattr(torch, dtype))
        timer = Timer("torch.matmul(a, b)", globals={"torch": torch, "a": a, "b": b}, num_threads=threads)
        backend.synchronize()
        seconds = timer.blocked_autorange(min_run_time=0.5).median
        rate = seconds / (2 * n**3)
        tflops = 2 * n**3 / seconds / 1e12
        print(f"  bare   {dtype:9s} N={n:5d} {tflops:.4f} TFLOP/s", flush=True)
        if tflops > best:
            best, best_n = tflops, n
    return best, best_n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtypes", default="float32,bfloat16,float16")
    parser.add_argument("--max-call-s", type=float, default=MAX_CALL_S)
    args = parser.parse_args()
    backend = get_backend(args.device)
    device = backend.device()
    sizes = CPU_SIZES if backend.name == "cpu" else GPU_SIZES
    dtypes = [d for d in args.dtypes.split(",") if d in backend.supported_dtypes()]
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} sizes={sizes}")
    rows = []
    for dtype in dtypes:
        started = time.perf_counter()
        spec = {
            "options": {
                "performance": {
                    "dtypes": [dtype],
                    "kinds": ["gemm"],
                    "gemm_sizes": sizes,
                    "sweep": True,
                    "max_call_s": args.max_call_s,
                }
            }
        }
        out = run_performance_suite(spec, backend, seed=f"bench-{dtype}")
        for m in out["measurements"]:
            print(
                f"  runner {dtype:9s} N={m['params']['M']:5d} {m['value']:.4f} TFLOP/s"
                f"{' unstable' if m['unstable'] else ''} ({m['significant_digits']} significant digits)",
                flush=True,
            )
        verdict = out["claims"]["dtypes"][dtype]
        headline = verdict["best_gemm_tflops"]
        any_row = max((m for m in out["measurements"] if m["value"]), key=lambda m: m["value"], default=None)
        bare, bare_n = bare_best(dtype, sizes, device, backend, args.max_call_s)
        rows.append(
            (dtype, headline, verdict["best_gemm"], any_row, bare, bare_n, time.perf_counter() - started)
        )
    header = ("dtype", "headline", "at", "bare best", "at", "ratio", "all rows")
    print("{:9s} {:>9s} {:>16s} {:>9s} {:>6s} {:>6s} {:>8s}".format(*header))
    for dtype, headline, at, any_row, bare, bare_n, seconds in rows:
        ratio = f"{headline / bare:.3f}" if headline and bare else "n/a"
        loose = f"{any_row['value'] / bare:.3f}" if any_row and bare else "n/a"
        figures = f"{headline or 0:9.4f} {at or '-':>16s} {bare:9.4f} {bare_n:6d}"
        print(f"{dtype:9s} {figures} {ratio:>6s} {loose:>8s}   ({seconds:.0f}s)")


if __name__ == "__main__":
    main()
