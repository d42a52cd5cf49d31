"""DeepSeek-V3's multi-token prediction (MTP) module: the projection that combines the main model's
hidden state with the embedding of the next token.

DeepSeek-V3 technical report (arXiv:2412.19437), s2.2, eq. (21): for depth k and position i,
h'_i = M_k [RMSNorm(h_i^{k-1}) ; RMSNorm(Emb(t_{i+k}))], M_k a (d x 2d) projection; the result
feeds the MTP module's transformer block and the shared output head. As vLLM's deepseek_mtp and
Hugging Face's implementations concatenate: [enorm(embedding) ; hnorm(hidden)], eh_proj (d, 2d), no
bias. Depth 1: position i pairs hidden state i with the token at i + 1, so S positions give S - 1
outputs. Hidden 7168 in DeepSeek-V3 (trimmed here; vocabulary 129280, trimmed to the rows a case
draws from).
"""

from __future__ import annotations

import math

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
    element_size,
    gamma,
    randn,
    subnormal_ulp,
    torch_dtype,
    unit_roundoff,
)

U32 = 2.0**-24
U64 = 2.0**-53
MTP_EPS = 1e-6  # DeepSeek-V3 rms_norm_eps


def _rms_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + MTP_EPS) * weight


def mtp_combine(
    embedded: torch.Tensor,
    hidden: torch.Tensor,
    enorm: torch.Tensor,
    hnorm: torch.Tensor,
    eh_proj: torch.Tensor,
) -> torch.Tensor:
    """As a device runs it: eh_proj([enorm(embedded) ; hnorm(hidden)]), each RMSNorm in float32 and
    rounded to the hidden state's dtype, the projection in that dtype."""
    dim, wide = hidden.shape[-1], torch.promote_types(hidden.dtype, torch.float32)
    e = F.rms_norm(embedded.to(wide), (dim,), enorm.to(wide), MTP_EPS).to(hidden.dtype)
    h = F.rms_norm(hidden.to(wide), (dim,), hnorm.to(wide), MTP_EPS).to(hidden.dtype)
    return F.linear(torch.cat((e, h), dim=-1), eh_proj)


def mtp_combine_reference(
    embedded: torch.Tensor,
    hidden: torch.Tensor,
    enorm: torch.Tensor,
    hnorm: torch.Tensor,
    eh_proj: torch.Tensor,
) -> torch.Tensor:
    """The same combination written out (float64 when the inputs are)."""
    return torch.cat((_rms_norm(embedded, enorm), _rms_norm(hidden, hnorm)), dim=-1) @ eh_proj.t()


def _combined_input(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """(embedding of token i + 1, hidden state i) for i < S - 1: the pairs depth 1 combines."""
    embedded = inputs["embedding"][inputs["tokens"][:, 1:].long()]
    return embedded, inputs["hidden"][:, :-1]


class MtpCombineKernel(Kernel):
    """hidden (B, S, d), tokens (B, S) in; eh_proj([enorm(Emb(t_{i+1})) ; hnorm(h_i)]) (B, S - 1, d) out."""

    name = "mtp_combine"
    description = "DeepSeek-V3 multi-token prediction: RMSNorm'd next-token embedding and hidden state, concatenated and projected"
    dtypes = FLOAT_DTYPES
    cases = (
        Case("deepseek_v3_prefill", {"B": 1, "S": Span(24, 64), "d": Span(512, 1024, 256), "V": 1536}),
        Case("batch_of_drafts", {"B": Span(2, 4), "S": Span(8, 16), "d": Span(384, 768, 128), "V": 1024}),
        # Two positions: one output (the decode step that drafts the next token).
        Case("decode_two_positions", {"B": Span(1, 4), "S": 2, "d": Span(512, 1024, 256), "V": 1536}),
        Case(
            "odd_sizes",
            {"B": Span(1, 3), "S": Span(5, 13, odd=True), "d": Span(97, 161, odd=True), "V": 1021},
            edge="odd_size",
        ),
        Case("one_position", {"B": 2, "S": 1, "d": 256, "V": 512}, edge="empty"),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        batch, seq, dim, vocab = case["B"], case["S"], case["d"], case["V"]
        # The main model's last hidden states are far from unit scale; embeddings are small: RMSNorm on
        # each side is what makes the halves comparable, so a kernel that skips one is visibly wrong.
        return {
            "hidden": randn((batch, seq, dim), dtype, g, scale=8.0),
            "tokens": torch.randint(0, vocab, (batch, seq), generator=g),
            "embedding": randn((vocab, dim), dtype, g, scale=0.02),
            "enorm": (1.0 + 0.1 * torch.randn(dim, generator=g)).to(torch_dtype(dtype)),
            "hnorm": (1.0 + 0.1 * torch.randn(dim, generator=g)).to(torch_dtype(dtype)),
            "eh_proj": randn((dim, 2 * dim), dtype, g, scale=(2 * dim) ** -0.5),
        }

    def run(self, inputs: Inputs) -> torch.Tensor:
        embedded, hidden = _combined_input(inputs)
        return mtp_combine(embedded, hidden, inputs["enorm"], inputs["hnorm"], inputs["eh_proj"])

    def reference(self, inputs: Inputs) -> torch.Tensor:
        embedded, hidden = _combined_input(inputs)
        return mtp_combine_reference(embedded, hidden, inputs["enorm"], inputs["hnorm"], inputs["eh_proj"])

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor:
        """First order: each normalised element is within (u + gamma_(d+12)(u32)) of itself (float32
        RMSNorm: a d-term sum, sqrt, division, weight; rounded to the dtype), and the 2d-term projection
        accumulates in float32: (u + gamma_(d+12)(u32) + gamma_2d(u32) + gamma_2d(u64)) |z||W|^T."""
        u = unit_roundoff(dtype)
        embedded, hidden = _combined_input(inputs)
        dim = hidden.shape[-1]
        combined = torch.cat(
            (_rms_norm(embedded, inputs["enorm"]), _rms_norm(hidden, inputs["hnorm"])), dim=-1
        )
        magnitude = combined.abs() @ inputs["eh_proj"].abs().t()
        factor = u + gamma(dim + 12, U32) + gamma(2 * dim, U32) + gamma(2 * dim, U64)
        return factor * (1 + u) * magnitude

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        u = unit_roundoff(dtype)
        return Tolerance(
            subnormal_ulp(dtype),
            2 * u / (1 - u),
            f"componentwise: both RMSNorms in float32 rounded to {dtype} (u = 2^-{round(-math.log2(u))}, "
            f"gamma_(d+12)(u32)) and the 2d = {2 * case['d']}-term projection accumulated in float32, "
            f"(u + gamma_(d+12) + gamma_2d) |z||W|^T; + 2u/(1 - u)|ref|: {HIGHAM}, s2.2, s3.1, s3.5",
        )

    def flops(self, case: Case) -> int:
        rows, dim = case["B"] * max(case["S"] - 1, 0), case["d"]
        return 2 * rows * 2 * dim * dim + 8 * rows * dim

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        rows, dim = case["B"] * max(case["S"] - 1, 0), case["d"]
        return element_size(dtype) * (3 * rows * dim + 2 * dim * dim + 2 * dim) + 8 * rows


KERNELS: tuple[Kernel, ...] = (MtpCombineKernel(),)
