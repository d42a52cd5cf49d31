"""Accuracy of the FP8 test model (the tiny DeepSeek-V3-style decoder's FP8 checkpoint with a K = 2048
reduction and outlier activation channels, runners/models/fp8.py plant_activation_outliers) on the
block-scaled FP8 path, honest and with each planted fault, against the float64 reference of the
dequantized weights and unquantized activations, over fresh challenges: the measurement behind the AIA 1.3
draft's FP8 bar (Advanced, threshold fp8_accuracy).

Runs the model suite's accuracy pass as the suite does (``workload_for``: the prompts drawn for the
routing and top-1 logit margins; the module placed with the backend's probed FP8 GEMM,
``Backend.fp8_gemm``, in the run's dtype; the workload's own score) and prints per challenge and variant
the judged greedy-token agreement (the lower of the main and MTP heads', teacher-forced), the main head's
agreement, the smallest logit cosine of the two heads, the mean logit cosine (``logit_cosine_mean``, the
FP8 bar's second metric) and the largest logit error relative to the largest |logit|, with wall and CPU
time; then per variant the median, minimum and maximum of each over the challenges. Variants:
``dequantized`` (the weights dequantized to the dtype, no FP8 computation), ``honest`` (the block-scaled
FP8 path) and the planted faults of tests/runners/planted_fp8.py.

    python bench/deepseek_fp8_accuracy.py [--challenges 8] [--mode full|quick] [--dtype bfloat16]
    [--faults a,b] [--threads 1]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runners.backends import get_backend  # noqa: E402
from runners.model_suite import DTYPES, deepseek_tiny_fp8_model  # noqa: E402
from runners.model_suite.performance import ACCURACY_BATCH  # noqa: E402
from runners.model_suite.workloads import workload_for  # noqa: E402
from runners.models import ModelSpec, load_model  # noqa: E402
from tests.runners.planted_fp8 import FAULTS, planted  # noqa: E402

FIGURES = ("value", "main_token_agreement", "cosine", "cosine_mean", "logit_max_rel_error")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--challenges", type=int, default=8)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--mode", default="full", choices=("full", "quick"))
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    gemm = get_backend("cpu").fp8_gemm()
    if gemm is None:
        raise SystemExit("the CPU backend's FP8 GEMM failed its probe")
    loaded = load_model(ModelSpec.from_dict(deepseek_tiny_fp8_model(Path(tempfile.mkdtemp()))))
    variants: list[tuple[str, str | None, bool]] = [("dequantized", None, False), ("honest", None, True)]
    variants += [(name, name, True) for name in args.faults.split(",") if name]
    results: dict[str, dict[str, list[float]]] = {v[0]: {f: [] for f in FIGURES} for v in variants}
    print(f"FP8 products: {gemm.kind}; mode {args.mode}, dtype {args.dtype}, load {os.getloadavg()}")
    for index in range(args.first, args.first + args.challenges):
        challenge = hashlib.sha256(f"deepseek-fp8-accuracy-{index}".encode()).hexdigest()
        start = time.perf_counter()
        workload = workload_for(loaded, challenge, quick=args.mode == "quick")
        reference = workload.reference()
        print(f"challenge {index:2d} draw+reference {time.perf_counter() - start:5.1f}s")
        for label, fault, fp8 in variants:
            start, cpu = time.perf_counter(), time.process_time()
            with planted(fault):
                module = loaded.place(
                    torch.device("cpu"), dtype, free_bytes=None, fp8_product=gemm.product if fp8 else None
                )
                entry = workload.entry(module) if workload.entry is not None else module
                with torch.inference_mode():
                    out = torch.cat(
                        [
                            entry(*workload.make_batch(chunk, torch.device("cpu"), dtype)).to(
                                "cpu", torch.float64
                            )
                            for chunk in (
                                list(range(i, min(i + ACCURACY_BATCH, workload.size)))
                                for i in range(0, workload.size, ACCURACY_BATCH)
                            )
                        ]
                    )
            score = workload.score(out, reference, args.dtype)
            figures = {
                "value": score["value"],
                "main_token_agreement": score["main_token_agreement"],
                "cosine": min(score["logit_cosine_min"], score["mtp_logit_cosine_min"]),
                "cosine_mean": score["logit_cosine_mean"],
                "logit_max_rel_error": score["logit_max_rel_error"],
            }
            for key, value in figures.items():
                results[label][key].append(value)
            print(
                f"  {label:28s} agreement {figures['value']:.3f} main {figures['main_token_agreement']:.3f} "
                f"cosine_min {figures['cosine']:.4f} mean {figures['cosine_mean']:.4f} rel_err {figures['logit_max_rel_error']:.3f} "
                f"({time.perf_counter() - start:.1f}s wall, {time.process_time() - cpu:.1f}s CPU)"
            )
    print(f"\nover {args.challenges} challenges ({args.mode}, {args.dtype}): median [min, max]")
    for label, figures in results.items():
        parts = [
            f"{key} {statistics.median(values):.4f} [{min(values):.4f}, {max(values):.4f}]"
            for key, values in figures.items()
        ]
        print(f"  {label:28s} " + "; ".join(parts))
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
