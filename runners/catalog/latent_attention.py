"""Multi-head latent attention (DeepSeek-V2/V3 MLA): the low-rank KV compression, and attention over
the compressed cache in prefill (keys and values decompressed) and decode (the absorbed-weight form).

DeepSeek-V3 (config.json of deepseek-ai/DeepSeek-V3): kv_lora_rank r = 512, qk_nope_head_dim 128,
qk_rope_head_dim 64 (the decoupled RoPE key, one per token shared by every head), v_head_dim 128,
128 heads (DeepSeek-V2-Lite: 16). The cache holds, per token, c_kv = RMSNorm(x W_dkv) (r values)
and the rotated k_pe (64 values). Head h's key is [c_kv W_uk_h^T ; k_pe], its value c_kv W_uv_h^T,
with W_uk and W_uv the rows of `wkv_b` (H (128 + 128) x 512). Decode multiplies W_uk into the query
instead (q_lat = q_nope W_uk_h, scores = q_lat . c_kv + q_rope . k_pe) and W_uv after the weighted
sum: the same numbers, never decompressing the cache. The catalog keeps the real r, head dims and
structure, and trims heads and sequence lengths for the float64 reference's budget.

Rotary embedding is DeepSeek's interleaved form (pairs (2i, 2i+1) rotated as complex numbers) with
float32 cos/sin tables, as inference/model.py keeps freqs_cis in complex64.

Query row i of sequence b is position len_b - S + i (the newest S tokens; decode is S = 1); keys
are the first len_b cache positions; rows of negative position are padding and give zeros (the
masked-rows contract of runners/catalog/attention.py). Padding slots of the cache hold NaN.
"""

from __future__ import annotations

import math

import torch

from runners.catalog.base import (
    FLOAT_DTYPES,
    HIGHAM,
    Case,
    Derived,
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
ROPE_THETA = 10000.0  # DeepSeek-V3 rope_theta
MLA_EPS = 1e-6  # DeepSeek-V3 rms_norm_eps
# A float32 exp, sqrt or cos/sin product is within 4 ulps (as runners/catalog/moe.py).
FLOAT32_ULPS = 4
# Higham & Mary, "A new approach to probabilistic rounding error analysis", SIAM J. Sci. Comput. 41(5),
# 2019: the sum of n mean-independent roundings |e_i| <= u of terms t_i stays within lambda u ||t||_2
# except with probability 2 exp(-lambda^2 / 2) (Hoeffding); lambda = 8 gives 2.5e-14 per element.
PROBABILISTIC_LAMBDA = 8.0


def rotate_interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """DeepSeek's apply_rotary_emb: pairs (x[2i], x[2i+1]) times cos + i sin; cos/sin broadcast over
    the pairs' leading dimensions (..., dr/2)."""
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)


