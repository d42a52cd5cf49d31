"""One prepared check of a device: conformance, performance (GEMM against a bare loop), the timing
cross-check's false alarms, and serving through MLPerf LoadGen, with a printed summary. What
bench/device_check.sh runs.

    python bench/device_check.py --device cuda [--quick] [--out DIR] [--clock-runs 20]

Prints: the fingerprint; conformance passed/total per dtype; per dtype the suite's GEMM headline
(TFLOP/s), the best of a bare torch.matmul loop and their ratio; the clock cross-check over
``--clock-runs`` honest performance runs with the device's own timing events (GEMM and bandwidth,
certification timing policy, the AIA 1.2 level's clock_ratio_bounds read from the program file:
bench/timing_false_alarms.py) ending in "false alarms: K of N runs"; per served model LoadGen's verdicts,
Server QPS at the latency bound, Offline samples/s, TTFT / TPOT and tokens/s for the decoder, and
energy per query (NVML on CUDA, RAPL on CPUs where readable, else `unavailable` and why). With --out,
every result document is written there as canonical JSON. --quick keeps everything short (a CPU in
a minute or two); its serving figures use short, non-certifying LoadGen durations.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gemm_vs_bare import CPU_SIZES, GPU_SIZES, bare_best  # noqa: E402
from timing_false_alarms import false_alarm_runs, program_clock_bounds, suite_options  # noqa: E402

from runners.backends import get_backend  # noqa: E402
from runners.backends.host_events import HostEventsCpu  # noqa: E402
from runners.canonical import canonical_json  # noqa: E402
from runners.document import validate_document  # noqa: E402
from runners.performance import MAX_CALL_S, run_performance_suite  # noqa: E402
from runners.serving_bound import server_bound  # noqa: E402
from runners.spec import build_spec  # noqa: E402
from runners.suites import run_suite  # noqa: E402

QUICK_KERNELS = ["matmul", "linear", "softmax", "layer_norm", "sdpa", "embedding"]
SERVING_QUICK = {
    "source": "bench/device_check.py --quick (exploration, not a program's settings)",
    "max_batch": 8,
    "scenarios": {
        "SingleStream": {"min_duration_ms": 300, "min_query_count": 64, "percentile": 0.9},
        "MultiStream": {
            "min_duration_ms": 300,
            "min_query_count": 64,
            "percentile": 0.9,
            "samples_per_query": 8,
        },
        "Server": {"min_duration_ms": 500, "min_query_count": 64, "percentile": 0.9, "latency_bound_ms": 100},
        "Offline": {"min_duration_ms": 300, "min_query_count": 1},
    },
    "server_search": {"max_steps": 3, "start_fraction": 0.5, "precision": 0.1, "max_step_s": 10},
    "llm": {"output_tokens": 8, "ttft_ms": 2000, "tpot_ms": 200},
}
# On a GPU: AIA 1.2 Baseline-like settings (2 s per scenario, p90, 100 ms Server bound, 6 search steps).
SERVING_GPU = {
    **SERVING_QUICK,
    "source": "bench/device_check.py (AIA 1.2 Baseline-like durations; a check, not a certification)",
    "scenarios": {
        "SingleStream": {"min_duration_ms": 2000, "min_query_count": 64, "percentile": 0.9},
        "MultiStream": {
            "min_duration_ms": 2000,
            "min_query_count": 662,
            "percentile": 0.99,
            "samples_per_query": 8,
        },
        "Server": {
            "min_duration_ms": 2000,
            "min_query_count": 100,
            "percentile": 0.9,
            "latency_bound_ms": 100,
        },
        "Offline": {"min_duration_ms": 2000, "min_query_count": 1},
    },
    "server_search": {"max_steps": 6, "start_fraction": 0.5, "precision": 0.1, "max_step_s": 15},
}


def say(text: str) -> None:
    print(text, flush=True)


def save(out: Path | None, name: str, document: dict) -> None:
    validate_document(document)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_bytes(canonical_json(document))


def conformance(backend, device: str, quick: bool, out: Path | None) -> None:
    started = time.perf_counter()
    spec = build_spec(
        suite="conformance",
        device=device,
        kernels=QUICK_KERNELS if quick else None,
        dtypes=["float32", "bfloat16"],
    )
    document = run_suite(spec, backend=backend, progress=lambda fraction, label: None)
    save(out, "conformance", document)
    summary = document["summary"]
    say(
        f"conformance: {summary['passed']}/{summary['total']} passed, {summary['failed']} failed, "
        f"{summary['errors']} errors, {summary['unsupported']} unsupported ({time.perf_counter() - started:.0f} s)"
    )


def performance(backend, quick: bool) -> None:
    sizes = (
        (CPU_SIZES[:2] if quick else CPU_SIZES) if backend.name == "cpu" else GPU_SIZES[: 3 if quick else 4]
    )
    dtypes = [d for d in ("bfloat16", "float16", "float32") if d in backend.supported_dtypes()]
    for dtype in dtypes[:1] if quick else dtypes:
        started = time.perf_counter()
        spec = {
            "options": {
                "performance": {
                    "dtypes": [dtype],
                    "kinds": ["gemm"],
                    "gemm_sizes": sizes,
                    "sweep": True,
                    "max_call_s": MAX_CALL_S,
                }
            }
        }
        out = run_performance_suite(spec, backend, seed=f"device-check-{dtype}")
        headline = out["claims"]["dtypes"][dtype]["best_gemm_tflops"]
        bare, _, bare_rows, _ = bare_best(dtype, sizes, backend.device(), backend, MAX_CALL_S, 0.2)
        ratio = f"{headline / bare:.3f}" if headline and bare else "n/a"
        say(
            f"gemm {dtype}: suite headline {headline or 0:.4g} TFLOP/s, bare loop {bare:.4g} TFLOP/s "
            f"([{bare_rows}]), ratio {ratio} ({time.perf_counter() - started:.0f} s)"
        )


def clock_false_alarms(backend, runs: int) -> None:
    """The timing cross-check over ``runs`` honest performance runs with this device's events."""
    events = backend if backend.has_timing_events() else HostEventsCpu() if backend.name == "cpu" else None
    if events is None:
        say(f"clock cross-check: not applicable ({backend.name} has no timing events)")
        return
    bounds = program_clock_bounds()
    what = "device events" if events is backend else "honest host-clock events (no device events)"
    say(
        f"clock cross-check: {runs} honest performance runs, {what}, {bounds['program']} {bounds['level']} "
        f"clock_ratio_bounds [{bounds['min']}, {bounds['max']}], certification timing policy:"
    )
    false_alarm_runs(events, suite_options(events, bounds), runs, say=lambda line: say(f"  {line}"))


