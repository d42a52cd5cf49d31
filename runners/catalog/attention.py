"""Attention: scaled_dot_product_attention (causal, masked, grouped-query), KV-cache decode, RoPE."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from runners.catalog.base import (
    FLOAT32_EPS,
    FLOAT_DTYPES,
    TORCH_TESTING_DEFAULTS,
    Case,
    Derived,
    Inputs,
    Kernel,
    Span,
    Tolerance,
    element_size,
    elementwise_tolerance,
    randn,
    torch_dtype,
)
from runners.catalog.shapes import HEAD_DIM, HEAD_DIMS, LONG_K, LONG_SEQ, QUERY_HEADS, ROPE_THETA, SHORT_SEQ


def attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool
) -> torch.Tensor:
    """Exact attention in float64. Rows with every key masked give zeros.

    Zeros for fully masked rows is PyTorch's contract since 2.5 (`_safe_softmax` in the math
    backend) and what FlashAttention returns; NaN there poisons every later layer of a padded batch.
    """
    groups = q.shape[-3] // k.shape[-3]
    k = k.repeat_interleave(groups, dim=-3)
    v = v.repeat_interleave(groups, dim=-3)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    allowed = torch.ones(scores.shape[-2:], dtype=torch.bool)
    if causal:
        allowed = allowed.tril()
    if mask is not None:
        allowed = allowed & mask
    scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    weights = torch.where(allowed.any(dim=-1, keepdim=True), weights, torch.zeros_like(weights))
    return weights @ v


def attention_tolerance(dtype: str, head_dim: int, keys: int, qk_term: float, v_max: float) -> Tolerance:
    """Error budget of attention, from where rounding enters.

    A logit error d moves an output by at most d * v_max / 2, so the float32 accumulation of
    q.k (4*D*eps32*|q_i k_i| per logit) is scaled by v_max; the P @ V sum adds 4*L*eps32*v_max;
    low-precision kernels (FlashAttention-2) round P to the input dtype before P @ V, which
    costs eps(dtype) * v_max.
    """
    base_atol, base_rtol = TORCH_TESTING_DEFAULTS[dtype]
    logit_error = 4 * head_dim * FLOAT32_EPS * qk_term / math.sqrt(head_dim)
    p_rounding = 0.0 if dtype == "float32" else float(torch.finfo(torch_dtype(dtype)).eps) * v_max
    atol = base_atol + logit_error * v_max + 4 * keys * FLOAT32_EPS * v_max + p_rounding
    return Tolerance(
        atol,
        base_rtol,
        "torch.testing defaults + attention error budget (logit accumulation "
        "x v_max, P@V accumulation, P rounded to dtype as in FlashAttention-2)",
    )


class SdpaKernel(Kernel):
    name = "sdpa"
    description = "torch.nn.functional.scaled_dot_product_attention: causal, masked, grouped-query"
    dtypes = FLOAT_DTYPES
    cases = (
        Case(
            "small_causal",
            {
                "B": Span(1, 3),
                "Hq": Span(2, 6),
                "Hkv": Derived("Hq"),
                "S": Span(48, 80),
                "L": Derived("S"),
                "D": Span(32, 64, 32),
            },
            options={"causal": True},
        ),
        # Grouped-query attention: query heads a multiple (the group) of the KV heads.
        Case(
            "llama_short_prefill_gqa",
            {
                "B": 1,
                "Hkv": Span(4, 8, 4),
                "group": Span(2, 4, 2),
                "Hq": Derived("Hkv * group"),
                "S": SHORT_SEQ,
                "L": Derived("S"),
                "D": HEAD_DIMS,
            },
            options={"causal": True},
        ),
        # Full sequence length and head_dim, a few query heads sharing 1 KV head (the Llama ratio).
        Case(
            "llama_long_prefill_gqa_few_heads",
            {"B": 1, "Hq": Span(3, 4), "Hkv": 1, "S": LONG_SEQ, "L": Derived("S"), "D": HEAD_DIM},
            options={"causal": True},
        ),
        Case(
            "padding_mask",
            {
                "B": Span(1, 3),
                "Hkv": Span(1, 3),
                "group": 2,
                "Hq": Derived("Hkv * group"),
                "S": Span(24, 40),
                "L": Span(40, 56),
                "D": Span(32, 64, 32),
            },
            options={"mask": True},
        ),
        Case(
            "fully_masked_rows",
            {"B": 1, "Hq": Span(2, 6), "Hkv": Derived("Hq"), "S": Span(12, 24), "L": Span(12, 24), "D": 32},
            edge="masked_rows",
            options={"mask": True},
        ),
        Case(
            "odd_sizes",
            {
                "B": 1,
                "Hq": Span(2, 4),
                "Hkv": Derived("Hq"),
                "S": Span(29, 45, odd=True),
                "L": Span(45, 61, odd=True),
                "D": Span(36, 44, 4),
            },
            edge="odd_size",
        ),
        # |q.k| reaches ~1e5 before the 1/sqrt(D) scale: overflows float16 unless computed wider.
        Case(
            "large_logits",
            {"B": 1, "Hq": 2, "Hkv": 2, "S": Span(12, 20), "L": Span(12, 20), "D": 128},
            edge="fp16_overflow",
            options={"qk_scale": 64.0},
            dtypes=("float16", "float32"),
        ),
        Case("empty_seq", {"B": 1, "Hq": 2, "Hkv": 2, "S": 0, "L": Span(8, 24), "D": 32}, edge="empty"),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        scale = case.options.get("qk_scale", 1.0)
        q = randn((case["B"], case["Hq"], case["S"], case["D"]), dtype, g, scale)
        k = randn((case["B"], case["Hkv"], case["L"], case["D"]), dtype, g, scale)
        v = randn((case["B"], case["Hkv"], case["L"], case["D"]), dtype, g)
        mask = None
        if case.options.get("mask"):
            mask = torch.rand((case["S"], case["L"]), generator=g) > 0.3
            if case.edge == "masked_rows":
                mask[::3] = False  # every third query row sees no key at all
        return {"q": q, "k": k, "v": v, "mask": mask, "causal": bool(case.options.get("causal"))}

    def run(self, inputs: Inputs) -> torch.Tensor:
        gqa = inputs["q"].shape[1] != inputs["k"].shape[1]
        return F.scaled_dot_product_attention(
            inputs["q"],
            inputs["k"],
            inputs["v"],
            attn_mask=inputs["mask"],
            is_causal=inputs["causal"],
            enable_gqa=gqa,
        )

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return attention_reference(inputs["q"], inputs["k"], inputs["v"], inputs["mask"], inputs["causal"])

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        scale = case.options.get("qk_scale", 1.0)
        return attention_tolerance(dtype, case["D"], case["L"], qk_term=16.0 * scale * scale, v_max=6.0)

    def flops(self, case: Case) -> int:
        pairs = case["S"] * case["L"] // (2 if case.options.get("causal") else 1)
        return 4 * case["B"] * case["Hq"] * pairs * case["D"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        b, d = case["B"], case["D"]
        q_and_out = 2 * b * case["Hq"] * case["S"] * d
        kv = 2 * b * case["Hkv"] * case["L"] * d
        return element_size(dtype) * (q_and_out + kv)


class DecodeAttentionKernel(Kernel):
    name = "decode_attention"
    description = "one new token attends over the first `length` slots of a preallocated KV cache"
    dtypes = FLOAT_DTYPES
    cases = (
        Case(
            "llama_short_context",
            {
                "B": 1,
                "Hkv": Span(4, 8, 4),
                "group": 4,
                "Hq": Derived("Hkv * group"),
                "length": SHORT_SEQ,
                "cache": Derived("length + 128"),
                "D": HEAD_DIM,
            },
        ),
        Case(
            "llama_long_context",
            {
                "B": 1,
                "Hkv": Span(4, 8, 4),
                "group": 4,
                "Hq": Derived("Hkv * group"),
                "length": LONG_SEQ,
                "cache": Derived("length + 256"),
                "D": HEAD_DIM,
            },
        ),
        Case(
            "batched_odd_context",
            {
                "B": Span(3, 5),
                "Hkv": 2,
                "group": 4,
                "Hq": Derived("Hkv * group"),
                "length": Span(601, 999, odd=True),
                "cache": 1024,
                "D": 64,
            },
            edge="odd_size",
        ),
        Case(
            "long_reduction_context",
            {"B": 1, "Hq": 4, "Hkv": 1, "length": LONG_K, "cache": Derived("length"), "D": HEAD_DIM},
            edge="long_reduction",
        ),
        # Stale NaNs beyond the valid length: a kernel that reads past it is caught.
        Case(
            "nan_in_unused_slots",
            {"B": 1, "Hq": 8, "Hkv": 8, "length": Span(80, 120), "cache": 128, "D": 64},
            edge="nan_inf",
        ),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        q = randn((case["B"], case["Hq"], 1, case["D"]), dtype, g)
        k_cache = randn((case["B"], case["Hkv"], case["cache"], case["D"]), dtype, g)
        v_cache = randn((case["B"], case["Hkv"], case["cache"], case["D"]), dtype, g)
        if case.edge == "nan_inf":
            k_cache[:, :, case["length"] :] = float("nan")
            v_cache[:, :, case["length"] :] = float("nan")
        return {"q": q, "k_cache": k_cache, "v_cache": v_cache, "length": case["length"]}

    def run(self, inputs: Inputs) -> torch.Tensor:
        length = inputs["length"]
        k = inputs["k_cache"][:, :, :length]  # a strided view of the cache, as serving engines pass it
        v = inputs["v_cache"][:, :, :length]
        gqa = inputs["q"].shape[1] != k.shape[1]
        return F.scaled_dot_product_attention(inputs["q"], k, v, enable_gqa=gqa)

    def reference(self, inputs: Inputs) -> torch.Tensor:
        length = inputs["length"]
        return attention_reference(
            inputs["q"],
            inputs["k_cache"][:, :, :length],
            inputs["v_cache"][:, :, :length],
            None,
            causal=False,
        )

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return attention_tolerance(dtype, case["D"], case["length"], qk_term=16.0, v_max=6.0)

    def flops(self, case: Case) -> int:
        return 4 * case["B"] * case["Hq"] * case["length"] * case["D"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        b, d = case["B"], case["D"]
        return element_size(dtype) * (2 * b * case["Hq"] * d + 2 * b * case["Hkv"] * case["length"] * d)


class RotaryEmbeddingKernel(Kernel):
    name = "rope"
    description = "rotary position embedding (rotate-half form) with precomputed cos/sin tables"
    dtypes = FLOAT_DTYPES
    cases = (
        Case(
            "llama_decode_far_position",
            {"B": 1, "S": 1, "H": QUERY_HEADS, "D": HEAD_DIMS, "start": Span(1024, 8191)},
        ),
        Case("llama_short_prefill", {"B": 1, "S": SHORT_SEQ, "H": QUERY_HEADS, "D": HEAD_DIMS, "start": 0}),
        Case(
            "odd_sizes",
            {
                "B": Span(1, 3),
                "S": Span(5, 11, odd=True),
                "H": Span(3, 5, odd=True),
                "D": Span(18, 46, 4),
                "start": Span(1, 31),
            },
            edge="odd_size",
        ),
        # q as a view into a fused QKV projection output, as most model code produces it.
        Case(
            "view_of_fused_qkv",
            {"B": Span(1, 3), "S": Span(8, 24), "H": Span(2, 6), "D": Span(32, 64, 32), "start": 0},
            edge="non_contiguous",
        ),
        Case("empty_seq", {"B": 1, "S": 0, "H": Span(2, 6), "D": 64, "start": 0}, edge="empty"),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        b, s, h, d = case["B"], case["S"], case["H"], case["D"]
        width = 3 * h * d if case.edge == "non_contiguous" else h * d
        x = randn((b, s, width), dtype, g)
        # Tables are computed once in float64 and rounded to dtype, as model code caches them;
        # the kernel under test is the rotation, not the angle computation.
        positions = torch.arange(case["start"], case["start"] + s, dtype=torch.float64)
        inv_freq = ROPE_THETA ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
        angles = torch.outer(positions, inv_freq).repeat(1, 2)
        return {
            "x": x,
            "cos": angles.cos().to(torch_dtype(dtype)),
            "sin": angles.sin().to(torch_dtype(dtype)),
            "heads": h,
        }

    def arrange(self, inputs: Inputs, case: Case) -> Inputs:
        x = inputs["x"][..., : case["H"] * case["D"]]
        return {**inputs, "x": x.unflatten(-1, (case["H"], case["D"]))}

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos[:, None, :] + rotated * sin[:, None, :]

    def run(self, inputs: Inputs) -> torch.Tensor:
        return self._rotate(inputs["x"], inputs["cos"], inputs["sin"])

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return self._rotate(inputs["x"], inputs["cos"], inputs["sin"])

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        # Computed in dtype, x*cos and rot*sin are each rounded (eps/2 * |x|, |x| <= 6 for
        # these normal inputs) before they are added, and the sum may cancel: an absolute term.
        tolerance = elementwise_tolerance(dtype, rtol_scale=2.0)
        eps = float(torch.finfo(torch_dtype(dtype)).eps)
        return Tolerance(
            tolerance.atol + 6.0 * eps,
            tolerance.rtol,
            tolerance.source + " + 2 product roundings of |x| <= 6 (eps(dtype) * 6)",
        )

    def flops(self, case: Case) -> int:
        return 3 * case["B"] * case["S"] * case["H"] * case["D"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        x = case["B"] * case["S"] * case["H"] * case["D"]
        return element_size(dtype) * (2 * x + 2 * case["S"] * case["D"])


KERNELS: tuple[Kernel, ...] = (SdpaKernel(), DecodeAttentionKernel(), RotaryEmbeddingKernel())