def _rotation_magnitude(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    a, b = x[..., 0::2].abs(), x[..., 1::2].abs()
    return torch.stack((a * cos.abs() + b * sin.abs(), a * sin.abs() + b * cos.abs()), dim=-1).flatten(-2)


def rope_tables(
    positions: torch.Tensor, dim: int, theta: float = ROPE_THETA
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 cos/sin of the interleaved rotation for ``positions`` (..., dim/2), angles in float64."""
    inv_freq = theta ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angles = positions.to(torch.float64)[..., None] * inv_freq
    return angles.cos().to(torch.float32), angles.sin().to(torch.float32)


# --- compression ------------------------------------------------------------------------------------


class MlaKvCompressKernel(Kernel):
    """x (T, D) -> the cache entry (T, r + dr): [RMSNorm(x W_dkv^T[:r]) * g ; rope(x W_dkv^T[r:])]."""

    name = "mla_kv_compress"
    description = "MLA low-rank KV compression: down-projection, RMSNorm of the latent, decoupled RoPE key"
    dtypes = FLOAT_DTYPES
    cases = (
        Case(
            "deepseek_v3_rank512_rope64",
            {"T": Span(16, 48), "D": Span(1024, 2048, 256), "r": 512, "dr": 64, "start": Span(0, 4096)},
        ),
        Case(
            "deepseek_v2_lite_decode",
            {"T": 1, "D": 2048, "r": 512, "dr": 64, "start": Span(100, 8000)},
        ),
        Case(
            "odd_tokens_and_hidden",
            {
                "T": Span(5, 15, odd=True),
                "D": Span(97, 161, odd=True),
                "r": Span(48, 80, 16),
                "dr": 16,
                "start": Span(1, 63),
            },
            edge="odd_size",
        ),
        Case("no_tokens", {"T": 0, "D": 256, "r": 128, "dr": 32, "start": 0}, edge="empty"),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        tokens, hidden, rank, rope = case["T"], case["D"], case["r"], case["dr"]
        cos, sin = rope_tables(torch.arange(case["start"], case["start"] + tokens), rope)
        return {
            "x": randn((tokens, hidden), dtype, g),
            "w_dkv": randn((rank + rope, hidden), dtype, g, scale=hidden**-0.5),
            "norm_weight": (1.0 + 0.1 * torch.randn(rank, generator=g)).to(torch_dtype(dtype)),
            "cos": cos,
            "sin": sin,
        }

    def run(self, inputs: Inputs) -> torch.Tensor:
        x, rank = inputs["x"], inputs["norm_weight"].shape[0]
        kv = x @ inputs["w_dkv"].t()
        latent = torch.nn.functional.rms_norm(
            kv[:, :rank].float(), (rank,), inputs["norm_weight"].float(), MLA_EPS
        )
        k_pe = rotate_interleaved(kv[:, rank:].float(), inputs["cos"], inputs["sin"])
        return torch.cat((latent, k_pe), dim=-1).to(x.dtype)

    def reference(self, inputs: Inputs) -> torch.Tensor:
        rank = inputs["norm_weight"].shape[0]
        kv = inputs["x"] @ inputs["w_dkv"].t()
        latent = kv[:, :rank]
        latent = (
            latent
            / torch.sqrt((latent * latent).mean(dim=-1, keepdim=True) + MLA_EPS)
            * inputs["norm_weight"]
        )
        return torch.cat((latent, rotate_interleaved(kv[:, rank:], inputs["cos"], inputs["sin"])), dim=-1)

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor:
        """First order: the projection's float32 accumulation and rounding to the dtype, e = (gamma_D + u)
        |x||W|; RMSNorm moves by |g| (e_i + |kv_i| rms(e) / rms) / (rms - rms(e)) (the triangle
        inequality on the root mean square) plus its float32 evaluation (r-term sum, sqrt, division:
        gamma_{r+12} of float32); the rotation by e_a|cos| + e_b|sin| plus 4 float32 ulps."""
        u = unit_roundoff(dtype)
        rank, hidden = inputs["norm_weight"].shape[0], inputs["x"].shape[-1]
        exact = inputs["x"] @ inputs["w_dkv"].t()
        magnitude = inputs["x"].abs() @ inputs["w_dkv"].abs().t()
        err = (gamma(hidden, U32) + gamma(hidden, U64) + u) * magnitude
        latent, err_latent = exact[:, :rank], err[:, :rank]
        rms = torch.sqrt((latent * latent).mean(dim=-1, keepdim=True) + MLA_EPS)
        rms_err = torch.sqrt((err_latent * err_latent).mean(dim=-1, keepdim=True))
        weight = inputs["norm_weight"].abs()
        latent_bound = (
            weight * (err_latent + latent.abs() * rms_err / rms) / (rms - rms_err).clamp_min(1e-300)
        )
        latent_bound = latent_bound + gamma(rank + 12, U32) * weight * latent.abs() / rms
        rope = _rotation_magnitude(exact[:, rank:], inputs["cos"], inputs["sin"])
        rope_bound = (
            _rotation_magnitude(err[:, rank:], inputs["cos"], inputs["sin"]) + FLOAT32_ULPS * U32 * 2 * rope
        )
        return torch.cat((latent_bound, rope_bound), dim=-1)

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        u = unit_roundoff(dtype)
        return Tolerance(
            subnormal_ulp(dtype),
            2 * u / (1 - u),
            f"first-order componentwise bound: down-projection gamma_D(float32) + u |x||W| (D = {case['D']}, "
            f"u = 2^-{round(-math.log2(u))} for {dtype}), propagated through RMSNorm (triangle inequality "
            f"on the rms) and the rotation; float32 RMSNorm and RoPE evaluation; 2u/(1 - u)|ref| for the "
            f"output's rounding: {HIGHAM}, s2.2, s3.1, s3.5",
        )

    def flops(self, case: Case) -> int:
        return 2 * case["T"] * case["D"] * (case["r"] + case["dr"]) + 6 * case["T"] * case["r"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        t, d, width = case["T"], case["D"], case["r"] + case["dr"]
        return element_size(dtype) * (t * d + width * d + t * width + case["r"]) + 8 * t * case["dr"] // 2


# --- attention over the compressed cache -----------------------------------------------------------


def _allowed(lengths: torch.Tensor, queries: int, keys: int, causal: bool) -> torch.Tensor:
    """(B, S, L) mask: query i of sequence b (position len_b - S + i, padding when negative) may see
    key j when j < len_b, and j <= its position when causal."""
    positions = lengths.long()[:, None] - queries + torch.arange(queries)[None, :]
    key = torch.arange(keys)[None, None, :]
    allowed = (key < lengths.long()[:, None, None]) & (positions[:, :, None] >= 0)
    if causal:
        allowed = allowed & (key <= positions[:, :, None])
    return allowed


def _split_wkv_b(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    heads, nope, _v = inputs["heads"], inputs["q_nope"].shape[-1], inputs["v_dim"]
    wkv_b = inputs["wkv_b"].view(heads, -1, inputs["c_kv"].shape[-1])
    return wkv_b[:, :nope], wkv_b[:, nope:]  # W_uk (H, dn, r), W_uv (H, dv, r)


def mla_naive(inputs: Inputs) -> torch.Tensor:
    """Keys and values decompressed from the latent cache, then plain attention (prefill's form); float64
    when the inputs are. Masked (padding) rows give zeros."""
    w_uk, w_uv = _split_wkv_b(inputs)
    c_kv, k_pe = inputs["c_kv"], inputs["k_pe"]
    allowed = _allowed(inputs["lengths"], inputs["q_nope"].shape[1], c_kv.shape[1], inputs["causal"])
    c_kv = c_kv.masked_fill(~(allowed.any(dim=1))[..., None], 0.0)  # padding slots hold NaN
    k_pe = k_pe.masked_fill(~(allowed.any(dim=1))[..., None], 0.0)
    k_nope = torch.einsum("btc,hdc->bthd", c_kv, w_uk)
    values = torch.einsum("btc,hdc->bthd", c_kv, w_uv)
    q_rope = rotate_interleaved(inputs["q_pe"], inputs["cos"][:, :, None], inputs["sin"][:, :, None])
    scores = torch.einsum("bshd,bthd->bsht", inputs["q_nope"], k_nope)
    scores = (scores + torch.einsum("bshr,btr->bsht", q_rope, k_pe)) * inputs["scale"]
    mask = allowed[:, :, None, :]
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    weights = torch.where(mask.any(dim=-1, keepdim=True), weights, torch.zeros_like(weights))
    return torch.einsum("bsht,bthd->bshd", weights, values)


def mla_absorbed(inputs: Inputs) -> torch.Tensor:
    """DeepSeek's absorbed form (inference/model.py, attn_impl "absorb"): W_uk into the query, W_uv after
    the weighted sum of latents; every intermediate in the inputs' dtype, softmax in float32. A
    ``wkv_b`` kept quantized (an FP8 checkpoint's on the FP8 path: runners/models/fp8.py ``Fp8Weight``)
    computes both absorbed products itself (``absorb_uk``, ``absorb_uv``)."""
    wkv_b = inputs["wkv_b"]
    quantized = not isinstance(wkv_b, torch.Tensor)
    heads, nope = inputs["heads"], inputs["q_nope"].shape[-1]
    if not quantized:
        w_uk, w_uv = _split_wkv_b(inputs)
    c_kv, k_pe = inputs["c_kv"], inputs["k_pe"]
    allowed = _allowed(inputs["lengths"].cpu(), inputs["q_nope"].shape[1], c_kv.shape[1], inputs["causal"])
    allowed = allowed.to(c_kv.device)
    owned = allowed.any(dim=1)[..., None]
    c_kv = c_kv.masked_fill(~owned, 0.0)
    k_pe = k_pe.masked_fill(~owned, 0.0)
    if quantized:
        q_lat = wkv_b.absorb_uk(inputs["q_nope"], heads)
    else:
        q_lat = torch.einsum("bshd,hdc->bshc", inputs["q_nope"], w_uk)
    cos, sin = inputs["cos"][:, :, None], inputs["sin"][:, :, None]
    wide = torch.promote_types(c_kv.dtype, torch.float32)  # float32 at least, float64 kept as such
    q_rope = rotate_interleaved(inputs["q_pe"].to(wide), cos.to(wide), sin.to(wide)).to(c_kv.dtype)
    scores = torch.einsum("bshc,btc->bsht", q_lat, c_kv) + torch.einsum("bshr,btr->bsht", q_rope, k_pe)
    mask = allowed[:, :, None, :]
    scores = (scores.to(wide) * inputs["scale"]).masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    weights = torch.where(mask.any(dim=-1, keepdim=True), weights, torch.zeros_like(weights)).to(c_kv.dtype)
    latent = torch.einsum("bsht,btc->bshc", weights, c_kv)
    if quantized:
        out: torch.Tensor = wkv_b.absorb_uv(latent, heads, nope)
        return out
    return torch.einsum("bshc,hdc->bshd", latent, w_uv)


def mla_bound(inputs: Inputs, dtype: str) -> torch.Tensor:
    """First-order componentwise error bound covering both forms, computed with float32 accumulation
    and intermediates rounded to the dtype (u): the naive form rounds k_nope, v and the scores (as
    DeepSeek's attn_impl "naive" does), the absorbed form q_lat, the partial scores, P and the latent
    sum (as its "absorb" path and FlashMLA do).

    Per logit j (then times the softmax scale): accumulation gamma_(dn+r+dr)(u32) on the chained
    magnitudes (|q_nope||W_uk|).|c_j| + |rot q_pe|.|k_pe_j|; the roundings of q_lat and k_nope,
    u (|q_lat|.|c_j| + |q_nope|.|k_nope_j|), of the rotated query, 2u |rot q_pe|.|k_pe_j|, and of
    the partial and total scores, 3u (|s_nope| + |s_rope|). A logit error d moves the softmax-weighted
    sum by sum_j P_j (d_j + sum_i P_i d_i) |v_j - out| to first order (x (e^(2d) - 1) / 2d for the rest). The values
    or the latent sum add (2 gamma_r(u32) + gamma_L(u32) + (L + 8) u32 (softmax)) sum_j P_j |c_j||W_uv|
    + 2u sum_j P_j |v_j| (P rounded; v rounded) + u |sum_j P_j c_j||W_uv| (the latent rounded)."""
    u = unit_roundoff(dtype)
    w_uk, w_uv = _split_wkv_b(inputs)
    c_kv, k_pe = inputs["c_kv"], inputs["k_pe"]
    nope, rank, rope, keys = inputs["q_nope"].shape[-1], c_kv.shape[-1], k_pe.shape[-1], c_kv.shape[1]
    allowed = _allowed(inputs["lengths"], inputs["q_nope"].shape[1], keys, inputs["causal"])
    owned = allowed.any(dim=1)[..., None]
    c_kv, k_pe = c_kv.masked_fill(~owned, 0.0), k_pe.masked_fill(~owned, 0.0)
    c_abs, k_pe_abs = c_kv.abs(), k_pe.abs()
    cos, sin = inputs["cos"][:, :, None], inputs["sin"][:, :, None]
    q_lat = torch.einsum("bshd,hdc->bshc", inputs["q_nope"], w_uk)
    k_nope = torch.einsum("btc,hdc->bthd", c_kv, w_uk)
    q_rope = rotate_interleaved(inputs["q_pe"], cos, sin)
    s_nope = torch.einsum("bshc,btc->bsht", q_lat, c_kv)
    s_rope = torch.einsum("bshr,btr->bsht", q_rope, k_pe)
    chained = torch.einsum("bshd,hdc->bshc", inputs["q_nope"].abs(), w_uk.abs())
    m_chain = torch.einsum("bshc,btc->bsht", chained, c_abs)
    m_rope = torch.einsum("bshr,btr->bsht", _rotation_magnitude(inputs["q_pe"], cos, sin), k_pe_abs)
    # The roundings of q_lat (absorbed) and k_nope (naive) to the dtype, summed over r and dn terms:
    # the worst case u sum|a_i b_i|, or Higham & Mary's probabilistic bound lambda u ||a * b||_2
    # (rounding errors mean-independent; Hoeffding: exceeded with probability <= 2 exp(-lambda^2 / 2),
    # 2.5e-14 at lambda = 8), whichever is smaller.
    m_round = torch.minimum(
        torch.einsum("bshc,btc->bsht", q_lat.abs(), c_abs),
        PROBABILISTIC_LAMBDA * torch.einsum("bshc,btc->bsht", q_lat**2, c_abs**2).sqrt(),
    )
    m_round = m_round + torch.minimum(
        torch.einsum("bshd,bthd->bsht", inputs["q_nope"].abs(), k_nope.abs()),
        PROBABILISTIC_LAMBDA * torch.einsum("bshd,bthd->bsht", inputs["q_nope"] ** 2, k_nope**2).sqrt(),
    )
    accumulate = gamma(nope + rank + rope, U32) + gamma(nope + rank + rope, U64)
    logit_error = inputs["scale"] * (
        (accumulate + FLOAT32_ULPS * U32) * (m_chain + m_rope)
        + u * m_round
        + 2 * u * m_rope
        + 3 * u * (s_nope.abs() + s_rope.abs())
    )
    mask = allowed[:, :, None, :]
    logit_error = logit_error.masked_fill(~mask, 0.0)
    values = torch.einsum("btc,hdc->bthd", c_kv, w_uv)
    probabilities = torch.softmax(
        ((s_nope + s_rope) * inputs["scale"]).masked_fill(~mask, float("-inf")), dim=-1
    )
    probabilities = torch.where(
        mask.any(dim=-1, keepdim=True), probabilities, torch.zeros_like(probabilities)
    )
    out = torch.einsum("bsht,bthd->bshd", probabilities, values)
    # delta out = sum_j P_j (d_j - sum_i P_i d_i)(v_j - out) to first order: bounded by
    # sum_j P_j (d_j + mean d) |v_j - out|, scaled by (e^(2d) - 1) / 2d >= 1 (d the row's largest
    # logit error: a weight moves by at most e^(2d) - 1 of itself) for what the first order leaves out.
    spread = (values.permute(0, 2, 1, 3)[:, None] - out[:, :, :, None, :]).abs()  # (B, S, H, L, dv)
    weighted_error = probabilities * logit_error
    mean_error = weighted_error.sum(dim=-1, keepdim=True)
    logit_bound = torch.einsum("bsht,bshtd->bshd", weighted_error + probabilities * mean_error, spread)
    largest = 2 * logit_error.amax(dim=-1, keepdim=True)
    logit_bound = logit_bound * torch.where(
        largest > 0, torch.expm1(largest) / largest.clamp_min(1e-300), 1.0
    )
    chained_values = torch.einsum("bsht,btc->bshc", probabilities, c_abs)
    chained_values = torch.einsum("bshc,hdc->bshd", chained_values, w_uv.abs())
    latent = torch.einsum("bsht,btc->bshc", probabilities, c_kv).abs()
    factor = 2 * (gamma(rank, U32) + gamma(rank, U64)) + gamma(keys, U32) + (keys + 8) * U32
    bound = logit_bound + factor * chained_values
    # P_j rounded (|e_j| <= u) moves the output by sum_j e_j P_j v_j in either form (the latent's
    # W_uv product of sum_j e_j P_j c_j is exactly that): u sum_j P_j |v_j|; so does v rounded (naive).
    bound = bound + 2 * u * torch.einsum("bsht,bthd->bshd", probabilities, values.abs())
    return bound + u * torch.einsum("bshc,hdc->bshd", latent, w_uv.abs())


def _mla_tolerance(case: Case, dtype: str, form: str) -> Tolerance:
    u = unit_roundoff(dtype)
    return Tolerance(
        subnormal_ulp(dtype),
        2 * u / (1 - u),
        f"first-order componentwise bound of MLA ({form}) with float32 accumulation and intermediates "
        f"rounded to {dtype} (u = 2^-{round(-math.log2(u))}): per logit, float32 accumulation on "
        f"|q_nope||W_uk||c| + |rot q_pe||k_pe|, u on the rounded q_lat / k_nope products, 3u on the "
        f"partial scores (q_lat / k_nope roundings: the smaller of the worst case and Higham & Mary 2019's "
        f"probabilistic bound at lambda = 8); a logit error d moves the output by <= 2 d max|v|; values, latent sum, P and "
        f"W_uv add their roundings (runners/catalog/latent_attention.py, mla_bound); + 2u/(1 - u)|ref|: {HIGHAM}, s2.2, "
        "s3.1, s3.5; softmax perturbation as in runners/catalog/attention.py",
    )


class _MlaKernel(Kernel):
    dtypes = FLOAT_DTYPES
    absorbed = False

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        batch, queries, keys, heads = case["B"], case["S"], case["L"], case["H"]
        rank, nope, rope, v_dim = case["r"], case["dn"], case["dr"], case["dv"]
        if case.options.get("padded"):
            lengths = torch.randint(max(1, keys // 3), keys + 1, (batch,), generator=g)
            if batch:
                lengths[0] = keys
        else:
            lengths = torch.full((batch,), keys, dtype=torch.int64)
        positions = (lengths[:, None] - queries + torch.arange(queries)[None, :]).clamp_min(0)
        cos, sin = rope_tables(positions, rope)
        c_kv = randn((batch, keys, rank), dtype, g)
        k_pe = randn((batch, keys, rope), dtype, g)
        for b, length in enumerate(lengths.tolist()):  # stale memory past each sequence's end
            c_kv[b, length:] = float("nan")
            k_pe[b, length:] = float("nan")
        return {
            "q_nope": randn((batch, queries, heads, nope), dtype, g),
            "q_pe": randn((batch, queries, heads, rope), dtype, g),
            "cos": cos,
            "sin": sin,
            "c_kv": c_kv,
            "k_pe": k_pe,
            "wkv_b": randn((heads * (nope + v_dim), rank), dtype, g, scale=rank**-0.5),
            "lengths": lengths.to(torch.int32),
            "heads": heads,
            "v_dim": v_dim,
            "scale": (nope + rope) ** -0.5,
            "causal": bool(case.options.get("causal")),
        }

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return mla_naive(inputs)

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor:
        return mla_bound(inputs, dtype)

    def flops(self, case: Case) -> int:
        b, s, keys, h = case["B"], case["S"], case["L"], case["H"]
        rank = case["r"]
        if self.absorbed:
            per_query = case["dn"] * rank + keys * (2 * rank + case["dr"]) + rank * case["dv"]
            return 2 * b * s * h * per_query
        decompress = 2 * b * keys * rank * h * (case["dn"] + case["dv"])
        return decompress + 2 * b * s * keys * h * (case["dn"] + case["dr"] + case["dv"])

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        b, s, keys, h = case["B"], case["S"], case["L"], case["H"]
        cache = b * keys * (case["r"] + case["dr"])
        return element_size(dtype) * (
            cache
            + b * s * h * (case["dn"] + case["dr"] + case["dv"])
            + h * (case["dn"] + case["dv"]) * case["r"]
        )


_V3 = {"r": 512, "dn": 128, "dr": 64, "dv": 128}


class MlaPrefillKernel(_MlaKernel):
    name = "mla_prefill"
    description = "multi-head latent attention, prefill: keys/values decompressed from the latent cache, decoupled RoPE key, causal or padded"
    cases = (
        Case(
            "deepseek_v3_causal",
            {"B": 1, "S": Span(32, 72), "L": Derived("S"), "H": Span(2, 4), **_V3},
            options={"causal": True},
        ),
        # Chunked prefill: the newest S tokens over a longer cached prefix.
        Case(
            "deepseek_v3_chunk_over_prefix",
            {"B": 1, "S": Span(12, 24), "L": Span(64, 128), "H": Span(2, 4), **_V3},
            options={"causal": True},
        ),
        # A padded batch: each sequence its own length, NaN in the padding, padding rows give zeros.
        Case(
            "padded_batch_causal",
            {
                "B": Span(2, 3),
                "S": Span(24, 40),
                "L": Derived("S"),
                "H": 2,
                "r": 128,
                "dn": 64,
                "dr": 32,
                "dv": 64,
            },
            edge="masked_rows",
            options={"causal": True, "mask": True, "padded": True},
        ),
        Case(
            "odd_dims",
            {
                "B": 1,
                "S": Span(13, 29, odd=True),
                "L": Derived("S + 6"),
                "H": 3,
                "r": Span(40, 72, 8),
                "dn": 24,
                "dr": 8,
                "dv": 40,
            },
            edge="odd_size",
            options={"causal": True},
        ),
        # A one-token prompt: one query over a cache of one token (softmax of one logit is 1).
        Case(
            "single_token_prompt",
            {"B": Span(1, 3), "S": 1, "L": Derived("S"), "H": Span(2, 4), **_V3},
            options={"causal": True},
        ),
        Case(
            "no_queries",
            {"B": 1, "S": 0, "L": Span(8, 24), "H": 2, "r": 64, "dn": 32, "dr": 16, "dv": 32},
            edge="empty",
            options={"causal": True},
        ),
    )

    def run(self, inputs: Inputs) -> torch.Tensor:
        # The naive form in the dtype, as DeepSeek's attn_impl "naive": decompressed keys and values.
        dtype = inputs["c_kv"].dtype
        w_uk, w_uv = _split_wkv_b(inputs)
        queries, keys = inputs["q_nope"].shape[1], inputs["c_kv"].shape[1]
        allowed = _allowed(inputs["lengths"].cpu(), queries, keys, inputs["causal"]).to(inputs["c_kv"].device)
        owned = allowed.any(dim=1)[..., None]
        c_kv = inputs["c_kv"].masked_fill(~owned, 0.0)
        k_pe = inputs["k_pe"].masked_fill(~owned, 0.0)
        heads = inputs["heads"]
        k_nope = torch.einsum("btc,hdc->bthd", c_kv, w_uk)
        values = torch.einsum("btc,hdc->bthd", c_kv, w_uv)
        cos, sin = inputs["cos"][:, :, None], inputs["sin"][:, :, None]
        q_rope = rotate_interleaved(inputs["q_pe"].float(), cos, sin).to(dtype)
        q = torch.cat((inputs["q_nope"], q_rope), dim=-1).transpose(1, 2)  # (B, H, S, dn + dr)
        k = torch.cat((k_nope, k_pe[:, :, None].expand(-1, -1, heads, -1)), dim=-1).transpose(1, 2)
        mask = allowed[:, None]
        out = torch.nn.functional.scaled_dot_product_attention(
            q, k, values.transpose(1, 2), attn_mask=mask, scale=inputs["scale"]
        )
        out = torch.where(mask.any(dim=-1, keepdim=True), out, torch.zeros_like(out))
        return out.transpose(1, 2)

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return _mla_tolerance(case, dtype, "prefill, decompressed keys and values")


class MlaDecodeKernel(_MlaKernel):
    name = "mla_decode"
    description = "multi-head latent attention, decode: absorbed W_uk / W_uv over the compressed cache, decoupled RoPE key, varying lengths"
    absorbed = True
    cases = (
        Case("deepseek_v3_batch", {"B": Span(2, 4), "S": 1, "L": Span(64, 160), "H": Span(3, 6), **_V3}),
        Case("deepseek_v2_lite_16_heads", {"B": 1, "S": 1, "L": Span(64, 160), "H": 16, **_V3}),
        Case(
            "long_context",
            {"B": 1, "S": 1, "L": Span(1664, 2176), "H": 2, **_V3},
            edge="long_reduction",
        ),
        # Sequences of different lengths in one batch; the cache past each one's end holds NaN.
        Case(
            "varying_lengths_nan_padding",
            {"B": Span(3, 5), "S": 1, "L": Span(48, 96), "H": 4, "r": 128, "dn": 64, "dr": 32, "dv": 64},
            edge="nan_inf",
            options={"mask": True, "padded": True},
        ),
        # Speculative decoding (the MTP head's draft): two new tokens, causal between them.
        Case(
            "two_token_verify",
            {"B": Span(1, 2), "S": 2, "L": Span(64, 128), "H": Span(2, 4), **_V3},
            options={"causal": True},
        ),
        Case(
            "odd_dims",
            {
                "B": Span(1, 3),
                "S": 1,
                "L": Span(17, 45, odd=True),
                "H": 3,
                "r": Span(40, 72, 8),
                "dn": 24,
                "dr": 8,
                "dv": 40,
            },
            edge="odd_size",
        ),
        # The first decode step: a cache of one token, the output is that token's value through W_uv.
        Case("kv_length_one", {"B": Span(1, 3), "S": 1, "L": 1, "H": Span(3, 6), **_V3}),
        Case(
            "no_sequences",
            {"B": 0, "S": 1, "L": 16, "H": 2, "r": 64, "dn": 32, "dr": 16, "dv": 32},
            edge="empty",
        ),
    )

    def run(self, inputs: Inputs) -> torch.Tensor:
        return mla_absorbed(inputs)

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return _mla_tolerance(case, dtype, "decode, absorbed weights")


KERNELS: tuple[Kernel, ...] = (MlaKvCompressKernel(), MlaPrefillKernel(), MlaDecodeKernel())
