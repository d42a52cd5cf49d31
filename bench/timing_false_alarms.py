"""False alarms of the timing-event cross-check over honest performance runs (issue 11, "Done when").

The clock cross-check (runners/timing.py step 7) refuses a figure whose device timing events
disagree with the host clock beyond the program's ``clock_ratio_bounds``. An honest device must
never trip it: this runs the performance suite ``--runs`` times (default 20), each with a fresh
challenge, the **certification** timing policy (``quick`` false, as every AIA 1.2 level runs it)
and the bounds of a certifying program level, read from the program data file the platform loads
(apps/runs/programs/aia-<version>.json, the level's ``thresholds.clock_ratio_bounds``; default the
newest published version that states them, level ``baseline``). The plan is a GEMM and bandwidth
subset that keeps one run well under a minute: float32 GEMMs at N = 256, 512, 1024 on a CPU
(bfloat16 at 1024, 2048, 4096 on a GPU) and STREAM copy and triad on buffers of 4x the last-level
cache, with the suite's TEST01 samples and TEST04 probe as a job runs them.

On a CPU (no device events) the backend is runners.backends.host_events.HostEventsCpu: honest
host-clock events through the same chained-event path a GPU's events take. On a device with
events (``--device cuda``) its own events are checked; bench/device_check.py runs this there.

Prints per run the measurements checked, the disagreements, the lowest and highest events /
host-clock ratio and the run's wall time, then ``false alarms: K of N runs`` (a run with any
disagreement is a false alarm), the load average before and after.

    python bench/timing_false_alarms.py [--runs 20] [--device cpu] [--program 1.2] [--level baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from runners.backends import get_backend  # noqa: E402
from runners.backends.host_events import HostEventsCpu  # noqa: E402
from runners.performance import run_performance_suite  # noqa: E402
from runners.spec import new_challenge  # noqa: E402

PROGRAMS_DIR = ROOT / "apps/runs/programs"
CPU_PLAN = {"dtypes": ["float32"], "gemm_sizes": [256, 512, 1024]}
# On a GPU the sizes stay at 4096 and below: the TEST04 probe builds eight fresh inputs on the host.
GPU_PLAN = {"dtypes": ["bfloat16"], "gemm_sizes": [1024, 2048, 4096]}


def load() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _version_key(definition: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in str(definition.get("version", "")).split("."))


def program_clock_bounds(version: str | None = None, level: str = "baseline") -> dict[str, Any]:
    """The clock bounds a platform job spec of ``level`` carries (apps/runs/specs.py runner_bar_options),
    read from the program's data file: ``{"program", "level", "min", "max", "source"}``.

    ``version`` None: the newest program file that is not a draft and states ``clock_ratio_bounds`` for
    ``level`` (AIA 1.0 and 1.1 state none; the platform applies frozen legacy values to their jobs)."""
    definitions = [json.loads(path.read_text()) for path in sorted(PROGRAMS_DIR.glob("*.json"))]
    if version is not None:
        definitions = [d for d in definitions if str(d.get("version")) == version]
    else:
        definitions = [d for d in definitions if d.get("status") != "draft"]
    for definition in sorted(definitions, key=_version_key, reverse=True):
        spec = next((lvl for lvl in definition.get("levels", []) if lvl.get("code") == level), None)
        entry = ((spec or {}).get("thresholds") or {}).get("clock_ratio_bounds")
        if isinstance(entry, dict):
            bounds = entry["value"]
            return {
                "program": f"{definition['code']} {definition['version']}",
                "level": level,
                "min": float(bounds["min"]),
                "max": float(bounds["max"]),
                "source": str(entry.get("source") or ""),
            }
    raise SystemExit(f"no program file in {PROGRAMS_DIR} states clock_ratio_bounds for level {level!r}")


def suite_options(backend: Any, bounds: dict[str, Any]) -> dict[str, Any]:
    """The job spec ``options`` of one run: certification policy, the program's bounds, the subset."""
    plan = CPU_PLAN if backend.name == "cpu" else GPU_PLAN
    dtypes = [d for d in plan["dtypes"] if d in backend.supported_dtypes()] or ["float32"]
    return {
        "quick": False,
        "timing": {"clock_ratio_min": bounds["min"], "clock_ratio_max": bounds["max"]},
        "performance": {
            "dtypes": dtypes,
            "kinds": ["gemm", "bandwidth"],
            "gemm_sizes": plan["gemm_sizes"],
            "sweep": False,
        },
    }


def events_backend(device: str) -> tuple[Any, str]:
    """The backend whose events are checked, and what they are."""
    backend = get_backend(device)
    if backend.has_timing_events():
        return backend, f"{backend.name} device events"
    if backend.name == "cpu":
        return HostEventsCpu(), "honest host-clock events on the CPU (runners/backends/host_events.py)"
    raise SystemExit(f"{device} has no timing events: the cross-check does not apply (not_applicable)")


def false_alarm_runs(
    backend: Any, options: dict[str, Any], runs: int, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Runs the suite ``runs`` times with fresh challenges; prints each run; returns the totals."""
    alarms = checked = disagreements = 0
    lowest, highest = float("inf"), 0.0
    started = time.perf_counter()
    for run in range(1, runs + 1):
        began = time.perf_counter()
        out = run_performance_suite({"options": options}, backend, seed=new_challenge())
        timing = out["timing"]
        unstable = sum(1 for m in out["measurements"] if m["unstable"])
        alarms += timing["disagreements"] > 0
        checked += timing["checked"]
        disagreements += timing["disagreements"]
        if timing["min_ratio"] is not None:
            lowest, highest = min(lowest, timing["min_ratio"]), max(highest, timing["max_ratio"])
        ratios = (
            f"{timing['min_ratio']:.4f} .. {timing['max_ratio']:.4f}"
            if timing["min_ratio"] is not None
            else "-"
        )
        say(
            f"run {run:2d}: checked {timing['checked']}, disagreements {timing['disagreements']}, "
            f"ratio {ratios}, verdict {timing['verdict']}, unstable {unstable}/{len(out['measurements'])} "
            f"({time.perf_counter() - began:.1f} s, load {load()})"
        )
    say(
        f"false alarms: {alarms} of {runs} runs ({disagreements} disagreements in {checked} checked "
        f"measurements; events / host clock {lowest:.4f} .. {highest:.4f}; "
        f"{time.perf_counter() - started:.0f} s)"
    )
    return {
        "runs": runs,
        "false_alarm_runs": alarms,
        "checked": checked,
        "disagreements": disagreements,
        "min_ratio": lowest,
        "max_ratio": highest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--program", default=None, help="program version (default: newest published)")
    parser.add_argument("--level", default="baseline")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bounds = program_clock_bounds(args.program, args.level)
    backend, events = events_backend(args.device)
    options = suite_options(backend, bounds)
    print(
        f"{bounds['program']} level {bounds['level']}: clock_ratio_bounds [{bounds['min']}, {bounds['max']}] "
        f"(source: {bounds['source'][:120]}...)\n"
        f"events: {events}; threads={torch.get_num_threads()} torch={torch.__version__}; "
        f"plan {json.dumps(options['performance'])}, certification timing policy; load {load()}",
        flush=True,
    )
    false_alarm_runs(backend, options, args.runs, say=lambda line: print(line, flush=True))
    print(f"load {load()}")


if __name__ == "__main__":
    main()
