"""TEST04 caching probe: honest repeat-input speed-ups on this CPU, old probe design against new.

The old design (commit 229bcdf) timed fresh calls on inputs of their own, filled long before
their call; the new one refills the timed callable's own buffers in place right before each
fresh call (runners/integrity.py). Each run is one performance suite on one float32 GEMM size,
kinds ``gemm`` only, with a fresh challenge, as a job would run it (quick timing policy, TEST04
probe at seeded rounds of the timed run). Designs alternate run by run (interleaved rounds), each
in its own process so the old code is imported from an archive of the old commit.

Prints, per design and size: median and max speed-up over the runs, and how many runs the
program's bar (AIA 1.2 test04_max_speedup 0.10, intervals separated) would fail; then the same
figures for two memoizing devices (by content, by buffer address). Load average before and after.

    .venv/bin/python bench/test04_probe.py --runs 10 --sizes 64 128 256 512
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OLD_COMMIT = "229bcdf"
BAR = 0.10  # AIA 1.2 test04_max_speedup (apps/certificates/programs data), the B9 bound

WORKER = r"""
import json, sys, torch
from torch.overrides import TorchFunctionMode
from runners.backends.builtin import CpuBackend
from runners.performance import run_performance_suite

MEMO_FUNCS = {"matmul", "_int_mm", "_scaled_mm", "conv2d", "scaled_dot_product_attention", "linear"}

def _content(t):  # a fingerprint of the values (every 61st element), cheap beside the kernel
    return tuple(t.shape), t.detach().flatten()[::61].float().numpy().tobytes()

class Memo(TorchFunctionMode):
    def __init__(self, memory, key):
        super().__init__(); self.memory, self.key = memory, key
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") not in MEMO_FUNCS:
            return func(*args, **kwargs)
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        key = (func.__name__, *(self.key(t) for t in tensors))
        if key not in self.memory:
            self.memory[key] = func(*args, **kwargs)
        return self.memory[key]

class MemoBackend(CpuBackend):
    key = staticmethod(_content)
    def __init__(self):
        super().__init__(); self.memory = {}
    def prepare(self, fn):
        def memoized(*a):
            with Memo(self.memory, self.key):
                return fn(*a)
        return memoized

class PointerMemoBackend(MemoBackend):
    key = staticmethod(lambda t: (t.data_ptr(), tuple(t.shape), t.stride()))

if int(sys.argv[4]):
    torch.set_num_threads(int(sys.argv[4]))
backend = {"honest": CpuBackend, "content": MemoBackend, "pointer": PointerMemoBackend}[sys.argv[1]]
out = {}
for size in [int(s) for s in sys.argv[3].split(",")]:
    spec = {"quick": True, "performance": {"dtypes": ["float32"], "gemm_sizes": [size], "kinds": ["gemm"]},
            "integrity": {"caching_threshold": float(sys.argv[5])}}
    (c,) = run_performance_suite(spec, backend(), seed=sys.argv[2] + f":{size}")["caching"]
    out[size] = {k: c.get(k) for k in ("speedup_ratio", "verdict", "fresh_output_mismatches", "fresh_n", "repeated_n")}
print("RESULT " + json.dumps(out))
"""


def archived_tree(commit: str, *paths: str, name: str) -> Path:
    """``paths`` of ``commit``, extracted once under the temporary directory as ``name`` (an old design
    run as it ran, imported from there)."""
    target = Path(tempfile.gettempdir()) / f"{name}-{commit}"
    if not (target / "runners").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, *paths],  # noqa: S607 - git from PATH, as make
            check=True,
            capture_output=True,
        ).stdout
        with tempfile.TemporaryFile() as handle:
            handle.write(archive)
            handle.seek(0)
            with tarfile.open(fileobj=handle) as tar:
                tar.extractall(target, filter="data")
    return target


def old_tree() -> Path:
    """The old commit's runners/, extracted once (the old probe design, as it ran)."""
    return archived_tree(OLD_COMMIT, "runners", name="test04-old")


def run(design: str, device: str, seed: str, sizes: list[int], threads: int) -> dict[str, dict]:
    path = str(old_tree()) if design == "old" else str(ROOT)
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, device, seed, ",".join(map(str, sizes)), str(threads), str(BAR)],
        cwd=path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def summary(label: str, rows: list[dict]) -> str:
    speedups = [r["speedup_ratio"] for r in rows]
    failed = sum(r["verdict"] == "fail" for r in rows)
    stale = sum(bool(r.get("fresh_output_mismatches")) for r in rows)
    return (
        f"{label:28s} median {statistics.median(speedups):6.3f}  max {max(speedups):6.3f}  "
        f"min {min(speedups):6.3f}  fail {failed}/{len(rows)}  stale-output runs {stale}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--memo-runs", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    print(
        f"load before: {os.getloadavg()}  cpus: {os.cpu_count()}  torch threads: {args.threads or 'default'}"
    )
    results: dict[tuple[str, str, int], list[dict]] = {}
    for index in range(args.runs):
        for design in ("old", "new") if index % 2 == 0 else ("new", "old"):
            for size, row in run(design, "honest", f"bench-{index}", args.sizes, args.threads).items():
                results.setdefault((design, "honest", int(size)), []).append(row)
    for index in range(args.memo_runs):
        for design in ("old", "new"):
            for device in ("content", "pointer"):
                for size, row in run(design, device, f"memo-{index}", args.sizes, args.threads).items():
                    results.setdefault((design, device, int(size)), []).append(row)
    for device in ("honest", "content", "pointer"):
        print(f"\n{device} device (bar 1 + {BAR}, intervals separated):")
        for size in args.sizes:
            for design in ("old", "new"):
                rows = results.get((design, device, size))
                if rows:
                    print(summary(f"  {design} probe, GEMM {size}", rows))
    print(f"\nload after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
