"""Mixture-of-experts: routing (gating), the grouped GEMM over experts, and the expert layer with its
shared expert, at DeepSeek-V3 / DeepSeek-V2-Lite / Mixtral / Qwen-MoE configurations.

DeepSeek-V3 (config.json of deepseek-ai/DeepSeek-V3): hidden 7168, 256 routed experts of
intermediate 2048, top-8, 8 expert groups of which 4 are kept ("group-limited routing"), sigmoid
scores with a per-expert bias that steers selection only (auxiliary-loss-free load balancing), the
selected weights normalised and scaled by 2.5, one shared expert. DeepSeek-V2-Lite: hidden 2048,
64 experts of 1408, top-6, softmax scores, no group limit, 2 shared experts. Routing is cheap, so
its cases run the real expert counts; the expert GEMMs keep the real top-k and structure and trim
hidden and intermediate sizes so the float64 reference fits the suite's one-minute budget.

Routing runs in float32 whatever the activation dtype (Hugging Face transformers'
DeepseekV3TopkRouter casts the router logits to float32; vLLM's fused routing kernels compute in
float32), so the selected experts are exact: the catalog draws logits on a grid (multiples of 1/32,
exact in bfloat16 and float16) and redraws a token whose two candidates at a selection boundary are
closer than 2^-14, far above float32's rounding, so any correct float32 router selects exactly what
the float64 reference selects. The documented exception is a token whose scores are all equal
(edge case `all_equal` without a bias): every choice of k experts is correct, and the judge allows,
for each expert of that token, any weight between 0 and the tied weight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from runners.catalog.base import (
    FLOAT_DTYPES,
    HIGHAM,
    Case,
    Inputs,
    Kernel,
    Span,
    Tolerance,
    abs32,
    accumulation_bound,
    accumulation_tolerance,
    element_size,
    gamma,
    randn,
    subnormal_ulp,
    torch_dtype,
    unit_roundoff,
)
from runners.catalog.quantized import Weight, project

U32 = 2.0**-24
# Logits are multiples of 1/32 in [-4, 4): 256 distinct values, exact in bfloat16 and float16.
LOGIT_STEP = 1.0 / 32
# Two candidates at a selection boundary are at least this far apart (else the token is redrawn).
BOUNDARY_MARGIN = 2.0**-14
# A float32 exp / sigmoid is within 4 ulps (CUDA C Programming Guide, "Mathematical Functions": expf
# 2 ulps, division correctly rounded; glibc expf < 1 ulp), as in runners/catalog/elementwise.py.
FLOAT32_TRANSCENDENTAL_ULPS = 4.0
# |silu'(x)| <= 1.0998 for every real x (its maximum, at x ~ 2.3994).
SILU_LIPSCHITZ = 1.1


# --- routing -----------------------------------------------------------------------------------


def route(
    logits: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    score: str,
    k: int,
    groups: int,
    topk_groups: int,
    normalize: bool,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeek-style routing in the logits' dtype: (indices (T, k), weights (T, k)).

    Scores are softmax or sigmoid of the logits; the bias (auxiliary-loss-free balancing) is added
    for choosing experts only, never to the weights; with groups > 1 each group is scored (its best
    score, or the sum of its best two when a bias is present, as DeepSeek-V3 does) and only the best
    `topk_groups` groups' experts may be chosen."""
    tokens, experts = logits.shape
    scores = logits.softmax(dim=-1) if score == "softmax" else logits.sigmoid()
    choice = scores if bias is None else scores + bias
    if groups > 1:
        grouped = choice.view(tokens, groups, experts // groups)
        group_scores = grouped.amax(dim=-1) if bias is None else grouped.topk(2, dim=-1).values.sum(dim=-1)
        kept = group_scores.topk(topk_groups, dim=-1).indices
        dropped = torch.ones(tokens, groups, dtype=torch.bool, device=choice.device).scatter(1, kept, False)
        choice = choice.masked_fill(dropped.repeat_interleave(experts // groups, dim=1), float("-inf"))
    indices = choice.topk(k, dim=-1).indices
    weights = scores.gather(1, indices)
    if normalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return indices, weights * scale


def _routing_options(inputs: Inputs) -> dict[str, Any]:
    return {key: inputs[key] for key in ("score", "k", "groups", "topk_groups", "normalize", "scale")}


def boundary_gaps(choice: torch.Tensor, k: int, groups: int, topk_groups: int, biased: bool) -> torch.Tensor:
    """Per token, the smallest gap between the last kept and the first dropped candidate, at the group
    boundary and at the expert boundary (float64)."""
    tokens, experts = choice.shape
    gaps = torch.full((tokens,), math.inf, dtype=torch.float64)
    if groups > 1:
        grouped = choice.view(tokens, groups, experts // groups)
        group_scores = grouped.topk(2, dim=-1).values.sum(dim=-1) if biased else grouped.amax(dim=-1)
        ordered = group_scores.sort(dim=-1, descending=True).values
        gaps = torch.minimum(gaps, ordered[:, topk_groups - 1] - ordered[:, topk_groups])
        kept = group_scores.topk(topk_groups, dim=-1).indices
        dropped = torch.ones(tokens, groups, dtype=torch.bool).scatter(1, kept, False)
        choice = choice.masked_fill(dropped.repeat_interleave(experts // groups, dim=1), -math.inf)
    if k < experts:
        ordered = choice.sort(dim=-1, descending=True).values
        gaps = torch.minimum(gaps, ordered[:, k - 1] - ordered[:, k])
    return gaps


class MoeGatingKernel(Kernel):
    """The router: logits (T, E) and an optional float32 bias in, the dense combine weights (T, E) out
    (zero for experts not chosen), in the activation dtype."""

    name = "moe_gating"
    description = (
        "MoE routing: softmax or sigmoid scores, top-k with group-limited routing, bias-corrected "
        "(auxiliary-loss-free) selection, weight normalisation; dense (T, E) combine weights"
    )
    dtypes = FLOAT_DTYPES
    cases = (
        # DeepSeek-V3: 256 experts, 8 groups keep 4, top-8, sigmoid + bias, normalised, x2.5.
        Case(
            "deepseek_v3_sigmoid_bias_group_limited",
            {"T": Span(48, 160), "E": 256, "k": 8, "groups": 8, "topk_groups": 4},
            options={"score": "sigmoid", "bias": True, "normalize": True, "scale": 2.5},
        ),
        # DeepSeek-V2 (236B): 160 experts, 8 groups keep 3 (group score = best expert), top-6, softmax.
        Case(
            "deepseek_v2_softmax_group_limited",
            {"T": Span(32, 96), "E": 160, "k": 6, "groups": 8, "topk_groups": 3},
            options={"score": "softmax", "bias": False, "normalize": False, "scale": 16.0},
        ),
        # DeepSeek-V2-Lite: 64 experts, top-6, softmax, no group limit, weights not normalised.
        Case(
            "deepseek_v2_lite_softmax_top6",
            {"T": Span(32, 128), "E": 64, "k": 6, "groups": 1, "topk_groups": 1},
            options={"score": "softmax", "bias": False, "normalize": False, "scale": 1.0},
        ),
        # Mixtral-8x7B: top-2 of 8, the two softmax weights renormalised.
        Case(
            "mixtral_softmax_top2_renormalised",
            {"T": Span(32, 128), "E": 8, "k": 2, "groups": 1, "topk_groups": 1},
            options={"score": "softmax", "bias": False, "normalize": True, "scale": 1.0},
        ),
        # Decode: one new token per sequence of a small batch, the V3 router.
        Case(
            "deepseek_v3_decode_batch",
            {"T": Span(1, 8), "E": 256, "k": 8, "groups": 8, "topk_groups": 4},
            options={"score": "sigmoid", "bias": True, "normalize": True, "scale": 2.5},
        ),
        # Equal logits inside the chosen set and inside the dropped set (never across the boundary):
        # the chosen experts are still unique and tied experts must get equal weights.
        Case(
            "ties_inside_and_outside_selection",
            {"T": Span(16, 48), "E": 64, "k": 6, "groups": 8, "topk_groups": 4},
            edge="ties",
            options={"score": "softmax", "bias": False, "normalize": True, "scale": 1.0},
        ),
        # Every score equal: the bias alone decides (DeepSeek-V3 at initialisation of a new expert set).
        Case(
            "all_equal_scores_bias_decides",
            {"T": Span(8, 24), "E": 256, "k": 8, "groups": 8, "topk_groups": 4},
            edge="all_equal",
            options={"score": "sigmoid", "bias": True, "normalize": True, "scale": 2.5},
        ),
        # Every score equal and no bias: any k experts are a correct choice (the documented tie).
        Case(
            "all_equal_scores_no_bias",
            {"T": Span(8, 24), "E": 64, "k": 6, "groups": 1, "topk_groups": 1},
            edge="all_equal",
            options={"score": "softmax", "bias": False, "normalize": True, "scale": 1.0},
        ),
        Case(
            "odd_tokens_and_experts",
            {
                "T": Span(17, 45, odd=True),
                "E": Span(15, 63, odd=True),
                "k": Span(3, 7, odd=True),
                "groups": 1,
                "topk_groups": 1,
            },
            edge="odd_size",
            options={"score": "sigmoid", "bias": True, "normalize": True, "scale": 1.0},
        ),
        # Capacity extremes: top-1 of many (Switch Transformer routing, one expert per token) ...
        Case(
            "top1_of_many_renormalised",
            {"T": Span(32, 96), "E": 64, "k": 1, "groups": 1, "topk_groups": 1},
            options={"score": "softmax", "bias": False, "normalize": True, "scale": 1.0},
        ),
        # ... and every expert chosen (k = E): the weights are the scores themselves.
        Case(
            "every_expert_chosen",
            {"T": Span(16, 48), "E": 8, "k": 8, "groups": 1, "topk_groups": 1},
            options={"score": "softmax", "bias": False, "normalize": False, "scale": 1.0},
        ),
        # The group limit at its extreme: one group of eight kept, so all k experts come from it.
        Case(
            "single_group_kept",
            {"T": Span(32, 96), "E": 64, "k": 4, "groups": 8, "topk_groups": 1},
            options={"score": "sigmoid", "bias": True, "normalize": True, "scale": 2.5},
        ),
        # The V3 router (sigmoid scores, bias, group limit) with tied logits inside the chosen set and
        # inside the dropped set: tied scores get equal weights whatever the bias does to selection.
        Case(
            "sigmoid_bias_ties_group_limited",
            {"T": Span(16, 48), "E": 256, "k": 8, "groups": 8, "topk_groups": 4},
            edge="ties",
            options={"score": "sigmoid", "bias": True, "normalize": True, "scale": 2.5},
        ),
        Case(
            "empty_tokens",
            {"T": 0, "E": 64, "k": 6, "groups": 8, "topk_groups": 4},
            edge="empty",
            options={"score": "sigmoid", "bias": True, "normalize": True, "scale": 2.5},
        ),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        tokens, experts, k = case["T"], case["E"], case["k"]
        groups, topk_groups = case["groups"], case["topk_groups"]
        biased = bool(case.options.get("bias"))
        # The bias on its own grid (multiples of 2^-8 in [-1/8, 1/8)), distinct per expert.
        # The bias: distinct multiples of 2^-10 around 0 (|b| <= 1/8), one per expert.
        bias = _draw_bias(experts, g) if biased else None
        options = {
            "score": case.options["score"],
            "k": k,
            "groups": groups,
            "topk_groups": topk_groups,
            "normalize": bool(case.options["normalize"]),
            "scale": float(case.options["scale"]),
        }
        if case.edge == "all_equal":
            logits = torch.zeros(tokens, experts, dtype=torch.float64)
            for _attempt in range(64):  # the bias alone decides: its boundaries must be clear too
                if bias is None or tokens == 0:
                    break
                choice = logits[:1].sigmoid() + bias.to(torch.float64)
                if boundary_gaps(choice, k, groups, topk_groups, True)[0] >= BOUNDARY_MARGIN:
                    break
                bias = _draw_bias(experts, g)
            return {"logits": logits.to(torch_dtype(dtype)), "bias": bias, **options}
        rows = []
        for _ in range(tokens):
            for _attempt in range(64):
                row = (torch.randperm(256, generator=g)[:experts] - 128).to(torch.float64) * LOGIT_STEP
                if case.edge == "ties":
                    row = _tie_within_sides(row, k, groups, topk_groups, g)
                scores = row.softmax(dim=-1) if options["score"] == "softmax" else row.sigmoid()
                choice = scores if bias is None else scores + bias.to(torch.float64)
                gap = boundary_gaps(choice[None], k, groups, topk_groups, biased)[0]
                if gap >= BOUNDARY_MARGIN * max(float(choice.abs().max()), 1e-300):
                    break
            rows.append(row)
        logits = torch.stack(rows) if rows else torch.zeros(0, experts, dtype=torch.float64)
        return {"logits": logits.to(torch_dtype(dtype)), "bias": bias, **options}

    def run(self, inputs: Inputs) -> torch.Tensor:
        logits, bias = inputs["logits"], inputs["bias"]
        indices, weights = route(
            logits.float(), None if bias is None else bias.float(), **_routing_options(inputs)
        )
        dense = torch.zeros(logits.shape, dtype=torch.float32, device=logits.device)
        return dense.scatter(1, indices, weights).to(logits.dtype)

    def reference(self, inputs: Inputs) -> torch.Tensor:
        logits = inputs["logits"]
        indices, weights = route(logits, inputs["bias"], **_routing_options(inputs))
        dense = torch.zeros_like(logits).scatter(1, indices, weights)
        tied = self._fully_tied(inputs)
        if bool(tied.any()):  # any k of the E experts: the middle of [0, tied weight]
            dense[tied] = self._tied_weight(inputs) / 2
        return dense

    @staticmethod
    def _fully_tied(inputs: Inputs) -> torch.Tensor:
        logits = inputs["logits"]
        if inputs["bias"] is not None or logits.shape[0] == 0 or inputs["k"] >= logits.shape[1]:
            return torch.zeros(logits.shape[0], dtype=torch.bool)
        return (logits == logits[:, :1]).all(dim=-1)

    @staticmethod
    def _tied_weight(inputs: Inputs) -> float:
        experts, k = inputs["logits"].shape[1], inputs["k"]
        share = 1.0 / k if inputs["normalize"] else (1.0 / experts if inputs["score"] == "softmax" else 0.5)
        return share * float(inputs["scale"])

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor | None:
        tied = self._fully_tied(inputs)
        if not bool(tied.any()):
            return None
        bound = torch.zeros(inputs["logits"].shape, dtype=torch.float64)
        bound[tied] = self._tied_weight(inputs) / 2
        return bound

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        u = unit_roundoff(dtype)
        experts, k = case["E"], case["k"]
        # First order, in float32: the scores (a 4-ulp exp or sigmoid, a softmax denominator of E terms
        # and its division), the normalisation (a k-term sum and a division) and the scale.
        ulps = int(FLOAT32_TRANSCENDENTAL_ULPS) * 2 + experts + 1 + k + 1 + 1
        return Tolerance(
            subnormal_ulp(dtype),
            2 * u / (1 - u) + gamma(ulps, U32),
            f"selection exact (grid logits, boundary gaps >= 2^-14 >> float32 rounding; all-equal "
            f"scores without bias: any k experts, each weight in [0, tied weight]); weights: "
            f"gamma_{ulps} of float32 (4-ulp expf/sigmoid x2, E = {experts}-term softmax sum, k-term "
            f"normalisation, two divisions, the scale) + 2u/(1 - u) for rounding to {dtype} "
            f"(u = 2^-{round(-math.log2(u))}) + one subnormal spacing: {HIGHAM}, s2.2 and s3.1",
        )

    def flops(self, case: Case) -> int:
        return 6 * case["T"] * case["E"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        return element_size(dtype) * 2 * case["T"] * case["E"] + 4 * case["E"]


def _draw_bias(experts: int, g: torch.Generator) -> torch.Tensor:
    return (torch.randperm(experts, generator=g) - experts // 2).to(torch.float32) / 1024.0


def _tie_within_sides(
    row: torch.Tensor, k: int, groups: int, topk_groups: int, g: torch.Generator
) -> torch.Tensor:
    """Copies values onto their neighbours in rank, away from the top-k boundary: the best two logits
    become equal, and so do a few pairs well below the boundary (the boundary itself stays clear)."""
    order = row.argsort(descending=True)
    row = row.clone()
    row[order[1]] = row[order[0]]  # a tie inside the chosen experts
    tail = order[k + 2 :]
    if tail.numel() >= 4:
        picks = torch.randperm(tail.numel() - 1, generator=g)[:3]
        for pick in picks.tolist():
            row[tail[pick + 1]] = row[tail[pick]]  # ties among the dropped experts
    return row


# --- grouped GEMM ------------------------------------------------------------------------------


def _uneven_counts(tokens: int, experts: int, zero_share: float, g: torch.Generator) -> torch.Tensor:
    """How many of `tokens` rows each expert gets: skewed (a few hot experts), with about `zero_share`
    of the experts getting none at all."""
    weights = torch.rand(experts, generator=g) ** 3 + 1e-3
    idle = torch.rand(experts, generator=g) < zero_share
    forced = int(torch.randint(0, experts, (1,), generator=g))
    idle[forced] = True  # at least one idle expert
    if bool(idle.all()) and experts > 1:
        # and at least one busy one: all-zero weights are no distribution (torch.multinomial raises).
        # Only draws that raised before change, so the platform's re-draw of other challenges agrees.
        idle[(forced + 1) % experts] = False
    weights[idle] = 0.0
    if tokens == 0:
        return torch.zeros(experts, dtype=torch.int64)
    return torch.bincount(
        torch.multinomial(weights, tokens, replacement=True, generator=g), minlength=experts
    )


class MoeGroupedGemmKernel(Kernel):
    """Rows already grouped by expert: y[rows of e] = x[rows of e] @ W[e].T, counts per expert given."""

    name = "moe_grouped_gemm"
    description = "grouped GEMM over experts of uneven load (experts with zero rows included)"
    dtypes = FLOAT_DTYPES
    cases = (
        # DeepSeek-V3 gate/up projection shape (hidden 7168 -> 2x2048), trimmed: 256 experts' loads.
        Case(
            "deepseek_v3_up_proj_uneven",
            {"M": Span(128, 256), "E": Span(12, 24, 4), "K": Span(256, 512, 128), "N": Span(128, 192, 64)},
            options={"zero_share": 0.25},
        ),
        # Down projection: K is the expert intermediate (V2-Lite 1408, trimmed).
        Case(
            "deepseek_v2_lite_down_proj",
            {"M": Span(64, 160), "E": Span(8, 16, 4), "K": Span(256, 384, 128), "N": Span(128, 256, 64)},
            options={"zero_share": 0.1},
        ),
        # Decode: 8 rows (one token's top-8) across many experts, most of them idle.
        Case(
            "decode_most_experts_idle",
            {"M": 8, "E": 32, "K": Span(256, 512, 128), "N": Span(128, 192, 64)},
            options={"zero_share": 0.8},
        ),
        Case(
            "odd_sizes",
            {
                "M": Span(61, 99, odd=True),
                "E": Span(5, 11, odd=True),
                "K": Span(97, 161, odd=True),
                "N": Span(45, 79, odd=True),
            },
            edge="odd_size",
            options={"zero_share": 0.3},
        ),
        # Every row to one expert, every other expert idle (zero_share 1: _uneven_counts keeps one busy).
        Case(
            "one_expert_takes_all_rows",
            {"M": Span(64, 128), "E": Span(8, 16, 4), "K": Span(256, 384, 128), "N": Span(64, 128, 64)},
            options={"zero_share": 1.0},
        ),
        Case("no_rows", {"M": 0, "E": 8, "K": 128, "N": 64}, edge="empty", options={"zero_share": 1.0}),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        counts = _uneven_counts(case["M"], case["E"], case.options["zero_share"], g)
        return {
            "x": randn((case["M"], case["K"]), dtype, g),
            "weight": randn((case["E"], case["N"], case["K"]), dtype, g, scale=case["K"] ** -0.5),
            "counts": counts,
        }

    def run(self, inputs: Inputs) -> torch.Tensor:
        x, weight = inputs["x"], inputs["weight"]
        out = torch.empty(x.shape[0], weight.shape[1], dtype=x.dtype, device=x.device)
        start = 0
        for expert, count in enumerate(inputs["counts"].tolist()):
            if count:
                out[start : start + count] = x[start : start + count] @ weight[expert].t()
            start += count
        return out

    @staticmethod
    def _per_group(inputs: Inputs, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        pieces = []
        start = 0
        for expert, count in enumerate(inputs["counts"].tolist()):
            pieces.append(x[start : start + count] @ weight[expert].t())
            start += count
        return torch.cat(pieces) if pieces else x.new_zeros(0, weight.shape[1])

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return self._per_group(inputs, inputs["x"], inputs["weight"])

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return accumulation_tolerance(dtype, case["K"], "|x_e||W_e|^T per expert")

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor:
        magnitude = self._per_group(inputs, abs32(inputs["x"]), abs32(inputs["weight"]))
        return accumulation_bound(magnitude, case["K"], dtype)

    def flops(self, case: Case) -> int:
        return 2 * case["M"] * case["K"] * case["N"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        m, e, k, n = case["M"], case["E"], case["K"], case["N"]
        return element_size(dtype) * (m * k + e * n * k + m * n) + 8 * e


# --- the expert layer ----------------------------------------------------------------------------


def swiglu_expert(x: torch.Tensor, w13: Weight, w2: Weight) -> torch.Tensor:
    """A SwiGLU expert: W2 (silu(x W1^T) * x W3^T), with W1 and W3 stacked as w13 (2I, H); a weight
    kept quantized (an FP8 checkpoint's on the FP8 path) computes its own GEMM (``project``)."""
    gate, up = project(x, w13).chunk(2, dim=-1)
    return project(F.silu(gate) * up, w2)


def _expert_error(
    x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor, u: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """First-order componentwise error bound of one SwiGLU expert computed with float32 accumulation
    and every intermediate rounded to a format of unit roundoff u (gate/up, their product, the output),
    and |output| + that bound. Float64 inputs. Each GEMM accumulates within gamma_k(u32) |A||B| (Higham
    2002 s3.5) and is rounded once, u |exact| (s2.2); silu's Lipschitz constant 1.1 carries the gate's
    error, a 4-ulp float32 silu and its rounding add (8 u32 + u) |silu(gate)|; the down projection
    carries the hidden errors through |W2|."""
    hidden, inter = x.shape[-1], w2.shape[-1]
    exact_gate, exact_up = (x @ w13.t()).chunk(2, dim=-1)
    mag_gate, mag_up = (x.abs() @ w13.abs().t()).chunk(2, dim=-1)
    accumulate = gamma(hidden, U32) + gamma(hidden, 2.0**-53)
    err_gate = accumulate * mag_gate + u * exact_gate.abs()
    err_up = accumulate * mag_up + u * exact_up.abs()
    silu, up = F.silu(exact_gate).abs(), exact_up.abs()
    silu_eval = FLOAT32_TRANSCENDENTAL_ULPS * 2 * U32 + u  # float32 silu, rounded
    err_h = SILU_LIPSCHITZ * err_gate * (up + err_up) + silu * err_up + (silu_eval + u) * silu * up
    hidden_abs = silu * up + err_h
    out = (F.silu(exact_gate) * exact_up) @ w2.t()
    err_out = err_h @ w2.abs().t() + (gamma(inter, U32) + gamma(inter, 2.0**-53)) * (
        hidden_abs @ w2.abs().t()
    )
    err_out = err_out + u * out.abs()
    return err_out, out.abs()


def moe_experts(
    x: torch.Tensor,
    topk_ids: torch.Tensor,
    topk_weights: torch.Tensor,
    w13: Sequence[Weight],
    w2: Sequence[Weight],
    shared_w13: Weight,
    shared_w2: Weight,
) -> torch.Tensor:
    """The MoE layer as a device runs it: tokens (T, H) permuted to their experts (rows grouped by
    expert, stable), one SwiGLU GEMM group per busy expert (``w13[e]`` (2I, H), ``w2[e]`` (H, I);
    idle experts skipped), the outputs weighted and un-permuted back to their tokens in float32, and
    the shared expert added: ``y = sum_j w_j E_j(x) + S(x)`` in x's dtype."""
    tokens, k = topk_ids.shape
    flat = topk_ids.reshape(-1)
    order = flat.argsort(stable=True)  # permutation: rows grouped by expert
    source = order // k
    counts = torch.bincount(flat, minlength=len(w13)).tolist()
    permuted = x[source]
    out = torch.empty_like(permuted)
    start = 0
    for expert, count in enumerate(counts):
        if count:
            rows = slice(start, start + count)
            out[rows] = swiglu_expert(permuted[rows], w13[expert], w2[expert])
        start += count
    wide = torch.promote_types(x.dtype, torch.float32)  # float32 accumulation, float64 kept as such
    routed = out.to(wide) * topk_weights.reshape(-1)[order].to(wide)[:, None]
    y = torch.zeros(tokens, x.shape[1], dtype=wide, device=x.device).index_add_(0, source, routed)
    shared = swiglu_expert(x, shared_w13, shared_w2)
    return (y + shared.to(wide)).to(x.dtype)


def moe_experts_reference(
    x: torch.Tensor,
    topk_ids: torch.Tensor,
    topk_weights: torch.Tensor,
    w13: Sequence[torch.Tensor],
    w2: Sequence[torch.Tensor],
    shared_w13: torch.Tensor,
    shared_w2: torch.Tensor,
) -> torch.Tensor:
    """The same layer written per expert over the tokens that chose it, no permutation (float64 when
    the inputs are)."""
    y = swiglu_expert(x, shared_w13, shared_w2)
    for expert in range(len(w13)):
        token, slot = (topk_ids == expert).nonzero(as_tuple=True)
        if token.numel():
            y.index_add_(  # in place: y is this reference's own tensor
                0, token, topk_weights[token, slot, None] * swiglu_expert(x[token], w13[expert], w2[expert])
            )
    return y


def _experts_arguments(inputs: Inputs) -> tuple[Any, ...]:
    return tuple(
        inputs[key] for key in ("x", "topk_ids", "topk_weights", "w13", "w2", "shared_w13", "shared_w2")
    )


class MoeExpertsKernel(Kernel):
    """Tokens and their routing in, the MoE layer's output out: token permutation to experts, the
    grouped SwiGLU experts (uneven loads, idle experts), the weighted un-permutation back to tokens,
    and the shared expert added (DeepSeek's `y = sum_j w_j E_j(x) + S(x)`)."""

    name = "moe_experts"
    description = (
        "MoE expert layer: permute tokens to experts, grouped SwiGLU GEMMs (uneven loads, zero-token "
        "experts), weighted unpermute, shared expert added"
    )
    dtypes = FLOAT_DTYPES
    cases = (
        Case(
            "deepseek_v3_top8_shared",
            {
                "T": Span(16, 32),
                "E": Span(12, 24, 4),
                "k": 8,
                "H": Span(192, 320, 64),
                "I": Span(64, 128, 64),
                "shared": 1,
            },
            options={"hot": 0.3},
        ),
        Case(
            "deepseek_v2_lite_top6_two_shared",
            {
                "T": Span(16, 32),
                "E": 12,
                "k": 6,
                "H": Span(192, 320, 64),
                "I": Span(64, 128, 64),
                "shared": 2,
            },
            options={"hot": 0.5},
        ),
        # One decode token: k experts busy, every other expert idle.
        Case(
            "decode_one_token",
            {"T": 1, "E": 24, "k": 8, "H": Span(256, 512, 128), "I": Span(64, 128, 64), "shared": 1},
            options={"hot": 1.0},
        ),
        # Every token routed to the same few experts: most experts get zero tokens.
        Case(
            "skewed_most_experts_idle",
            {"T": Span(24, 48), "E": 24, "k": 4, "H": Span(128, 256, 64), "I": 64, "shared": 1},
            options={"hot": 0.0},
        ),
        Case(
            "odd_sizes",
            {
                "T": Span(11, 29, odd=True),
                "E": Span(7, 13, odd=True),
                "k": 3,
                "H": Span(97, 161, odd=True),
                "I": Span(33, 65, odd=True),
                "shared": 1,
            },
            edge="odd_size",
            options={"hot": 0.5},
        ),
        # Every token routed to the same single expert (top-1, hot share 0): one expert holds all rows.
        Case(
            "all_tokens_one_expert",
            {"T": Span(16, 32), "E": 12, "k": 1, "H": Span(128, 256, 64), "I": 64, "shared": 1},
            options={"hot": 0.0},
        ),
        # Every token to every expert (k = E): no idle expert, the combine sums E + 1 terms.
        Case(
            "every_token_every_expert",
            {"T": Span(8, 16), "E": 8, "k": 8, "H": Span(128, 192, 64), "I": 64, "shared": 1},
            options={"hot": 1.0},
        ),
        Case(
            "no_tokens",
            {"T": 0, "E": 8, "k": 2, "H": 64, "I": 32, "shared": 1},
            edge="empty",
            options={"hot": 0.5},
        ),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        tokens, experts, k, hidden, inter = case["T"], case["E"], case["k"], case["H"], case["I"]
        shared_inter = inter * case["shared"]
        # Routing: a "hot" share of the experts gets the traffic (0: only the first k experts).
        hot = max(k, int(round(case.options["hot"] * experts)))
        popular = torch.randperm(experts, generator=g)[:hot]
        ids = (
            torch.stack([popular[torch.randperm(hot, generator=g)[:k]] for _ in range(tokens)])
            if tokens
            else (torch.zeros(0, k, dtype=torch.int64))
        )
        weights = torch.rand(tokens, k, generator=g) * 0.5 + 0.05
        return {
            "x": randn((tokens, hidden), dtype, g),
            "topk_ids": ids,
            "topk_weights": weights.to(torch_dtype(dtype)),
            "w13": randn((experts, 2 * inter, hidden), dtype, g, scale=hidden**-0.5),
            "w2": randn((experts, hidden, inter), dtype, g, scale=inter**-0.5),
            "shared_w13": randn((2 * shared_inter, hidden), dtype, g, scale=hidden**-0.5),
            "shared_w2": randn((hidden, shared_inter), dtype, g, scale=shared_inter**-0.5),
        }

    def run(self, inputs: Inputs) -> torch.Tensor:
        return moe_experts(*_experts_arguments(inputs))

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return moe_experts_reference(*_experts_arguments(inputs))

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor:
        """Each expert's bound (_expert_error) weighted by |w|, plus the weighting's rounding (u), plus
        the k + 1 additions of the combine, each possibly rounded to the dtype (gamma_{k+1})."""
        u = unit_roundoff(dtype)
        x, ids, weights = inputs["x"], inputs["topk_ids"], inputs["topk_weights"]
        err, mag = _expert_error(x, inputs["shared_w13"], inputs["shared_w2"], u)
        for expert in range(inputs["w13"].shape[0]):
            token, slot = (ids == expert).nonzero(as_tuple=True)
            if token.numel():
                e, m = _expert_error(x[token], inputs["w13"][expert], inputs["w2"][expert], u)
                w = weights[token, slot, None].abs()
                err.index_add_(0, token, w * (e + u * (m + e)))  # in place: fresh tensors
                mag.index_add_(0, token, w * (m + e))
        return err + gamma(ids.shape[1] + 1, u) * (mag + err)

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        u = unit_roundoff(dtype)
        return Tolerance(
            subnormal_ulp(dtype),
            2 * u / (1 - u),
            f"first-order componentwise bound of the expert layer: per SwiGLU expert, float32 GEMMs "
            f"(gamma_H, gamma_I) with gate/up, silu(gate)*up and the output each rounded to {dtype} "
            f"(u = 2^-{round(-math.log2(u))}), silu's Lipschitz constant 1.1 on the gate's error, a "
            f"4-ulp float32 silu; weighted by |w| (+u), k + 1 = {case['k'] + 1} additions of the combine "
            f"(gamma_k+1 in {dtype}); + 2u/(1 - u)|ref| for the output's rounding: {HIGHAM}, s2.2, s3.1, s3.5",
        )

    def flops(self, case: Case) -> int:
        t, k, h, i = case["T"], case["k"], case["H"], case["I"]
        return 6 * t * h * i * (k + case["shared"])

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        e, h, i, t = case["E"], case["H"], case["I"], case["T"]
        weights = (e + case["shared"]) * 3 * h * i
        return element_size(dtype) * (weights + 2 * t * h + t * case["k"]) + 8 * t * case["k"]


KERNELS: tuple[Kernel, ...] = (MoeGatingKernel(), MoeGroupedGemmKernel(), MoeExpertsKernel())
