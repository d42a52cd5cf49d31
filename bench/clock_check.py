"""False alarms of the timing clock cross-check on honest runs.

Runs the performance suite ``--runs`` times on a reduced plan (GEMM, attention and conv at
small shapes, the quick policy) with the CPU backend's timing events switched on: its
events are the base backend's honest ``ClockEvent`` (synchronize, then read the monotonic
clock), so every round goes through the same chained-event cross-check a GPU's would. A
false alarm is any measurement flagged ``clock_disagreement``. Prints each run's lowest and
highest events / host-clock ratio and the false-alarm count (issue 11, item 5: must be 0).

    python bench/clock_check.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runners.backends.host_events import HostEventsCpu  # noqa: E402
from runners.performance import run_performance_suite  # noqa: E402
from runners.spec import new_challenge  # noqa: E402


def program_bounds() -> dict[str, float]:
    """The clock bounds a platform job spec carries: AIA 1.2's level thresholds (clock_ratio_bounds)."""
    definition = json.loads((ROOT / "apps/runs/programs/aia-1.2.json").read_text())
    bounds = definition["levels"][0]["thresholds"]["clock_ratio_bounds"]["value"]
    return {"clock_ratio_min": bounds["min"], "clock_ratio_max": bounds["max"]}


REDUCED = {
    "quick": True,
    "timing": program_bounds(),
    "performance": {"dtypes": ["float32"], "gemm_sizes": [128, 256], "kinds": ["gemm", "attention", "conv"]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    backend = HostEventsCpu()
    alarms = measured = 0
    lowest, highest = float("inf"), 0.0
    for run in range(1, args.runs + 1):
        started = time.perf_counter()
        out = run_performance_suite({"options": REDUCED}, backend, seed=new_challenge())
        timing = out["timing"]
        alarms += timing["disagreements"]
        measured += timing["checked"]
        lowest, highest = min(lowest, timing["min_ratio"]), max(highest, timing["max_ratio"])
        print(
            f"run {run:2d}: {timing['checked']} measurements, ratio {timing['min_ratio']:.4f} .. "
            f"{timing['max_ratio']:.4f}, disagreements {timing['disagreements']} "
            f"({time.perf_counter() - started:.1f}s)",
            flush=True,
        )
    print(
        f"{alarms} false alarms in {measured} honest measurements over {args.runs} runs "
        f"(events / host clock {lowest:.4f} .. {highest:.4f}; bounds {timing['bounds']})"
    )


if __name__ == "__main__":
    main()
