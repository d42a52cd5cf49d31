"""The model suite's timed frames (issue 13): their fixed cost and their false alarms on honest runs.

1. An empty frame's round trip between the judge and the device process (``ping``): the fixed cost
   every timed frame carries on top of the device's timed loop (two pipe messages).
2. ``--runs`` honest quick model runs (the seeded ResNet, float32, the CPU through the device process)
   with the program's clock bounds (AIA 1.2 ``clock_ratio_bounds``): each timed measurement's ratio of
   the device's reported total to the judge's clock around its frame, and how many were refused (a
   false alarm: must be 0). ``--default-runs`` more with the certification timing policy.
3. The harness's own between-round overhead for a call of a few microseconds (the worst case: rounds
   are shortest), in this process: the reported total over the loop's wall time, quick and default.

    python bench/model_frames.py [--runs 5] [--default-runs 1] [--pings 500]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.clock_check import program_bounds  # noqa: E402
from runners.device.client import DeviceClient  # noqa: E402
from runners.model_suite import run_model  # noqa: E402
from runners.model_suite.frames import CommittingSampler  # noqa: E402
from runners.models.resnet import ResNetConfig  # noqa: E402
from runners.models.seeded import seeded_model_entry  # noqa: E402
from runners.spec import build_spec, new_challenge  # noqa: E402
from runners.timing import TimingPolicy, measure_with_output  # noqa: E402


def pings(device: DeviceClient, count: int) -> dict[str, float]:
    times = []
    for _ in range(count):
        start = time.perf_counter_ns()
        device._request({"op": "ping"})
        times.append((time.perf_counter_ns() - start) / 1e3)
    times.sort()
    return {"median_us": statistics.median(times), "p99_us": times[int(0.99 * (len(times) - 1))]}


def honest_run(directory: Path, quick: bool) -> dict[str, object]:
    entry = seeded_model_entry(
        "resnet-tiny", "resnet-cnn", asdict(ResNetConfig.small()), seed=0, directory=directory
    )
    spec = build_spec(
        suite="model",
        device="cpu",
        challenge=new_challenge(),
        models=[entry],
        options={
            "quick": quick,
            "model_dtypes": ["float32"],
            "model_performance_dtypes": ["float32"],
            "timing": program_bounds(),
        },
    )
    with DeviceClient("cpu") as device:
        document = run_model(spec, device)
    [timing] = document["integrity"]["timing"]["items"]
    return timing["host_frames"]


def harness_overhead(policy: TimingPolicy) -> float:
    a = torch.ones(16)
    every: list[float] = []
    sampler = CommittingSampler(lambda out: out[:4])
    start = time.perf_counter()
    stats, _ = measure_with_output(
        lambda: a + 1, policy=policy, between_rounds=sampler, before_timed=lambda: None, every_sample=every
    )
    wall = time.perf_counter() - start  # includes the warm-up: a lower bound of the ratio
    return sum(every) * stats.calls_per_sample / wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--default-runs", type=int, default=1)
    parser.add_argument("--pings", type=int, default=500)
    args = parser.parse_args()
    print("load average", os.getloadavg())
    with DeviceClient("cpu") as device:
        print("empty frame round trip", pings(device, args.pings))
    for name, policy in (("quick", TimingPolicy.quick()), ("default", TimingPolicy())):
        print(f"harness ratio, a few-us call, {name} policy", round(harness_overhead(policy), 4))
    refused = checked = 0
    ratios: list[float] = []
    cpu0 = time.process_time()
    for index in range(args.runs + args.default_runs):
        quick = index < args.runs
        with tempfile.TemporaryDirectory() as directory:
            frames = honest_run(Path(directory), quick)
        checked += frames["checked"]
        refused += frames["refused"]
        ratios += [frames["min_ratio"], frames["max_ratio"]]
        print("quick" if quick else "default", "run", index, frames, "load", os.getloadavg()[0], flush=True)
    print(
        f"honest runs: {args.runs} quick + {args.default_runs} default, {checked} timed frames, "
        f"{refused} refused (false alarms); ratios {min(ratios):.4f}-{max(ratios):.4f}; "
        f"judge CPU {time.process_time() - cpu0:.1f} s"
    )


if __name__ == "__main__":
    main()
