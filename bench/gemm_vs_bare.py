"""The performance suite's GEMM headline against the best a bare matmul loop reaches, per dtype.

Issue 11, item 4: the headline (the runner's claimed best GEMM, ``claims.dtypes[d].best_gemm_tflops``,
from its own size sweep under the certification timing policy) must be at least 0.95 x the best
throughput a bare ``torch.utils.benchmark`` loop of ``torch.matmul`` reaches on the same device at
equal threads over N = 256 ... 4096 (CPU) or 1024 ... 16384 (GPU).

The two are *interleaved*: every round runs, for each dtype, the runner's sweep and then the bare
loop over the same sizes, so a noisy neighbour or a clock change hits both alike; after
``--rounds`` rounds it prints, per dtype, the median headline, the median bare best and their ratio,
with each round's ratio and the load average before and after. Sizes whose call would take longer
than ``--max-call-s`` (predicted from the previous size, N^3) are skipped on both sides, as the
suite skips them. Keep runs short on a shared machine (``--rounds 3 --dtypes float32``).

    python bench/gemm_vs_bare.py [--device cpu] [--dtypes float32,bfloat16,float16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
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


def load() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def runner_headline(
    dtype: str, sizes: list[int], backend, max_call_s: float, seed: str
) -> tuple[float | None, float | None, str]:
    """The runner's claimed best GEMM of its own sweep (certification policy), its best row with
    unstable rows admitted (a loaded host makes every row unstable), and the rows."""
    spec = {
        "options": {
            "performance": {
                "dtypes": [dtype],
                "kinds": ["gemm"],
                "gemm_sizes": sizes,
                "sweep": True,
                "max_call_s": max_call_s,
            }
        }
    }
    out = run_performance_suite(spec, backend, seed=seed)
    claim = out["claims"]["dtypes"].get(dtype) or {}
    measured = ", ".join(
        f"{m['params']['M']}:{m['value']:.4f}{'u' if m['unstable'] else ''}"
        for m in out["measurements"]
        if m["value"] is not None
    )
    any_row = max((m["value"] for m in out["measurements"] if m["value"] is not None), default=None)
    return claim.get("best_gemm_tflops"), any_row, measured


def bare_best(
    dtype: str, sizes: list[int], device: torch.device, backend, max_call_s: float, min_run_s: float
):
    """The best throughput of a bare ``torch.matmul`` loop over ``sizes`` (Timer.blocked_autorange)."""
    threads = torch.get_num_threads()
    best, rate, measured = 0.0, 0.0, []
    for n in sizes:
        if rate and rate * 2 * n**3 > max_call_s:
            break
        g = torch.Generator().manual_seed(n)
        a = torch.randn(n, n, generator=g).to(device, getattr(torch, dtype))
        b = torch.randn(n, n, generator=g).to(device, getattr(torch, dtype))
        timer = Timer("torch.matmul(a, b)", globals={"torch": torch, "a": a, "b": b}, num_threads=threads)
        backend.synchronize()
        seconds = timer.blocked_autorange(min_run_time=min_run_s).median
        rate = seconds / (2 * n**3)
        tflops = 2 * n**3 / seconds / 1e12
        measured.append(f"{n}:{tflops:.4f}")
        best = max(best, tflops)
    return best, ", ".join(measured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtypes", default="float32,bfloat16,float16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-n", type=int, default=None, help="largest size (default 4096 CPU, 16384 GPU)")
    parser.add_argument("--max-call-s", type=float, default=MAX_CALL_S)
    parser.add_argument(
        "--min-run-s", type=float, default=0.2, help="bare loop: Timer.blocked_autorange time"
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backend = get_backend(args.device)
    device = backend.device()
    sizes = CPU_SIZES if backend.name == "cpu" else GPU_SIZES
    sizes = [n for n in sizes if args.max_n is None or n <= args.max_n]
    dtypes = [d for d in args.dtypes.split(",") if d in backend.supported_dtypes()]
    print(
        f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} sizes={sizes} "
        f"rounds={args.rounds} load={load()}",
        flush=True,
    )
    headlines: dict[str, list[float]] = {d: [] for d in dtypes}
    bares: dict[str, list[float]] = {d: [] for d in dtypes}
    loose: dict[str, list[float]] = {d: [] for d in dtypes}  # unstable rows admitted
    started = time.perf_counter()
    for round_index in range(args.rounds):
        for dtype in dtypes:
            headline, any_row, runner_rows = runner_headline(
                dtype, sizes, backend, args.max_call_s, seed=f"bench-{dtype}-{round_index}"
            )
            bare, bare_rows = bare_best(dtype, sizes, device, backend, args.max_call_s, args.min_run_s)
            if headline:
                headlines[dtype].append(headline)
            if any_row:
                loose[dtype].append(any_row)
            bares[dtype].append(bare)
            ratio = f"{headline / bare:.3f}" if headline and bare else "n/a"
            print(
                f"round {round_index} {dtype:9s} ratio {ratio}  runner [{runner_rows}]  bare [{bare_rows}]"
                f"  load={load()}",
                flush=True,
            )
    print(
        f"{'dtype':9s} {'headline':>9s} {'bare best':>9s} {'ratio':>6s} {'all rows':>8s}  (medians over rounds)"
    )
    for dtype in dtypes:
        bare = statistics.median(bares[dtype]) if bares[dtype] else 0.0
        any_row = f"{statistics.median(loose[dtype]) / bare:8.3f}" if loose[dtype] and bare else "     n/a"
        if not headlines[dtype] or not bare:
            print(
                f"{dtype:9s} {'-':>9s} {bare:9.4f} {'n/a':>6s} {any_row}  (no stable headline in any round)"
            )
            continue
        headline = statistics.median(headlines[dtype])
        print(f"{dtype:9s} {headline:9.4f} {bare:9.4f} {headline / bare:6.3f} {any_row}")
    print(f"wall {time.perf_counter() - started:.0f}s, load={load()}")


if __name__ == "__main__":
    main()
