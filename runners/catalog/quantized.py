"""Quantized GEMMs of the models domestic stacks re-engineer (issue 16): FP8 with fine-grained block
scaling as DeepSeek-V3 trains and serves it, W8A8 int8 and int4 weight-only, and the quantize step
that produces FP8 scales.

Sources:
- DeepSeek-V3 Technical Report (arXiv:2412.19437), s3.3.2 "Fine-Grained Quantization": activations
  are scaled per 1x128 tile (per token, per 128 channels), weights per 128x128 block, each scale
  the block's max |x| over the FP8 format's largest finite value; "Increasing Accumulation
  Precision": Hopper's FP8 tensor cores retain around 14 bits of the running sum, so DeepSeek-V3
  promotes the partial sums to FP32 registers every N_C = 128 elements (4 WGMMAs) and applies the
  scales there. Their inference/kernel.py (act_quant, weight_quant, fp8_gemm) is the semantics
  followed here; the code is this project's own.
- OCP 8-bit Floating Point Specification (OFP8), Rev. 1.0 (2023): E4M3 has 3 mantissa bits and a
  largest finite value of 448 (no infinities); E5M2 has 2 mantissa bits and 57344, IEEE-style.
- W8A8: per-token activation scales and per-channel weight scales, int32 accumulation (SmoothQuant,
  Xiao et al., ICML 2023, s3; vLLM's cutlass_scaled_mm has the same contract).
- int4 weight-only with group size 128 and per-group scales (GPTQ, Frantar et al., ICLR 2023; AWQ,
  Lin et al., MLSys 2024). Packing here: byte j of a row holds element 2j in its low nibble and
  element 2j+1 in its high nibble, each a two's-complement int4 in [-8, 7].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, Union

import torch

from runners.catalog.base import (
    HIGHAM,
    Case,
    Derived,
    Inputs,
    Kernel,
    Span,
    Tolerance,
    abs32,
    accumulation_bound,
    accumulation_tolerance,
    element_size,
    gamma,
    subnormal_ulp,
    torch_dtype,
    unit_roundoff,
)

BLOCK = 128  # DeepSeek-V3's activation tile width and weight block edge
FP8_FORMATS = ("float8_e4m3fn", "float8_e5m2")
# Largest finite values (OCP OFP8 Rev. 1.0, Table 1).
FP8_MAX = {"float8_e4m3fn": 448.0, "float8_e5m2": 57344.0}
# The smallest scale a quantizer writes: an all-zero block would otherwise get scale 0 and 0/0 = NaN
# (DeepSeek's act_quant divides by max|x| / 448 unguarded); serving stacks clamp max|x| instead.
SCALE_FLOOR = 2.0**-126  # float32's smallest normal
U32 = 2.0**-24
U64 = 2.0**-53
# Hopper keeps "around 14 bits" of an FP8 GEMM's running sum (DeepSeek-V3 s3.3.2). The bound lets the
# partial sums within one promotion interval be that narrow, taken as 13 significand bits (u = 2^-13)
# so that "around 14" passes; across intervals the sums must be float32.
FP8_INNER_ACCUMULATOR_U = 2.0**-13
FP8_SOURCE = (
    "DeepSeek-V3 Technical Report (arXiv:2412.19437) s3.3.2: partial sums of at most P products may be "
    "accumulated with ~14 bits (taken as u = 2^-13), then promoted to float32 with the 1x128 and "
    "128x128 scales applied; OCP OFP8 Rev. 1.0 for the E4M3/E5M2 formats; " + HIGHAM + " s3.1"
)


def _sizes(k: int) -> int:
    return -(-k // BLOCK)


def _magnitudes(
    shape: tuple[int, int], g: torch.Generator, spread: int, tile: tuple[int, int]
) -> torch.Tensor:
    """A power of two per tile, 2^-spread .. 2^spread: real activations have outlier channels and
    tokens, which is why DeepSeek-V3 scales per tile; a per-tensor scale loses the small tiles."""
    rows, cols = _sizes_for(shape[0], tile[0]), _sizes_for(shape[1], tile[1])
    exponents = torch.randint(-spread, spread + 1, (rows, cols), generator=g).to(torch.float32)
    return _expand(torch.exp2(exponents), shape, tile)


def _sizes_for(n: int, edge: int) -> int:
    return -(-n // edge)


def _expand(per_tile: torch.Tensor, shape: tuple[int, int], tile: tuple[int, int]) -> torch.Tensor:
    """A per-tile tensor repeated over its tiles and cut to `shape` (the last tiles may be partial)."""
    expanded = per_tile.repeat_interleave(tile[0], dim=0).repeat_interleave(tile[1], dim=1)
    return expanded[: shape[0], : shape[1]]


# The largest bfloat16 significand, 2 - 2^-7: a tile maximum with it makes max|x| / fmax inexact in
# float32, so x / scale of the maximum lands a rounding above or below fmax and the quantizer must
# saturate to fmax (an E4M3 cast that overflows gives NaN, E5M2's gives Inf).
FULL_MANTISSA = 2.0 - 2.0**-7
# The rest of a "subnormal" tile is at most this share of its maximum, so x / scale <= share * fmax:
# 448 * 2^-16 ~ 2^-7.2, below E4M3's smallest normal 2^-6 (subnormals 2^-9 .. 2^-6), and
# 57344 * 2^-30 ~ 2^-14.2, below E5M2's smallest normal 2^-14 (subnormals 2^-16 .. 2^-14); OCP OFP8
# Rev. 1.0, Table 1. A device that flushes FP8 subnormals to zero loses all of them.
SUBNORMAL_SHARE = {"float8_e4m3fn": 2.0**-16, "float8_e5m2": 2.0**-30}


def _tile_extremes(
    x: torch.Tensor, tile: tuple[int, int], g: torch.Generator, fmt: str, kind: str
) -> torch.Tensor:
    """x with one element per tile set to +-FULL_MANTISSA * 2^e (that tile's maximum) and, for
    kind "subnormal", every other element shrunk to SUBNORMAL_SHARE[fmt] of it: the quantized codes
    of those are E4M3 / E5M2 subnormals, which a device that flushes them to zero loses."""
    rows, cols = x.shape
    if x.numel() == 0:
        return x
    grid = (_sizes_for(rows, tile[0]), _sizes_for(cols, tile[1]))
    exponents = torch.randint(-6, 7, grid, generator=g).to(torch.float32)
    peak = _expand(torch.exp2(exponents) * FULL_MANTISSA, (rows, cols), tile)
    share = SUBNORMAL_SHARE[fmt] if kind == "subnormal" else 0.5
    body = torch.randn((rows, cols), generator=g).clamp(-1.0, 1.0) * share * peak
    sign = torch.where(torch.rand(grid, generator=g) < 0.5, -1.0, 1.0)
    marks = torch.zeros(rows, cols, dtype=torch.bool)
    for tr in range(grid[0]):
        for tc in range(grid[1]):
            r0, c0 = tr * tile[0], tc * tile[1]
            r1, c1 = min(r0 + tile[0], rows), min(c0 + tile[1], cols)
            pick = int(torch.randint(0, (r1 - r0) * (c1 - c0), (1,), generator=g))
            marks[r0 + pick // (c1 - c0), c0 + pick % (c1 - c0)] = True
    signs = _expand(sign, (rows, cols), tile)
    return torch.where(marks, signs * peak, body)


def block_quantize(x: torch.Tensor, fmt: str, tile: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantizes a 2-D tensor per tile: scale = max(max|x| / fmax, SCALE_FLOOR) in float32, values
    x / scale rounded to the FP8 format (act_quant with tile (1, 128), weight_quant with (128, 128))."""
    rows, cols = x.shape
    tr, tc = tile
    pr, pc = _sizes_for(rows, tr) * tr, _sizes_for(cols, tc) * tc
    wide = x.to(torch.float32)
    padded = torch.zeros(pr, pc, dtype=torch.float32, device=x.device)
    padded[:rows, :cols] = wide
    tiles = padded.reshape(pr // tr, tr, pc // tc, tc)
    amax = tiles.abs().amax(dim=(1, 3))
    scale = torch.clamp(amax / FP8_MAX[fmt], min=SCALE_FLOOR)
    values = (wide / _expand(scale, (rows, cols), tile)).to(torch_dtype(fmt))
    return values, scale


class Fp8BlockQuantKernel(Kernel):
    """The quantize step that produces the scales: the output compared is the dequantized values
    followed by the scales, both float32, against the input and the exact max|x| / fmax."""

    dtypes = FP8_FORMATS

    def __init__(self, name: str, description: str, tile: tuple[int, int], cases: tuple[Case, ...]) -> None:
        self.name = name
        self.description = description
        self.tile = tile
        self.cases = cases

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        shape = (case["M"], case["K"])
        x = torch.randn(shape, generator=g) * _magnitudes(shape, g, case.options.get("spread", 8), self.tile)
        if case.options.get("extremes"):
            x = _tile_extremes(x, self.tile, g, dtype, case.options["extremes"])
        if case.options.get("zero_block"):
            x[: self.tile[0], : self.tile[1]] = 0.0
        # Activations reach the quantizer in bfloat16 (DeepSeek-V3 s3.3.1).
        return {"x": x.to(torch.bfloat16), "fmt": dtype}

    def run(self, inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
        return block_quantize(inputs["x"], inputs["fmt"], self.tile)

    def comparable(self, output: tuple[torch.Tensor, torch.Tensor], inputs: Inputs) -> torch.Tensor:
        values, scale = output
        shape = (values.shape[0], values.shape[1])
        dequantized = values.to(torch.float64) * _expand(scale.to(torch.float64), shape, self.tile)
        return torch.cat([dequantized.reshape(-1), scale.to(torch.float64).reshape(-1)]).to(torch.float32)

    def reference(self, inputs: Inputs) -> torch.Tensor:
        x = inputs["x"]
        rows, cols = x.shape
        tr, tc = self.tile
        pr, pc = _sizes_for(rows, tr) * tr, _sizes_for(cols, tc) * tc
        padded = torch.zeros(pr, pc, dtype=torch.float64)
        padded[:rows, :cols] = x
        amax = padded.reshape(pr // tr, tr, pc // tc, tc).abs().amax(dim=(1, 3))
        scale = torch.clamp(amax / FP8_MAX[inputs["fmt"]], min=SCALE_FLOOR)
        return torch.cat([x.reshape(-1), scale.reshape(-1)])

    def output_dtype(self, dtype: str) -> torch.dtype:
        return torch.float32

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return Tolerance(
            0.0,
            0.0,
            f"componentwise: a value may differ from its input by one rounding to {dtype} "
            f"(u = 2^-{round(-math.log2(unit_roundoff(dtype)))}) of x / scale, after float32's, or by "
            "half a subnormal spacing times the scale; a scale by float32 roundings (OCP OFP8 Rev. 1.0; "
            f"DeepSeek-V3 s3.3.2 tiles {self.tile[0]}x{self.tile[1]}; {HIGHAM} s2.2)",
        )

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor:
        x = inputs["x"]
        u8 = unit_roundoff(dtype)
        info = torch.finfo(torch_dtype(dtype))
        half_subnormal = float(info.smallest_normal * info.eps) / 2
        scale = self.reference(inputs)[x.numel() :]
        grid = (_sizes_for(x.shape[0], self.tile[0]), _sizes_for(x.shape[1], self.tile[1]))
        per_value = _expand(scale.reshape(grid), tuple(x.shape), self.tile)
        # Rounding x / s to float32 then to FP8 (double rounding: u8 + u32), the scale's own float32
        # rounding carried through the product, and the float32 output's rounding.
        values = (u8 + 4 * U32) * x.abs() + half_subnormal * per_value * (1 + 4 * U32)
        return torch.cat([values.reshape(-1), 2 * U32 * scale])

    def flops(self, case: Case) -> int:
        return 3 * case["M"] * case["K"]

    def bytes(self, case: Case, dtype: str = "float8_e4m3fn") -> int:
        m, k = case["M"], case["K"]
        return 2 * m * k + m * k + 4 * _sizes_for(m, self.tile[0]) * _sizes_for(k, self.tile[1])


# DeepSeek-V3 (config_671B.json): hidden 7168, MoE expert intermediate 2048, dense intermediate
# 18432, q LoRA rank 1536, KV LoRA rank 512 + 64 RoPE dims. Reductions keep the real K; the other
# sides are trimmed where the float64 reference would be too slow for the one-minute budget.
DSV3_HIDDEN = Span(6144, 7168, 128)
DSV3_EXPERT_INTER = Span(1536, 2560, 128)

ACT_QUANT = Fp8BlockQuantKernel(
    "fp8_act_quant",
    "per-token 1x128 FP8 quantization of activations: scales max|x|/fmax and x/scale in FP8",
    (1, BLOCK),
    (
        Case("dsv3_hidden_decode", {"M": Span(1, 4), "K": DSV3_HIDDEN}),
        Case("dsv3_expert_prefill", {"M": Span(24, 48), "K": DSV3_EXPERT_INTER}),
        Case("odd_tokens", {"M": Span(3, 37, odd=True), "K": Span(256, 1024, 128)}, edge="odd_size"),
        Case("zero_tile", {"M": Span(2, 8), "K": Span(256, 512, 128)}, options={"zero_block": True}),
        Case("wide_outliers", {"M": Span(8, 24), "K": Span(512, 1024, 128)}, options={"spread": 20}),
        Case("empty_m0", {"M": 0, "K": Span(128, 512, 128)}, edge="empty"),
        # Each tile's maximum has a full significand: x / scale of it is a rounding off fmax, which the
        # quantizer must saturate to fmax (448 for E4M3) rather than overflow.
        Case(
            "saturating_tile_max", {"M": Span(4, 12), "K": Span(256, 768, 128)}, options={"extremes": "max"}
        ),
        # One large value per tile, the rest quantize to subnormal FP8 codes.
        Case(
            "subnormal_codes",
            {"M": Span(2, 8), "K": Span(256, 512, 128)},
            edge="subnormal",
            options={"extremes": "subnormal"},
        ),
    ),
)
WEIGHT_QUANT = Fp8BlockQuantKernel(
    "fp8_weight_quant",
    "128x128 block FP8 quantization of a weight: scales max|W|/fmax per block and W/scale in FP8",
    (BLOCK, BLOCK),
    (
        Case("dsv3_expert_down", {"M": Span(128, 256, 128), "K": Span(256, 512, 128)}),
        Case(
            "partial_blocks", {"M": Span(129, 255, odd=True), "K": Span(129, 255, odd=True)}, edge="odd_size"
        ),
        Case(
            "zero_block", {"M": Span(128, 256, 128), "K": Span(256, 384, 128)}, options={"zero_block": True}
        ),
        Case(
            "saturating_block_max",
            {"M": Span(128, 256, 128), "K": Span(128, 256, 128)},
            options={"extremes": "max"},
        ),
        Case(
            "subnormal_codes",
            {"M": Span(128, 192, 64), "K": Span(128, 256, 128)},
            edge="subnormal",
            options={"extremes": "subnormal"},
        ),
    ),
)


class Fp8BlockGemmKernel(Kernel):
    """out = sum over K blocks of (A_q[:, kb] B_q[:, kb]^T) * a_scale[:, kb] * b_scale[nb, kb], float32.

    A (M x K) in the case's FP8 format with one scale per 1x128 tile; B (N x K) in E4M3 with one scale
    per 128x128 block (DeepSeek-V3's weights are E4M3; E5M2 activations pair with them because FP8
    tensor cores do not take E5M2 on both sides). Within each `promotion` interval (<= 128, dividing
    128, so one interval never straddles two scales) the device's FP8 product is used; the partial
    sums are promoted to float32 with the scales applied, as DeepSeek-V3's fp8_gemm does.
    """

    name = "fp8_block_gemm"
    description = "DeepSeek-V3 FP8 GEMM: 1x128 activation and 128x128 weight scales, float32 promotion"
    dtypes = FP8_FORMATS
    # _scaled_mm on CUDA wants K and N multiples of 16; N need not be one of 128 (a partial block).
    cases = (
        Case("dsv3_expert_down_decode", {"M": Span(1, 8), "K": DSV3_EXPERT_INTER, "N": Span(128, 256, 128)}),
        Case("dsv3_qkv_a_decode", {"M": Span(1, 4), "K": DSV3_HIDDEN, "N": Span(64, 128, 64)}),
        Case("short_prefill", {"M": Span(48, 80), "K": Span(512, 1024, 128), "N": Span(128, 256, 128)}),
        Case(
            "partial_weight_block",
            {"M": Span(9, 33, odd=True), "K": Span(256, 640, 128), "N": Span(144, 368, 16)},
            edge="odd_size",
        ),
        Case(
            "promotion_64",
            {"M": Span(8, 24), "K": Span(1024, 2048, 128), "N": Span(64, 128, 16)},
            options={"promotion": 64},
        ),
        Case(
            "long_reduction",
            {"M": Span(2, 6), "K": Span(16384, 20480, 128), "N": Span(16, 32, 16)},
            edge="long_reduction",
        ),
        Case("empty_m0", {"M": 0, "K": Span(128, 512, 128), "N": Span(16, 64, 16)}, edge="empty"),
        # Every code at +-fmax (448 x 448 = 200704 per E4M3 product): the partial sums pass 2^24 within
        # one promotion interval, where the narrow inner accumulator rounds most.
        Case(
            "format_max_codes",
            {"M": Span(4, 12), "K": Span(512, 1024, 128), "N": Span(32, 64, 16)},
            options={"codes": "max"},
        ),
        # Whole activation tiles and weight blocks of zeros: their scales are the floor, their products 0.
        Case(
            "zero_tiles_and_blocks",
            {"M": Span(4, 12), "K": Span(384, 768, 128), "N": Span(128, 256, 128)},
            options={"codes": "zero_blocks"},
        ),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        m, k, n = case["M"], case["K"], case["N"]
        codes = case.options.get("codes")
        if codes == "max":
            # Random signs times per-tile powers of two: every element is its tile's max |x|.
            x = torch.where(torch.rand((m, k), generator=g) < 0.5, -1.0, 1.0) * _magnitudes(
                (m, k), g, 6, (1, BLOCK)
            )
            w = torch.where(torch.rand((n, k), generator=g) < 0.5, -1.0, 1.0) * _magnitudes(
                (n, k), g, 4, (BLOCK, BLOCK)
            )
        elif codes == "zero_blocks":
            x = torch.randn((m, k), generator=g)
            w = torch.randn((n, k), generator=g)
            x[:, :BLOCK] = 0.0  # every row's first activation tile
            if m:
                x[0, BLOCK : 2 * BLOCK] = 0.0
            w[:BLOCK, BLOCK : 2 * BLOCK] = 0.0  # one weight block
        elif case.edge == "long_reduction":
            # Positive terms: a running sum kept in ~14 bits stagnates, so a device that does not
            # promote cannot hide behind cancellation (DeepSeek-V3 s3.3.2's failure mode).
            x = torch.rand((m, k), generator=g)
            w = torch.rand((n, k), generator=g)
        else:
            x = torch.randn((m, k), generator=g) * _magnitudes((m, k), g, 6, (1, BLOCK))
            w = torch.randn((n, k), generator=g) * _magnitudes((n, k), g, 4, (BLOCK, BLOCK))
        a, a_scale = block_quantize(x, dtype, (1, BLOCK))
        b, b_scale = block_quantize(w, "float8_e4m3fn", (BLOCK, BLOCK))
        return {
            "a": a,
            "a_scale": a_scale,
            "b": b,
            "b_scale": b_scale,
            "promotion": int(case.options.get("promotion", BLOCK)),
        }

    def run(self, inputs: Inputs) -> torch.Tensor:
        a, b = inputs["a"], inputs["b"]
        a_scale, b_scale, step = inputs["a_scale"], inputs["b_scale"], inputs["promotion"]
        return block_scaled_gemm(a, a_scale, b, row_scales(b_scale, b.shape[0]), step=step)

    def reference(self, inputs: Inputs) -> torch.Tensor:
        a, b = self.dequantized(inputs)
        return a @ b.t()

    @staticmethod
    def dequantized(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = inputs["a"], inputs["b"]
        a_full = a * _expand(inputs["a_scale"], (a.shape[0], a.shape[1]), (1, BLOCK))
        b_full = b * _expand(inputs["b_scale"], (b.shape[0], b.shape[1]), (BLOCK, BLOCK))
        return a_full, b_full

    def output_dtype(self, dtype: str) -> torch.dtype:
        return torch.float32

    def factor(self, case: Case) -> float:
        """The bound's multiple of |A_deq||B_deq|: the inner partial sums (narrow), the float32
        promotion chain (two scale products and one addition per interval), the float64 reference."""
        step = int(case.options.get("promotion", BLOCK))
        k = case["K"]
        return gamma(step, FP8_INNER_ACCUMULATOR_U) + gamma(-(-k // step) + 2, U32) + gamma(k, U64)

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        step = int(case.options.get("promotion", BLOCK))
        return Tolerance(
            0.0,
            2 * U32 / (1 - U32),
            f"componentwise |out - ref| <= (gamma_P(2^-13) + gamma_(K/P + 2)(2^-24) + gamma_K(2^-53)) "
            f"|A_deq||B_deq| + 2u32 |ref| with P = {step} (promotion interval), K = {case['K']}: FP8 "
            f"products are exact in float32 (4x4 significand bits); {FP8_SOURCE}",
        )

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor:
        a, b = self.dequantized(inputs)
        magnitude = abs32(a) @ abs32(b).t()
        factor = self.factor(case) / max(1.0 - gamma(case["K"], U32), 1e-300)
        return magnitude.to(torch.float64) * factor

    def flops(self, case: Case) -> int:
        return 2 * case["M"] * case["K"] * case["N"]

    def bytes(self, case: Case, dtype: str = "float8_e4m3fn") -> int:
        m, k, n = case["M"], case["K"], case["N"]
        return m * k + n * k + 4 * (m * _sizes(k) + _sizes(n) * _sizes(k)) + 4 * m * n


def fp8_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b^T for FP8 operands, float32 out, on the device's FP8 GEMM (torch._scaled_mm, unit scales).

    The CPU has no FP8 units and its _scaled_mm is a slow scalar loop, so there the operands are
    widened to float32, which holds every FP8 product exactly: what an FP8 GEMM without narrow
    accumulation computes."""
    if a.device.type == "cpu":
        return a.to(torch.float32) @ b.to(torch.float32).t()
    one = torch.ones((), dtype=torch.float32, device=a.device)
    return torch._scaled_mm(
        a.contiguous(), b.contiguous().t(), scale_a=one, scale_b=one, out_dtype=torch.float32
    )


Fp8Product = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class QuantizedLinear(Protocol):
    """A weight kept quantized that computes its own GEMM: ``linear(x)`` is x W^T in x's dtype."""

    def linear(self, x: torch.Tensor) -> torch.Tensor: ...


Weight = Union[torch.Tensor, QuantizedLinear]  # noqa: UP007 - a runtime alias


def project(x: torch.Tensor, w: Weight) -> torch.Tensor:
    """x W^T: a plain matmul for a dense weight, the weight's own GEMM for a quantized one."""
    return x @ w.t() if isinstance(w, torch.Tensor) else w.linear(x)


def row_scales(block_scale: torch.Tensor, rows: int) -> torch.Tensor:
    """A weight's (ceil(N/128), ceil(K/128)) block scales as one row of K-block scales per output row
    (N, ceil(K/128)): rows of a weight can then be sliced or stacked (experts' gate and up) freely."""
    return block_scale.repeat_interleave(BLOCK, dim=0)[:rows]


def block_scaled_gemm(
    a: torch.Tensor,
    a_scale: torch.Tensor,
    b: torch.Tensor,
    b_row_scale: torch.Tensor,
    *,
    step: int = BLOCK,
    product: Fp8Product = fp8_product,
) -> torch.Tensor:
    """DeepSeek-V3's fp8_gemm, the one home of the block-scaled FP8 GEMM (the catalog's
    fp8_block_gemm and the DeepSeek decoder's FP8 path): a (M, K) FP8 with one float32 scale per
    1x128 tile ``a_scale`` (M, ceil(K/128)), b (N, K) FP8 with each row's 128-wide K-block scales
    ``b_row_scale`` (N, ceil(K/128), ``row_scales``). The K axis is cut into ``step``-wide slices
    (a divisor of 128, so no slice straddles two scales); each slice's FP8 product (``product``, the
    device's FP8 GEMM) is promoted to float32 with both scales applied and added in float32."""
    m, k = a.shape
    out = torch.zeros(m, b.shape[0], dtype=torch.float32, device=a.device)
    for start in range(0, k, step):
        block = start // BLOCK
        partial = product(a[:, start : start + step], b[:, start : start + step])
        out += partial * a_scale[:, block : block + 1] * b_row_scale[:, block].unsqueeze(0)
    return out


def act_quant(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeek-V3's act_quant on a 2-D activation: E4M3 codes and one float32 scale per 1x128 tile
    (max|x| / 448, the catalog's ``block_quantize``)."""
    return block_quantize(x, "float8_e4m3fn", (1, BLOCK))


class W8A8Int8GemmKernel(Kernel):
    """out = (A_q B_q^T as int32) * a_scale[m] * w_scale[n] in float32: per-token activation scales,
    per-output-channel weight scales (SmoothQuant W8A8)."""

    name = "w8a8_int8_gemm"
    description = "int8 x int8 GEMM, int32 accumulation, per-token and per-channel float32 scales"
    dtypes = ("int8",)
    # torch._int_mm on CUDA needs M > 16 and K, N multiples of 8.
    cases = (
        Case(
            "llama_qproj_few_rows",
            {"M": Span(24, 40, 8), "K": Span(3072, 5120, 128), "N": Span(128, 256, 64)},
        ),
        Case("dsv3_expert_prefill", {"M": Span(96, 160, 8), "K": DSV3_EXPERT_INTER, "N": Span(64, 128, 64)}),
        Case(
            "odd_tokens",
            {"M": Span(17, 49, odd=True), "K": Span(256, 512, 8), "N": Span(40, 88, 8)},
            edge="odd_size",
        ),
        Case(
            "long_reduction",
            {"M": Span(24, 40, 8), "K": Span(16384, 20480, 64), "N": Span(16, 32, 8)},
            edge="long_reduction",
        ),
        # SmoothQuant's quantizer writes -127..127, but an int8 GEMM takes any int8: -128 included.
        Case(
            "most_negative_codes",
            {"M": Span(24, 48, 8), "K": Span(1024, 2048, 128), "N": Span(64, 128, 64)},
            options={"minus_128": True},
        ),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        m, k, n = case["M"], case["K"], case["N"]
        if case.options.get("minus_128"):
            # Half the codes -128, the rest the full range: -128 has no positive twin in int8, so a
            # kernel that negates or takes |q| in int8 (or clamps to the symmetric -127..127) is wrong.
            a = torch.randint(-128, 128, (m, k), generator=g, dtype=torch.int8)
            b = torch.randint(-128, 128, (n, k), generator=g, dtype=torch.int8)
            a[torch.rand((m, k), generator=g) < 0.5] = -128
            b[torch.rand((n, k), generator=g) < 0.5] = -128
        elif case.edge == "long_reduction":
            # Near-extreme positive codes: the int32 sum passes 2^24, beyond float32's integers.
            a = (127 - torch.randint(0, 4, (m, k), generator=g)).to(torch.int8)
            b = (127 - torch.randint(0, 4, (n, k), generator=g)).to(torch.int8)
        else:
            a = torch.randint(-127, 128, (m, k), generator=g, dtype=torch.int8)
            b = torch.randint(-127, 128, (n, k), generator=g, dtype=torch.int8)
        # Tokens differ in magnitude by up to 2^8 (why per-token scales exist), channels less.
        a_scale = torch.exp2(torch.randint(-12, -3, (m, 1), generator=g).to(torch.float32))
        a_scale = a_scale * (1 + torch.rand((m, 1), generator=g))
        w_scale = (0.5 + torch.rand((1, n), generator=g)) * 2.0**-7
        return {"a": a, "b": b, "a_scale": a_scale, "w_scale": w_scale}

    def run(self, inputs: Inputs) -> torch.Tensor:
        acc = torch._int_mm(inputs["a"], inputs["b"].t())
        return acc.to(torch.float32) * inputs["a_scale"] * inputs["w_scale"]

    def reference(self, inputs: Inputs) -> torch.Tensor:
        exact = inputs["a"].double() @ inputs["b"].double().t()  # integer sums < 2^53: exact
        return exact * inputs["a_scale"].double() * inputs["w_scale"].double()

    def output_dtype(self, dtype: str) -> torch.dtype:
        return torch.float32

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return Tolerance(
            0.0,
            gamma(4, U32),
            "the int32 accumulation is exact; the int32 -> float32 conversion, two scale products and "
            f"the float32 output round four times at most: gamma_4(2^-24) |ref| ({HIGHAM} s3.1)",
        )

    def flops(self, case: Case) -> int:
        return 2 * case["M"] * case["K"] * case["N"]

    def bytes(self, case: Case, dtype: str = "int8") -> int:
        m, k, n = case["M"], case["K"], case["N"]
        return m * k + n * k + 4 * (m + n) + 4 * m * n


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Two's-complement int4 values (int64 or int8 in [-8, 7], last dim even) packed two per uint8:
    element 2j in the low nibble of byte j, element 2j+1 in its high nibble."""
    nibbles = (q.to(torch.int64) & 0xF).reshape(*q.shape[:-1], -1, 2)
    return (nibbles[..., 0] | (nibbles[..., 1] << 4)).to(torch.uint8)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """The inverse of pack_int4, as int8 values in [-8, 7]."""
    wide = packed.to(torch.int16)
    low, high = wide & 0xF, (wide >> 4) & 0xF
    pairs = torch.stack([low, high], dim=-1).reshape(*packed.shape[:-1], -1)
    return ((pairs ^ 8) - 8).to(torch.int8)


class Int4WeightOnlyGemmKernel(Kernel):
    """y = x @ (q * s)^T: int4 weights packed two per byte, one scale per 128 weights of a row, the
    activations and scales in the case's dtype; the device dequantizes and multiplies."""

    name = "int4_weight_only_gemm"
    description = "int4 weight-only GEMM, group size 128, packed two int4 per byte, dequantized on device"
    dtypes = ("bfloat16", "float16", "float32")
    group = BLOCK
    cases = (
        Case("llama_qproj_decode", {"M": Span(1, 4), "K": Span(3072, 5120, 128), "N": Span(64, 128, 64)}),
        Case("short_prefill", {"M": Span(48, 80), "K": Span(512, 1024, 128), "N": Span(128, 192, 64)}),
        Case(
            "odd_tokens",
            {"M": Span(3, 37, odd=True), "K": Span(256, 640, 128), "N": Span(33, 97, odd=True)},
            edge="odd_size",
        ),
        Case(
            "long_reduction",
            {"M": Span(2, 4), "K": Span(16384, 20480, 128), "N": Span(8, 16)},
            edge="long_reduction",
        ),
        # Only the two ends of int4, -8 (nibble 0x8, no positive twin: sign extension, not |q|) and 7.
        # K stays a multiple of the group: a partial last group is not in the format (GPTQ / AWQ
        # checkpoints and vLLM's Marlin kernels require K divisible by the group size).
        Case(
            "extreme_codes",
            {"M": Span(4, 12), "K": Span(512, 1024, 128), "N": Span(64, 128, 64)},
            options={"extreme_codes": True},
        ),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        m, k, n = case["M"], case["K"], case["N"]
        if case.options.get("extreme_codes"):
            x = torch.randn((m, k), generator=g).to(torch_dtype(dtype))
            q = torch.where(torch.rand((n, k), generator=g) < 0.5, -8, 7)
        elif case.edge == "long_reduction":
            x = torch.rand((m, k), generator=g).to(torch_dtype(dtype))
            q = torch.randint(0, 8, (n, k), generator=g)
        else:
            x = torch.randn((m, k), generator=g).to(torch_dtype(dtype))
            q = torch.randint(-8, 8, (n, k), generator=g)
        scale = ((0.5 + torch.rand((n, k // self.group), generator=g)) / 8).to(torch_dtype(dtype))
        return {"x": x, "packed": pack_int4(q), "scale": scale}

    def run(self, inputs: Inputs) -> torch.Tensor:
        x, scale = inputs["x"], inputs["scale"]
        q = unpack_int4(inputs["packed"]).to(x.dtype)
        weight = q * scale.repeat_interleave(self.group, dim=1)
        return x @ weight.t()

    def dequantized(self, inputs: Inputs) -> torch.Tensor:
        packed = inputs["packed"]
        low, high = packed & 0xF, (packed >> 4) & 0xF
        q = torch.stack([low, high], dim=-1).reshape(packed.shape[0], -1)
        q = torch.where(q >= 8, q - 16, q).to(torch.float64)
        return q * inputs["scale"].repeat_interleave(self.group, dim=1)

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return inputs["x"] @ self.dequantized(inputs).t()

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        tolerance = accumulation_tolerance(dtype, case["K"] + 1, "|x||q s|^T")
        return Tolerance(
            tolerance.atol,
            tolerance.rtol,
            tolerance.source + f"; plus one rounding of each dequantized weight q*s to {dtype} (k + 1 terms)",
        )

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor:
        magnitude = abs32(inputs["x"]) @ abs32(self.dequantized(inputs)).t()
        # The weight's rounding to `dtype` multiplies each product by (1 + d), |d| <= u: one more
        # term in the chain of roundings, bounded with the output dtype's u (>= u32).
        extra = magnitude.to(torch.float64) * unit_roundoff(dtype) * (1 + 2 * unit_roundoff(dtype))
        return accumulation_bound(magnitude, case["K"] + 1, dtype) + extra

    def flops(self, case: Case) -> int:
        return 2 * case["M"] * case["K"] * case["N"] + 2 * case["N"] * case["K"]

    def bytes(self, case: Case, dtype: str = "bfloat16") -> int:
        m, k, n = case["M"], case["K"], case["N"]
        size = element_size(dtype)
        return size * m * k + n * k // 2 + size * n * (k // self.group) + size * m * n


class Fp8WeightDequantKernel(Kernel):
    """W = W_q * scale per 128x128 block, to bfloat16: DeepSeek-V3's weight_dequant, which turns an FP8
    checkpoint into the bfloat16 weights of a stack without FP8 GEMMs."""

    name = "fp8_weight_dequant"
    description = "128x128 block-scaled FP8 weight to bfloat16 (DeepSeek-V3 weight_dequant)"
    dtypes = FP8_FORMATS
    cases = (
        Case("dsv3_expert_up", {"N": Span(128, 256, 128), "K": Span(256, 512, 128)}),
        Case(
            "partial_blocks", {"N": Span(129, 255, odd=True), "K": Span(129, 255, odd=True)}, edge="odd_size"
        ),
        Case("empty_n0", {"N": 0, "K": Span(128, 256, 128)}, edge="empty"),
        # Codes at +-fmax and subnormal codes in every block: both ends of the format, dequantized.
        Case(
            "subnormal_and_max_codes",
            {"N": Span(128, 192, 64), "K": Span(128, 256, 128)},
            edge="subnormal",
            options={"extremes": "subnormal"},
        ),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        shape = (case["N"], case["K"])
        w = torch.randn(shape, generator=g) * _magnitudes(shape, g, 8, (BLOCK, BLOCK))
        if case.options.get("extremes"):
            w = _tile_extremes(w, (BLOCK, BLOCK), g, dtype, case.options["extremes"])
        values, scale = block_quantize(w, dtype, (BLOCK, BLOCK))
        return {"w": values, "scale": scale}

    def run(self, inputs: Inputs) -> torch.Tensor:
        w = inputs["w"]
        per_value = inputs["scale"].repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1)
        return (w.to(torch.float32) * per_value[: w.shape[0], : w.shape[1]]).to(torch.bfloat16)

    def reference(self, inputs: Inputs) -> torch.Tensor:
        w = inputs["w"]
        return w * _expand(inputs["scale"], (w.shape[0], w.shape[1]), (BLOCK, BLOCK))

    def output_dtype(self, dtype: str) -> torch.dtype:
        return torch.bfloat16

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        u = unit_roundoff("bfloat16")
        return Tolerance(
            subnormal_ulp("bfloat16"),
            2 * u / (1 - u) + 2 * U32,
            "one product, rounded to float32 then to bfloat16 on the device and once to bfloat16 in the "
            f"reference: 2u/(1 - u) + 2u32 |ref| with u = 2^-8 ({HIGHAM} s2.2); DeepSeek-V3 inference/kernel.py "
            "weight_dequant semantics",
        )

    def flops(self, case: Case) -> int:
        return case["N"] * case["K"]

    def bytes(self, case: Case, dtype: str = "float8_e4m3fn") -> int:
        n, k = case["N"], case["K"]
        return n * k + 4 * _sizes(n) * _sizes(k) + 2 * n * k


INT8_MAX = 127  # symmetric int8 codes, -127..127 (SmoothQuant; vLLM's scaled_int8_quant)


class Int8PerTokenQuantKernel(Kernel):
    """The W8A8 quantize step: per token (row), scale = max|x| / 127 in float32 and q = round(x / scale)
    clamped to [-127, 127]; compared as the dequantized values followed by the scales, float32."""

    name = "int8_per_token_quant"
    description = "dynamic per-token int8 quantization of activations: scale max|x|/127, round half to even"
    dtypes = ("bfloat16", "float16", "float32")
    cases = (
        Case("llama_hidden_decode", {"M": Span(1, 4), "K": Span(3072, 5120, 128)}),
        Case("prefill_tokens", {"M": Span(24, 48), "K": Span(1024, 2048, 128)}),
        Case("odd_sizes", {"M": Span(3, 11, odd=True), "K": Span(901, 1101, odd=True)}, edge="odd_size"),
        Case("zero_token", {"M": Span(2, 6), "K": Span(256, 512, 128)}, options={"zero_block": True}),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        shape = (case["M"], case["K"])
        x = torch.randn(shape, generator=g) * _magnitudes(shape, g, 6, (1, shape[1] or 1))
        if case.options.get("zero_block"):
            x[0] = 0.0
        return {"x": x.to(torch_dtype(dtype))}

    def run(self, inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
        x = inputs["x"].to(torch.float32)
        scale = torch.clamp(x.abs().amax(dim=-1, keepdim=True) / INT8_MAX, min=SCALE_FLOOR)
        q = torch.round(x / scale).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
        return q, scale

    def comparable(self, output: tuple[torch.Tensor, torch.Tensor], inputs: Inputs) -> torch.Tensor:
        q, scale = output
        dequantized = q.to(torch.float64) * scale.to(torch.float64)
        return torch.cat([dequantized.reshape(-1), scale.to(torch.float64).reshape(-1)]).to(torch.float32)

    def _scale(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x.abs().amax(dim=-1, keepdim=True) / INT8_MAX, min=SCALE_FLOOR)

    def reference(self, inputs: Inputs) -> torch.Tensor:
        x = inputs["x"]
        return torch.cat([x.reshape(-1), self._scale(x).reshape(-1)])

    def output_dtype(self, dtype: str) -> torch.dtype:
        return torch.float32

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return Tolerance(
            0.0,
            0.0,
            "componentwise: a value within half a quantization step (scale / 2) of its input, plus float32 "
            "roundings of x / scale, of the scale and of the output; a scale within 2u32 of max|x| / 127 "
            f"(SmoothQuant per-token dynamic quantization; {HIGHAM} s2.2)",
        )

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor:
        x = inputs["x"]
        scale = self._scale(x)
        values = (0.5 + INT8_MAX * 4 * U32) * scale.expand_as(x) + 2 * U32 * x.abs()
        return torch.cat([values.reshape(-1), 2 * U32 * scale.reshape(-1)])

    def flops(self, case: Case) -> int:
        return 3 * case["M"] * case["K"]

    def bytes(self, case: Case, dtype: str = "bfloat16") -> int:
        m, k = case["M"], case["K"]
        return element_size(dtype) * m * k + m * k + 4 * m


KERNELS: tuple[Kernel, ...] = (
    ACT_QUANT,
    WEIGHT_QUANT,
    Fp8WeightDequantKernel(),
    Fp8BlockGemmKernel(),
    Int8PerTokenQuantKernel(),
    W8A8Int8GemmKernel(),
    Int4WeightOnlyGemmKernel(),
)

__all__ = ["KERNELS", "Derived", "block_quantize", "pack_int4", "unpack_int4"]
