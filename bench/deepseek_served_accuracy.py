"""The tiny DeepSeek-V3-style decoder's served accuracy on this CPU, per dtype, over fresh challenges, and
where its disagreements sit: at positions whose float64 routing decision is nearly tied.

The serving suite judges a decoder's served tokens teacher-forced against the float64 reference with
the tie rule of runners/served_outputs.py (a token agrees where the reference ranks it first or within
one machine epsilon of the dtype times the largest |logit|). The prompts are the model suite's
(``workload_for``: drawn with a routing and a top-1 logit margin at every prompt position), but the
served tokens after them are the device's own and carry no such conditioning. Per challenge this
prints, for each dtype, the judged agreement over ``--tokens`` greedy tokens per prompt (the module
placed in the dtype, its KV cache, as ``ServingEngine.static_*`` serves), the share of judged positions
whose float64 routing boundary gap (catalog ``boundary_gaps``, smallest over the MoE layers, at the
judged position) is below the model suite's ROUTING_MARGIN (2^-6), and the agreement on the positions
that clear it, and the agreement the serving suite judges under the AIA 1.3 draft (ROUTING_TIE_RULE:
the positions whose routing gap is at least ``routing_tie_margin`` of the dtype); then each
disagreement's routing gap and top-1 logit gap.

    python bench/deepseek_served_accuracy.py [--challenges 6] [--dtypes bfloat16,float16] [--tokens 8]
    [--fp8] (the FP8 checkpoint, runners/models/fp8.py, instead of the float32 one)
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runners.model_suite import DTYPES, deepseek_tiny_fp8_model, deepseek_tiny_model  # noqa: E402
from runners.model_suite.workloads import ROUTING_MARGIN, workload_for  # noqa: E402
from runners.models import ModelSpec, load_model  # noqa: E402
from runners.models.reference import DeepseekReference, top1_logit_gap  # noqa: E402
from runners.served_outputs import routing_tie_margin  # noqa: E402


def served(module, prompts: torch.Tensor, tokens: int) -> torch.Tensor:
    with torch.inference_mode():
        return module.generate(prompts, tokens)


def judged(reference: DeepseekReference, prompts: torch.Tensor, tokens: torch.Tensor):
    """(teacher-forced logits at the judged positions (B, T, V), routing gap there (B, T))."""
    length = prompts.shape[1]
    ids = torch.cat([prompts, tokens[:, :-1]], dim=1)
    gaps: list[torch.Tensor] = []
    with torch.inference_mode():
        x = reference.w["model.embed_tokens.weight"][ids]
        for i in range(reference.c.num_hidden_layers):
            x = reference.block(x, i, None, gaps)
        logits = reference.norm(x, "model.norm.weight") @ reference.w["lm_head.weight"].t()
    gap = torch.stack(gaps).amin(0) if gaps else torch.full(ids.shape, float("inf"), dtype=torch.float64)
    return logits[:, length - 1 :], gap[:, length - 1 :]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--challenges", type=int, default=6)
    parser.add_argument("--dtypes", default="bfloat16,float16")
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="the quick workload (4 x 12 prompts)")
    parser.add_argument("--fp8", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        entry = (deepseek_tiny_fp8_model if args.fp8 else deepseek_tiny_model)(Path(tmp))
        loaded = load_model(ModelSpec.from_dict(entry))
    reference = DeepseekReference(loaded.reference_state(), loaded.config)
    placed = {
        d: loaded.place(torch.device("cpu"), DTYPES[d], free_bytes=None) for d in args.dtypes.split(",")
    }
    summary: dict[str, list[float]] = {d: [] for d in placed}
    judged_apart: dict[str, list[float]] = {d: [] for d in placed}
    for index in range(args.challenges):
        challenge = hashlib.sha256(f"deepseek served {index}".encode()).hexdigest()
        start = time.perf_counter()
        workload = workload_for(loaded, challenge, quick=args.quick)
        prompts = workload.make_batch(range(workload.size), torch.device("cpu"), torch.float64)[0]
        for name, module in placed.items():
            tokens = served(module, prompts, args.tokens)
            logits, gap = judged(reference, prompts, tokens)
            eps = torch.finfo(DTYPES[name]).eps
            chosen = logits.gather(-1, tokens[..., None])[..., 0]
            best, scale = logits.max(-1).values, logits.abs().amax(-1)
            agree = chosen >= best - eps * scale
            clear = gap >= ROUTING_MARGIN
            value = float(agree.double().mean())
            summary[name].append(value)
            on_clear = float(agree[clear].double().mean()) if bool(clear.any()) else float("nan")
            decided = gap >= routing_tie_margin(DTYPES[name])  # the serving suite's rule (AIA 1.3 draft)
            on_decided = float(agree[decided].double().mean()) if bool(decided.any()) else 0.0
            judged_apart[name].append(on_decided)
            print(
                f"challenge {index} {name}: agreement {value:.4f}, routing-tied positions "
                f"{float((~clear).double().mean()):.3f}, agreement where routing clears 2^-6 {on_clear:.4f} "
                f"({int(clear.sum())} positions); decided_routing_token_agreement {on_decided:.4f} "
                f"({int(decided.sum())} of {decided.numel()} positions decided at "
                f"{routing_tie_margin(DTYPES[name]):.3g})"
            )
            top1 = top1_logit_gap(logits)
            for b, t in (~agree).nonzero().tolist():
                print(
                    f"    miss row {b} token {t}: routing gap {float(gap[b, t]):.4f}, "
                    f"top-1 logit gap {float(top1[b, t]):.4f}"
                )
        print(f"  ({time.perf_counter() - start:.1f} s)")
    for name, values in summary.items():
        print(f"{name}: min {min(values):.4f} mean {sum(values) / len(values):.4f} over {len(values)}")
        apart = judged_apart[name]
        print(f"{name} decided routing: min {min(apart):.4f} mean {sum(apart) / len(apart):.4f}")


if __name__ == "__main__":
    main()
