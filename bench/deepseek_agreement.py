"""The tiny DeepSeek-V3-style decoder's greedy-token agreement on this CPU, per dtype, over fresh challenges.

Runs the model suite's accuracy pass exactly as the suite does (``workload_for``: the prompts drawn for
the routing and top-1 logit margins; the module placed in each dtype; the accuracy batches of
``ACCURACY_BATCH``; the workload's own score), for quick and/or full mode, and prints per challenge the
judged agreement (the lower of the main and MTP heads') per dtype, then the minimum and mean per dtype
and mode. For each disagreement it also prints the float64 top-1/top-2 logit gap relative to the
position's largest |logit| (what the draw's logit margin conditions), and per dtype the largest logit
error relative to the same scale (what a margin must exceed).

    python bench/deepseek_agreement.py [--challenges 40] [--modes quick,full] [--dtypes float32,bfloat16,float16]
    [--fp8] (the FP8 checkpoint of the same weights, runners/models/fp8.py: E4M3 with 128x128 block scales,
    placed dequantized, against the float64 reference of the exactly dequantized weights)
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runners.model_suite import DTYPES, deepseek_tiny_fp8_model, deepseek_tiny_model  # noqa: E402
from runners.model_suite.performance import ACCURACY_BATCH  # noqa: E402
from runners.model_suite.workloads import workload_for  # noqa: E402
from runners.models import ModelSpec, load_model  # noqa: E402

# The program's bars (AIA 1.x model_accuracy: greedy-token agreement per dtype)
BARS = {"float32": 0.99, "bfloat16": 0.90, "float16": 0.97}


def relative_gaps(ref: torch.Tensor) -> torch.Tensor:
    top = ref.topk(2, dim=-1).values
    return (top[..., 0] - top[..., 1]) / ref.abs().amax(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--challenges", type=int, default=40)
    parser.add_argument("--first", type=int, default=0, help="index of the first challenge")
    parser.add_argument("--modes", default="quick,full")
    parser.add_argument("--dtypes", default="float32,bfloat16,float16")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fp8", action="store_true", help="the FP8 checkpoint of the same weights")
    args = parser.parse_args()
    dtypes = args.dtypes.split(",")
    entry = (deepseek_tiny_fp8_model if args.fp8 else deepseek_tiny_model)(Path(tempfile.mkdtemp()))
    loaded = load_model(ModelSpec.from_dict(entry))
    # One thread: on this shared 2-core machine two OpenMP threads spin against the other processes
    # (the float64 draw measured 20x slower in wall time, 0.4 s vs 9 s CPU for one 4x6 draw).
    torch.set_num_threads(args.threads)
    for mode in args.modes.split(","):
        quick = mode == "quick"
        values: dict[str, list[float]] = {d: [] for d in dtypes}
        errors: dict[str, float] = dict.fromkeys(dtypes, 0.0)
        below = dict.fromkeys(dtypes, 0)
        for index in range(args.first, args.first + args.challenges):
            challenge = hashlib.sha256(f"deepseek-agreement-{index}".encode()).hexdigest()
            start = time.perf_counter()
            workload = workload_for(loaded, challenge, quick=quick)
            drawn = time.perf_counter() - start
            reference = workload.reference()
            line = [f"{mode} challenge {index:3d} draw {drawn:5.1f}s"]
            for dtype in dtypes:
                module = loaded.place(torch.device("cpu"), DTYPES[dtype], free_bytes=None)
                entry = workload.entry(module) if workload.entry is not None else module
                with torch.inference_mode():
                    out = torch.cat(
                        [
                            entry(*workload.make_batch(list(chunk), torch.device("cpu"), DTYPES[dtype])).to(
                                "cpu", torch.float64
                            )
                            for chunk in (
                                range(s, min(s + ACCURACY_BATCH, workload.size))
                                for s in range(0, workload.size, ACCURACY_BATCH)
                            )
                        ]
                    )
                score = workload.score(out, reference, dtype)
                values[dtype].append(score["value"])
                below[dtype] += score["value"] < BARS[dtype]
                scale = reference.abs().amax(-1, keepdim=True)
                errors[dtype] = max(errors[dtype], float(((out - reference).abs() / scale).max()))
                wrong = out.argmax(-1) != reference.argmax(-1)
                gaps = relative_gaps(reference)[wrong]
                detail = ",".join(f"{float(g):.4f}" for g in gaps.sort().values[:4])
                line.append(
                    f"{dtype} {score['value']:.3f}"
                    + (
                        f" (lgap {score.get('logit_margin_min', float('nan')):.4f})"
                        if dtype == dtypes[0]
                        else ""
                    )
                    + (f" [flips at rel gap {detail}]" if detail else "")
                )
            print("  ".join(line), flush=True)
        for dtype in dtypes:
            print(
                f"{mode} {dtype}: min {min(values[dtype]):.3f} mean {statistics.mean(values[dtype]):.3f} "
                f"below bar {BARS[dtype]}: {below[dtype]}/{len(values[dtype])}; "
                f"largest logit error / max|logit| {errors[dtype]:.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