def _figure(document: dict, model: str, kind: str, scenario: str) -> str:
    for item in document["measurements"]:
        params = item["params"]
        if item["kind"] == kind and params.get("model") == model and params.get("scenario") == scenario:
            if item["value"] is None:
                reason = (params.get("energy") or {}).get("reason") if kind == "energy" else None
                return "INVALID" if "loadgen_invalid" in item["flags"] else f"unavailable ({reason})"
            return f"{item['value']:.4g} {item['unit']}"
    return "-"


def serving(backend, device: str, quick: bool, out: Path | None) -> None:
    started = time.perf_counter()
    settings = SERVING_QUICK if quick or backend.name == "cpu" else SERVING_GPU
    spec = build_spec(suite="serving", device=device, options={"quick": quick, "serving": settings})
    document = run_suite(spec, backend=backend, progress=lambda fraction, label: say(f"  serving: {label}"))
    save(out, "serving", document)
    say(
        f"serving ({document['serving']['dtype']}, LoadGen {document['serving']['loadgen_version']}, "
        f"{time.perf_counter() - started:.0f} s):"
    )
    for model in document["serving"]["models"]:
        name = model["name"]
        runs = model["scenarios"]
        verdicts = ", ".join(
            f"{s} {'VALID' if r.get('result_valid') else 'INVALID'}"
            for s, r in runs.items()
            if r.get("ran", True)
        )
        server = runs.get("Server", {})
        search = server.get("search", {})
        # What LoadGen judged the Server run by (runners/serving_bound.py): TTFT and TPOT for a decoder
        # (token-latency mode), one latency bound otherwise.
        judged, problem = server_bound(
            {
                "loadgen_summary": server.get("summary_text"),
                "percentile": server.get("requested", {}).get("percentile"),
            }
        )
        bound = judged.text() if judged is not None else f"no bound read ({problem})"
        say(f"  {name}: {verdicts}")
        say(
            f"    Server QPS at {bound}: "
            f"{_figure(document, name, 'serving_qps', 'Server')} "
            f"({len(search.get('steps', []))} search steps: "
            + ", ".join(
                f"{s['target_qps']:.3g}{'+' if s['result_valid'] else '-'}" for s in search.get("steps", [])
            )
            + ")"
        )
        say(f"    Offline: {_figure(document, name, 'serving_throughput', 'Offline')}")
        say(f"    SingleStream p90: {_figure(document, name, 'serving_latency', 'SingleStream')}")
        if model.get("token_latencies"):
            for scenario in ("SingleStream", "Server"):
                say(
                    f"    {scenario} TTFT {_figure(document, name, 'serving_ttft', scenario)}, "
                    f"TPOT {_figure(document, name, 'serving_tpot', scenario)}"
                )
            say(
                f"    tokens/s: Offline {_figure(document, name, 'serving_tokens', 'Offline')}, "
                f"Server {_figure(document, name, 'serving_tokens', 'Server')}"
            )
        say(f"    energy per query (Server): {_figure(document, name, 'energy', 'Server')}")
    accuracy = [c for c in document["cases"] if c["case"] == "serving_accuracy"]
    say(
        "  accuracy mode: "
        + ", ".join(f"{c['kernel']} {c['status']} ({c['metrics'].get('value')})" for c in accuracy)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--skip", default="", help="comma-separated: conformance,performance,clock,serving")
    parser.add_argument(
        "--clock-runs",
        type=int,
        default=None,
        help="honest runs of the clock cross-check (20; 3 with --quick)",
    )
    args = parser.parse_args()
    backend = get_backend(args.device)
    available, reason = backend.availability()
    if not available:
        say(f"device {args.device} unavailable: {reason}")
        return 3
    fingerprint = backend.fingerprint()
    say(
        json.dumps(
            {k: fingerprint.get(k) for k in ("backend", "device_name", "torch_version", "driver_version")}
        )
    )
    say(f"threads={torch.get_num_threads()} quick={args.quick}")
    skip = set(filter(None, args.skip.split(",")))
    if "conformance" not in skip:
        conformance(backend, args.device, args.quick, args.out)
    if "performance" not in skip:
        performance(backend, args.quick)
    if "clock" not in skip:
        clock_false_alarms(backend, args.clock_runs or (3 if args.quick else 20))
    if "serving" not in skip:
        serving(backend, args.device, args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
