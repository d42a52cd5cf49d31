"""TEST04's probe calls in the judge's frames (runners/probe_frames.py): their cost and false alarms.

1. ``--runs`` honest runs of each suite through the device process (the CPU), with the program's clock
   bounds (AIA 1.2 ``clock_ratio_bounds``) and TEST04 bar: the model suite (quick, the seeded ResNet,
   float32) and the performance suite (quick, one float32 GEMM, ``--gemm``). Per run: each side's ratio of
   the device's reported total to the judge's clock around its frames, the most any one call reported of
   its own frame, how many sides were refused (a false alarm: must be 0), and how many single calls fell
   below the lower bound (what a per-call lower bound would have refused); and each frame's fixed cost,
   (host time - reported time) / calls.
2. ``--cost-rounds`` interleaved pairs of the same honest model run, old code (``OLD_COMMIT``, the probe
   without frames, from a git archive) against new, each in its own interpreter: wall time and CPU time
   (user + sys of the run and its device process) of the whole run; medians.

    python bench/test04_frames.py [--runs 10] [--cost-rounds 5] [--gemm 128]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.clock_check import program_bounds  # noqa: E402
from bench.test04_probe import archived_tree  # noqa: E402

OLD_COMMIT = "aad0609"  # main before the probe's frames
BAR = 0.10  # AIA 1.2 test04_max_speedup

WORKER = r"""
import json, sys, tempfile
from dataclasses import asdict
from pathlib import Path
from runners.device.client import DeviceClient
from runners.spec import build_spec, new_challenge

suite, bounds, bar, gemm = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
options = {"quick": True, "timing": bounds, "integrity": {"caching_threshold": bar}}
with DeviceClient("cpu") as device, tempfile.TemporaryDirectory() as directory:
    if suite == "model":
        from runners.model_suite import run_model
        from runners.models.resnet import ResNetConfig
        from runners.models.seeded import seeded_model_entry

        entry = seeded_model_entry("resnet-tiny", "resnet-cnn", asdict(ResNetConfig.small()), seed=0,
                                   directory=Path(directory))
        options.update(model_dtypes=["float32"], model_performance_dtypes=["float32"])
        spec = build_spec(suite="model", device="cpu", challenge=new_challenge(), models=[entry], options=options)
        document = run_model(spec, device)
    else:
        from runners.performance import run_performance

        options["performance"] = {"dtypes": ["float32"], "kinds": ["gemm"], "gemm_sizes": [gemm], "max_call_s": 60}
        spec = build_spec(suite="performance", device="cpu", challenge=new_challenge(), options=options)
        document = run_performance(spec, device)
items = document["integrity"]["caching"]["items"]
print("RESULT " + json.dumps([{k: i.get(k) for k in ("verdict", "reason", "speedup_ratio", "host_frames")}
                              for i in items]))
"""

# The per-call ratios: the worker above reports side totals only; this one adds every call's.
CALLS = r"""
import runners.probe_frames as pf
original = pf.probe_frames_section
def section(frames, problems, **kwargs):
    result, problem = original(frames, problems, **kwargs)
    result["calls"] = [[f.side, f.host_s, f.seconds] for f in frames or []]
    return result, problem
pf.probe_frames_section = section
"""


def old_tree() -> Path:
    return archived_tree(OLD_COMMIT, "runners", "bench", name="test04-frames-old")


def run(tree: Path, suite: str, gemm: int, *, calls: bool = False) -> tuple[list[dict], float, float]:
    """One run in its own interpreter: its TEST04 items, wall seconds, CPU seconds (with its device process)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    code = (CALLS if calls else "") + WORKER
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, suite, json.dumps(program_bounds()), str(BAR), str(gemm)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT ")), wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cost-rounds", type=int, default=5)
    parser.add_argument("--gemm", type=int, default=128)
    args = parser.parse_args()
    low, high = program_bounds()["clock_ratio_min"], program_bounds()["clock_ratio_max"]
    print(f"load before: {os.getloadavg()}  cpus: {os.cpu_count()}  bounds {low}-{high}", flush=True)
    for suite in ("model", "performance"):
        frames = refused_sides = calls_below = 0
        ratios: list[float] = []
        fixed_us: list[float] = []
        for index in range(args.runs):
            items, wall, cpu = run(ROOT, suite, args.gemm, calls=True)
            for item in items:
                section = item["host_frames"]
                calls = section.pop("calls")
                frames += len(calls)
                refused_sides += section["refused"]
                calls_below += sum(1 for _, host, seconds in calls if seconds / host < low)
                ratios += [section["fresh_ratio"], section["repeated_ratio"]]
                fixed_us.append(1e6 * sum(host - seconds for _, host, seconds in calls) / len(calls))
                print(
                    f"{suite} run {index}: verdict {item['verdict']} fresh {section['fresh_ratio']:.3f} "
                    f"repeated {section['repeated_ratio']:.3f} max call {section['max_call_ratio']:.3f} "
                    f"refused {section['refused']} frames {len(calls)} fixed {fixed_us[-1]:.0f} us/call "
                    f"wall {wall:.1f} s cpu {cpu:.1f} s load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        print(
            f"{suite}: {args.runs} honest runs, {frames} probe frames, {refused_sides} sides refused "
            f"(false alarms), {calls_below} single calls below {low}; side ratios {min(ratios):.3f}-"
            f"{max(ratios):.3f}; frame fixed cost median {statistics.median(fixed_us):.0f} us/call",
            flush=True,
        )
    old = old_tree()
    walls: dict[str, list[float]] = {"old": [], "new": []}
    cpus: dict[str, list[float]] = {"old": [], "new": []}
    for index in range(args.cost_rounds):
        for design in ("old", "new") if index % 2 == 0 else ("new", "old"):
            _, wall, cpu = run(old if design == "old" else ROOT, "model", args.gemm)
            walls[design].append(wall)
            cpus[design].append(cpu)
    if args.cost_rounds:
        for design in ("old", "new"):
            print(
                f"model run, {design} code: wall median {statistics.median(walls[design]):.2f} s "
                f"{[round(w, 2) for w in walls[design]]}, CPU median {statistics.median(cpus[design]):.2f} s "
                f"{[round(c, 2) for c in cpus[design]]}"
            )
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
