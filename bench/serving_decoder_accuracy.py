"""The served accuracy of the seeded decoder per dtype: free-running greedy agreement against the
teacher-forced agreement with the near-tie rule (runners/served_outputs.py), over fresh challenges.

Serves every prompt of the workload as LoadGen's accuracy mode does (the continuous-batching SUT over
the serving engine, on this CPU), then scores what was served against the float64 model.

    python bench/serving_decoder_accuracy.py [--challenges 5] [--dtypes float32,bfloat16,float16] [--quick]

A dtype suffixed ``+fp8`` (``bfloat16+fp8``) is a dishonest device: its weights rounded through
float8 e4m3 with a per-tensor scale, then served in the named dtype.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import mlperf_loadgen as lg
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runners.model_suite import DTYPES, default_models  # noqa: E402
from runners.model_suite.workloads import workload_for  # noqa: E402
from runners.models import ModelSpec, load_model  # noqa: E402
from runners.models.reference import float64_copy  # noqa: E402
from runners.served_outputs import (  # noqa: E402
    FREE_RUNNING_METRIC,
    decoder_reference_tokens,
    serving_accuracy_score,
    teacher_forced_logits,
)
from runners.serving.sut import ContinuousDecoderSUT  # noqa: E402
from runners.serving_engine import ServingEngine  # noqa: E402


class _Sample:
    def __init__(self, index: int) -> None:
        self.id, self.index = index, index


def served(
    loaded, workload, dtype: torch.dtype, output_tokens: int, max_batch: int, fp8: bool = False
) -> torch.Tensor:
    module = loaded.place(torch.device("cpu"), dtype, free_bytes=None)
    if fp8:  # a dishonest "bfloat16" device: weights rounded through float8 e4m3 (per-tensor scale)
        with torch.no_grad():
            for p in module.parameters():
                scale = p.abs().amax().clamp(min=1e-12) / 448.0
                p.copy_(((p / scale).to(torch.float8_e4m3fn).to(dtype)) * scale)
    inputs = workload.make_batch(range(workload.size), torch.device("cpu"), dtype)
    engine = ServingEngine(module, module, inputs, decoder=True, output_tokens=output_tokens)
    original = lg.QuerySamplesComplete, lg.FirstTokenComplete
    lg.QuerySamplesComplete = lg.FirstTokenComplete = lambda *_a, **_k: None
    sut = ContinuousDecoderSUT(engine, max_batch=max_batch, record=True)
    try:
        sut._serve([_Sample(i) for i in range(workload.size)])
    finally:
        sut.close()
        lg.QuerySamplesComplete, lg.FirstTokenComplete = original
    return torch.stack([sut.outputs[i] for i in range(workload.size)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--challenges", type=int, default=5)
    parser.add_argument("--dtypes", default="float32,bfloat16,float16")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output-tokens", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    entry = next(m for m in default_models() if m["architecture"] == "llama-decoder")
    loaded = load_model(ModelSpec.from_dict(entry))
    f64 = float64_copy(loaded.module, type(loaded.module), loaded.config)
    vocab = int(loaded.config.vocab_size)
    figures: dict[str, dict[str, list[float]]] = {}
    for n in range(args.challenges):
        challenge = os.urandom(32).hex()
        workload = workload_for(loaded, challenge, quick=args.quick)
        prompts = workload.make_batch(range(workload.size), torch.device("cpu"), torch.float64)[0]
        reference = decoder_reference_tokens(f64, prompts, args.output_tokens)

        def forced(index: int, tokens: torch.Tensor, prompts=prompts) -> torch.Tensor:
            return teacher_forced_logits(f64, prompts[index : index + 1], tokens, vocab)

        for label in args.dtypes.split(","):
            name = label.removesuffix("+fp8")
            outputs = served(
                loaded, workload, DTYPES[name], args.output_tokens, 8, fp8=label.endswith("+fp8")
            )
            score = serving_accuracy_score(
                decoder=True,
                outputs=outputs,
                reference=reference,
                dtype_name=name,
                score=workload.score,
                teacher_forced=forced,
            )
            strict = float(  # teacher-forced, exact first choice (no near-tie allowance): information
                torch.stack([forced(i, outputs[i]).argmax(-1) == outputs[i] for i in range(outputs.shape[0])])
                .double()
                .mean()
            )
            row = figures.setdefault(label, {"free": [], "forced": [], "strict": []})
            row["free"].append(score[FREE_RUNNING_METRIC])
            row["forced"].append(score["value"])
            row["strict"].append(strict)
            print(
                f"challenge {n} {label:<13} free-running {score[FREE_RUNNING_METRIC]:.4f}  "
                f"teacher-forced {score['value']:.4f} (exact first choice {strict:.4f}; "
                f"{score['generated_tokens']} tokens)",
                flush=True,
            )
    print(
        f"{loaded.spec.name}, {args.output_tokens} output tokens, quick={args.quick}, load {os.getloadavg()}"
    )
    for name, row in figures.items():
        print(
            f"{name:<13} free-running min {min(row['free']):.4f} median {statistics.median(row['free']):.4f}"
            f" | teacher-forced min {min(row['forced']):.4f} median {statistics.median(row['forced']):.4f}"
            f" max {max(row['forced']):.4f} | exact first choice min {min(row['strict']):.4f}"
            f" max {max(row['strict']):.4f}"
        )


if __name__ == "__main__":
    main()
