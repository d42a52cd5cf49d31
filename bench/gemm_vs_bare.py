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

One methodology on both sides: warm operands (each side warms up on its own buffers, neither flushes
caches: the certification policy's ``flush_cache`` is off and ``Timer`` has none; the line ``method``
prints the policy's value), the same thread count (``threads`` prints ``torch.get_num_threads()`` as
seen inside the runner's timed calls and inside the bare loop), and the same stability bar: the
headline admits only stable rows (relative IQR at most the policy's ``target_rel_iqr``, 5 %), so the
bare loop's rows are marked ``u`` where their own relative IQR is above it, and ``stable bare`` is the
best of the bare rows that meet it (``ratio/stable``). ``ratio`` stays headline / best bare row of any
stability, the issue's target.

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
from runners.timing import TimingPolicy  # noqa: E402

# The headline's stability bar (runners/timing.py, the certification policy), applied to the bare rows.
STABLE_REL_IQR = TimingPolicy().target_rel_iqr


class ThreadsSeen:
    """The backend the runner times through, recording ``torch.get_num_threads()`` inside its calls."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.seen: set[int] = set()

    def __getattr__(self, name: str):
        return getattr(self._backend, name)

    def prepare(self, fn):
        prepared = self._backend.prepare(fn)

        def call():
            self.seen.add(torch.get_num_threads())
            return prepared()

        return call


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
    if out["timing_policy"]["flush_cache"]:
        raise SystemExit("the runner's policy flushes caches: the bare loop does not, so they would differ")
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
    """The best throughput of a bare ``torch.matmul`` loop over ``sizes`` (Timer.blocked_autorange), the
    best of its rows whose relative IQR meets the headline's bar, the rows, and the threads it ran at."""
    threads = torch.get_num_threads()
    best, stable_best, rate, measured = 0.0, 0.0, 0.0, []
    for n in sizes:
        if rate and rate * 2 * n**3 > max_call_s:
            break
        g = torch.Generator().manual_seed(n)
        a = torch.randn(n, n, generator=g).to(device, getattr(torch, dtype))
        b = torch.randn(n, n, generator=g).to(device, getattr(torch, dtype))
        timer = Timer("torch.matmul(a, b)", globals={"torch": torch, "a": a, "b": b}, num_threads=threads)
        backend.synchronize()
        result = timer.blocked_autorange(min_run_time=min_run_s)
        seconds = result.median
        rate = seconds / (2 * n**3)
        tflops = 2 * n**3 / seconds / 1e12
        stable = result.iqr / seconds <= STABLE_REL_IQR
        measured.append(f"{n}:{tflops:.4f}{'' if stable else 'u'}")
        best = max(best, tflops)
        if stable:
            stable_best = max(stable_best, tflops)
    return best, stable_best, ", ".join(measured), threads


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
    backend = ThreadsSeen(get_backend(args.device))
    device = backend.device()
    sizes = CPU_SIZES if backend.name == "cpu" else GPU_SIZES
    sizes = [n for n in sizes if args.max_n is None or n <= args.max_n]
    dtypes = [d for d in args.dtypes.split(",") if d in backend.supported_dtypes()]
    print(
        f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} sizes={sizes} "
        f"rounds={args.rounds} load={load()}",
        flush=True,
    )
    print(
        f"method: warm operands, no cache flush on either side (runner flush_cache="
        f"{TimingPolicy().flush_cache}); stability bar rel IQR <= {STABLE_REL_IQR} on both sides",
        flush=True,
    )
    stable_bares: dict[str, list[float]] = {d: [] for d in dtypes}
    bare_threads: set[int] = set()
    headlines: dict[str, list[float]] = {d: [] for d in dtypes}
    bares: dict[str, list[float]] = {d: [] for d in dtypes}
    loose: dict[str, list[float]] = {d: [] for d in dtypes}  # unstable rows admitted
    started = time.perf_counter()
    for round_index in range(args.rounds):
        for dtype in dtypes:
            headline, any_row, runner_rows = runner_headline(
                dtype, sizes, backend, args.max_call_s, seed=f"bench-{dtype}-{round_index}"
            )
            bare, stable_bare, bare_rows, threads = bare_best(
                dtype, sizes, device, backend, args.max_call_s, args.min_run_s
            )
            bare_threads.add(threads)
            if stable_bare:
                stable_bares[dtype].append(stable_bare)
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
        f"threads: runner's timed calls {sorted(backend.seen)}, bare loop {sorted(bare_threads)}"
        f"{'' if backend.seen == bare_threads else '  (DIFFERENT: the comparison is not like with like)'}"
    )
    print(
        f"{'dtype':9s} {'headline':>9s} {'bare best':>9s} {'ratio':>6s} {'all rows':>8s} "
        f"{'stable bare':>11s} {'ratio/stable':>12s}  (medians over rounds)"
    )
    for dtype in dtypes:
        bare = statistics.median(bares[dtype]) if bares[dtype] else 0.0
        any_row = f"{statistics.median(loose[dtype]) / bare:8.3f}" if loose[dtype] and bare else "     n/a"
        stable = statistics.median(stable_bares[dtype]) if stable_bares[dtype] else 0.0
        if not headlines[dtype] or not bare:
            print(
                f"{dtype:9s} {'-':>9s} {bare:9.4f} {'n/a':>6s} {any_row} {stable:11.4f} {'n/a':>12s}"
                "  (no stable headline in any round)"
            )
            continue
        headline = statistics.median(headlines[dtype])
        over_stable = f"{headline / stable:12.3f}" if stable else f"{'n/a':>12s}"
        print(
            f"{dtype:9s} {headline:9.4f} {bare:9.4f} {headline / bare:6.3f} {any_row} {stable:11.4f} {over_stable}"
        )
    print(f"wall {time.perf_counter() - started:.0f}s, load={load()}")


if __name__ == "__main__":
    main()
