"""Benchmark: the CPU time of `make test-fast`'s selection, this tree against another, interleaved.

Runs the fast selection (no slow, integration or browser test; `-n auto --maxprocesses 4`, as the
Makefile's test-fast target) in each tree in turn, round after round (A B, B A, A B, ...), and reports per
tree the median wall time and the median user+sys CPU time of pytest and all its children (the xdist
workers, the background producer of the real runner documents, every interpreter a test starts), read
from getrusage(RUSAGE_CHILDREN) around each run, with the load average before each run. This process is
made a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so a descendant orphaned by its parent (the
producer, started by an xdist worker that exits before it) is reaped here and its CPU time counted. On a shared,
loaded host the CPU time is the figure to compare; the wall time says how long one waited.

Each tree runs with its own bytecode cache (TREE/var/pycache, as `make test-fast`) and this environment's
DATABASE_URL and CELERY_BROKER_URL (pytest-django makes test_<name> from it; the trees run one after the
other, never together). A first, untimed run per tree warms the caches unless --no-warm.

    .venv/bin/python bench/test_fast_cpu.py OTHER_TREE [--rounds 3] [--no-warm] [--log-dir DIR] [-- PYTEST_ARGS...]

Each run's whole pytest output goes to DIR (default: a new temporary directory, named at the start), so
a failure in a timed run can be read afterwards.

OTHER_TREE: for instance a `git archive main | tar x -C /tmp/old` copy with .venv linked and var/secret_key.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
FAST = ["-m", "not slow and not integration and not browser", "-n", "auto", "--maxprocesses", "4"]


def run_once(tree: Path, extra: list[str], log: Path) -> dict:
    env = dict(
        os.environ,
        PYTHONPATH=str(tree),
        PYTHONDONTWRITEBYTECODE="",
        PYTHONPYCACHEPREFIX=str(tree / "var" / "pycache"),
    )
    command = [str(tree / ".venv" / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    completed = subprocess.run(  # noqa: S603 - the tree's own interpreter and pytest
        [*command, *FAST, *extra], cwd=tree, env=env, capture_output=True, text=True
    )
    while True:  # orphaned descendants, reparented to this process: wait for them to count their CPU
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = (
        completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else completed.stderr[-500:]
    )
    return {
        "wall": wall,
        "user": after.ru_utime - before.ru_utime,
        "sys": after.ru_stime - before.ru_stime,
        "load": load,
        "rc": completed.returncode,
        "summary": summary,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("other", type=Path, help="the tree to compare against (the old code)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-warm", action="store_true")
    parser.add_argument("--log-dir", type=Path, default=None)
    argv = sys.argv[1:]
    pytest_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    args.pytest_args = pytest_args
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    trees = {"this": ROOT, "other": args.other.resolve()}
    logs = args.log_dir or Path(tempfile.mkdtemp(prefix="test-fast-cpu-"))
    logs.mkdir(parents=True, exist_ok=True)
    print(f"pytest's output of each run: {logs}", flush=True)
    if not args.no_warm:
        for name, tree in trees.items():
            result = run_once(tree, args.pytest_args, logs / f"warm-{name}.txt")
            print(f"warm {name}: {result['summary']}", flush=True)
    results: dict[str, list[dict]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
        for name in order:
            result = run_once(trees[name], args.pytest_args, logs / f"round{round_ + 1}-{name}.txt")
            results[name].append(result)
            print(
                f"round {round_ + 1} {name}: wall {result['wall']:.1f} s, user {result['user']:.1f} s, "
                f"sys {result['sys']:.1f} s, load {result['load']:.1f}, rc {result['rc']}: {result['summary']}",
                flush=True,
            )
    for name, runs in results.items():
        cpu = statistics.median(r["user"] + r["sys"] for r in runs)
        wall = statistics.median(r["wall"] for r in runs)
        loads = ", ".join(f"{r['load']:.1f}" for r in runs)
        print(f"{name} ({trees[name]}): median user+sys {cpu:.1f} s, median wall {wall:.1f} s (load {loads})")
    return 0 if all(r["rc"] == 0 for runs in results.values() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
