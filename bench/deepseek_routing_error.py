"""How far an honest low-precision run of the tiny DeepSeek-V3-style decoder moves its routing decisions
from the float64 reference's: the evidence for the serving suite's routing tie margin
(runners/served_outputs.py ROUTING_TIE_EPS).

Routing keeps an expert (and a group) by comparing selection scores (sigmoid + bias). Where the float64
reference keeps candidate a over candidate b with a gap s_a - s_b, a device flips that decision when its
own s_a - s_b changes sign. Per challenge and dtype this serves ``--tokens`` greedy tokens per prompt
(the module placed in the dtype), feeds the prompt and the served tokens through the placed module and
through the float64 reference (teacher-forced, the positions the serving suite judges), and at every
judged position and main MoE layer takes the float64 decision's boundary pairs (last kept vs first
dropped group, last kept vs first dropped expert) and the error of their difference in the device run,
in units of the dtype's machine epsilon (torch.finfo(dtype).eps). Prints the median, 99th percentile and
largest error, and for the largest error the float64 gap it would have to exceed.

    python bench/deepseek_routing_error.py [--challenges 4] [--dtypes bfloat16,float16,float32] [--tokens 8]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import runners.models.deepseek as device_code  # noqa: E402
import runners.models.reference as reference_code  # noqa: E402
from runners.model_suite import DTYPES, deepseek_tiny_model  # noqa: E402
from runners.model_suite.workloads import workload_for  # noqa: E402
from runners.models import ModelSpec, load_model  # noqa: E402
from runners.models.reference import DeepseekReference  # noqa: E402


def captured_choices(function, call):
    """The selection scores (T, E) (score + bias, float64) of every route() call ``call`` makes."""
    seen: list[torch.Tensor] = []
    original = function.__globals__["route"]

    def spy(logits, bias, **options):
        scores = logits.softmax(-1) if options["score"] == "softmax" else logits.sigmoid()
        seen.append((scores + bias).double())
        return original(logits, bias, **options)

    function.__globals__["route"] = spy
    try:
        call()
    finally:
        function.__globals__["route"] = original
    return seen


def pair_errors(exact: torch.Tensor, device: torch.Tensor, k: int, groups: int, keep: int) -> torch.Tensor:
    """Per token (T,), the largest error of the device's difference over the float64 boundary pairs."""
    tokens, experts = exact.shape
    per = experts // groups
    rows = torch.arange(tokens)

    def group_scores(choice):
        return choice.view(tokens, groups, per).topk(2, dim=-1).values.sum(-1)

    g64, gdev = group_scores(exact), group_scores(device)
    order = g64.argsort(-1, descending=True)
    a, b = order[:, keep - 1], order[:, keep]
    err = ((g64[rows, a] - g64[rows, b]) - (gdev[rows, a] - gdev[rows, b])).abs()
    dropped = torch.ones(tokens, groups, dtype=torch.bool).scatter(1, order[:, :keep], False)
    masked = exact.masked_fill(dropped.repeat_interleave(per, 1), float("-inf"))
    order = masked.argsort(-1, descending=True)
    a, b = order[:, k - 1], order[:, k]
    expert = ((exact[rows, a] - exact[rows, b]) - (device[rows, a] - device[rows, b])).abs()
    return torch.maximum(err, expert)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--challenges", type=int, default=4)
    parser.add_argument("--dtypes", default="bfloat16,float16,float32")
    parser.add_argument("--tokens", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_model(ModelSpec.from_dict(deepseek_tiny_model(Path(tmp))))
    c = loaded.config
    reference = DeepseekReference(loaded.reference_state(), c)
    errors: dict[str, list[list[torch.Tensor]]] = {d: [] for d in args.dtypes.split(",")}
    for index in range(args.challenges):
        challenge = hashlib.sha256(f"deepseek routing error {index}".encode()).hexdigest()
        workload = workload_for(loaded, challenge, quick=True)
        prompts = workload.make_batch(range(workload.size), torch.device("cpu"), torch.float64)[0]
        for name in errors:
            module = loaded.place(torch.device("cpu"), DTYPES[name], free_bytes=None)
            with torch.inference_mode():
                served = module.generate(prompts, args.tokens)
                ids = torch.cat([prompts, served[:, :-1]], dim=1)
                dev = captured_choices(device_code.Moe.route, lambda m=module, i=ids: m(i))
                exact = captured_choices(
                    reference_code.DeepseekReference.block, lambda i=ids: reference.main_logits(i)
                )
            layers = []
            for d, e in zip(dev, exact, strict=True):
                err = pair_errors(e, d, c.num_experts_per_tok, c.n_group, c.topk_group)
                err = err.view(ids.shape)[:, prompts.shape[1] - 1 :]  # the judged positions
                layers.append(err.reshape(-1) / torch.finfo(DTYPES[name]).eps)
            errors[name].append(layers)
        print(f"challenge {index} done", flush=True)
    for name, runs in errors.items():
        # The first MoE layer's router input has passed no routing decision (dense layers before it):
        # its error is the dtype's rounding alone; later layers add the flips of earlier decisions.
        for label, v in (
            ("first MoE layer", torch.cat([r[0] for r in runs])),
            ("every MoE layer", torch.cat([torch.cat(r) for r in runs])),
        ):
            q = torch.quantile(v, torch.tensor([0.5, 0.9, 0.99], dtype=torch.float64))
            print(
                f"{name} {label}: boundary-pair error in eps({name}) over {v.numel()} positions: "
                f"median {float(q[0]):.2f}, p90 {float(q[1]):.2f}, p99 {float(q[2]):.2f}, "
                f"largest {float(v.max()):.2f}"
            )


if __name__ == "__main__":
    main()
