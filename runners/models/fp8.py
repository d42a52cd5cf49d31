"""DeepSeek-V3's FP8 checkpoint format: E4M3 weights with one float32 scale per 128x128 block.

Sources: deepseek-ai/DeepSeek-V3 README_WEIGHTS.md ("FP8 Weight Documentation": format e4m3,
``weight_block_size`` [128, 128], a ``weight_scale_inv`` float32 tensor stored beside each FP8 weight,
a block not aligned to 128 zero-padded before its scale is computed, dequantization "(128x128 weight
block) * weight_scale_inv") and inference/fp8_cast_bf16.py / kernel.py ``weight_dequant`` (an FP8 weight
is any 1-byte tensor with a ``<name>_scale_inv`` beside it; y = x.float() * s per block, stored in the
default dtype, bfloat16). Which weights are FP8 follows the released checkpoint: every linear projection
of attention (q_a_proj, q_b_proj, kv_a_proj_with_mqa, kv_b_proj, o_proj) and of the feed-forward layers
(the dense MLP, every routed expert, the shared experts); the embedding, the output head, the norms,
the router (mlp.gate) and the MTP module's eh_proj stay in higher precision.

A file holds for each FP8 weight ``<name>`` (float8_e4m3fn, the weight's shape) and
``<name>_scale_inv`` (float32, (ceil(N/128), ceil(K/128))). The runner keeps the codes and scales as
read (``Fp8Checkpoint``); the float64 reference dequantizes them exactly (an E4M3 code times a float32
scale fits a float64 significand), the host copy in float32 as DeepSeek's weight_dequant does. How a
run computes with them is recorded (``path``):

- BLOCK_SCALED in bfloat16 runs (``BLOCK_SCALED_DTYPE``) where the backend's FP8 GEMM passed its
  probe (runners/backends/base.py ``Backend.fp8_gemm``): every FP8 weight stays E4M3 codes with its
  block scales (``Fp8Weight``), the activations are quantized per 1x128 tile to E4M3 (DeepSeek-V3 inference/kernel.py act_quant, scale
  max|x| / 448) and each GEMM is DeepSeek's fp8_gemm (the catalog's ``block_scaled_gemm``: per 128-wide
  K slice, the slice's FP8 product promoted to float32 with both scales applied), written in bfloat16.
  MLA's absorbed decode multiplies kv_b_proj directly; its two products go through the same GEMM
  (``Fp8Weight.absorb_uk`` / ``absorb_uv``). What computed the products is recorded beside the path
  (``products``): on this CPU, which has no FP8 units, each product is exact in float32 and the slice
  summed in float32; on a device, its FP8 GEMM.
- DEQUANTIZED otherwise (and in float32 and float16 runs): the weights dequantized to the run's dtype
  (DeepSeek's ``gemm_impl == "bf16"``); no FP8 computation is claimed for it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from runners.catalog.quantized import (
    BLOCK,
    Fp8Product,
    act_quant,
    block_quantize,
    block_scaled_gemm,
    row_scales,
)

FP8_FORMAT = "float8_e4m3fn"
SCALE_SUFFIX = "_scale_inv"
# The linear weights DeepSeek-V3's released checkpoint stores in FP8 (README_WEIGHTS.md; its
# model.safetensors.index.json lists a weight_scale_inv for exactly these).
_FP8_WEIGHT = re.compile(
    r"^model\.layers\.\d+\.(self_attn\.(q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj|o_proj)"
    r"|mlp\.(experts\.\d+\.|shared_experts\.)?(gate_proj|up_proj|down_proj))\.weight$"
)
DEQUANTIZED = "dequantized"
BLOCK_SCALED = "block_scaled_fp8"
# The run dtype the BLOCK_SCALED path computes in: DeepSeek-V3 serves FP8 with bfloat16 between its FP8
# GEMMs (arXiv:2412.19437 s3.3.1; inference/model.py sets the default dtype to bfloat16 and fp8_gemm
# writes it). A float32 or float16 run of an FP8 checkpoint measures that dtype's arithmetic on the
# dequantized weights, so its accuracy still means what the dtype's bar says.
BLOCK_SCALED_DTYPE = "bfloat16"
FP8_PATH_NOTE = {
    DEQUANTIZED: (
        "FP8 weights dequantized per 128x128 block (float32 code x weight_scale_inv, then the run's "
        "dtype: DeepSeek-V3 inference/kernel.py weight_dequant) before every GEMM: no FP8 computation ran"
    ),
    BLOCK_SCALED: (
        "every FP8 weight kept as E4M3 codes with its 128x128 block scales; activations quantized to E4M3 "
        "per 1x128 tile (scale max|x|/448: DeepSeek-V3 inference/kernel.py act_quant); each GEMM computed "
        "per 128-wide K slice, the slice's FP8 product promoted to float32 with both scales applied "
        "(DeepSeek-V3 fp8_gemm), written in bfloat16; MLA's absorbed kv_b_proj products included"
    ),
}
# What computed the FP8 products on the BLOCK_SCALED path (runners/backends/base.py Fp8Gemm.kind).
FLOAT32_WIDENING = "float32_widening"
DEVICE_FP8_GEMM = "device_fp8_gemm"
FP8_PRODUCTS_NOTE = {
    FLOAT32_WIDENING: (
        "the device has no FP8 units (this CPU): the E4M3 codes widened to float32, where every FP8 "
        "product is exact, and each 128-wide slice summed in float32; the FP8 quantization and block "
        "scaling semantics ran, FP8 arithmetic units did not"
    ),
    DEVICE_FP8_GEMM: (
        "the backend's FP8 GEMM (torch._scaled_mm with unit scales unless its plugin supplies one) on "
        "each 128-wide K slice, which passed the runner's exactness probe"
    ),
}


def is_fp8_weight(name: str) -> bool:
    return bool(_FP8_WEIGHT.match(name))


def scale_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    rows, cols = shape
    return math.ceil(rows / BLOCK), math.ceil(cols / BLOCK)


def expand_scale(scale: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """One scale per 128x128 block, repeated over its block and cut to ``shape`` (partial last blocks)."""
    rows, cols = shape
    return scale.repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1)[:rows, :cols]


def quantize_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors with every FP8 weight quantized as DeepSeek-V3 ships it: E4M3 codes per
    128x128 block (scale = max|w| / 448, the catalog's ``block_quantize``) and ``<name>_scale_inv``."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if is_fp8_weight(name):
            codes, scale = block_quantize(tensor.detach().to(torch.float32), FP8_FORMAT, (BLOCK, BLOCK))
            out[name], out[name + SCALE_SUFFIX] = codes.contiguous(), scale.contiguous()
        else:
            out[name] = tensor
    return out


# The FP8 test model (runners/model_suite ``deepseek_tiny_fp8_model``; AIA 1.3's FP8 bar is measured on
# it): the tiny decoder's random weights have no outlier activations and no reduction longer than 512, so
# a per-tensor activation scale and a missing float32 promotion stayed inside honest FP8's spread there
# (bench/evidence/cpu-2026-12-01-fp8). Two things of real models are put back. (1) The dense layer's
# feed-forward width is 2048 (``DeepseekV3Config.small_fp8``), so its down_proj reduces over K = 2048:
# DeepSeek-V3 promotes to float32 because the FP8 tensor core's limited accumulation grows with K
# (arXiv:2412.19437 s3.3.2: "a maximum relative error of nearly 2%" at K = 4096). (2) Outlier channels in
# that reduction's input (``plant_activation_outliers``): a pair of the dense layer's intermediate
# channels OUTLIER_GAIN / INLIER_SCALE (2^17) times the others, as the massive activations of real LLMs
# are (Sun et al., "Massive Activations in Large Language Models", 2024; Dettmers et al., LLM.int8(),
# 2022), which is why DeepSeek-V3 scales activations per 1x128 tile. The pair sits at the two ends of K
# (channels 0 and 2047, two different 1x128 tiles whose other channels the outlier rows' weight blocks
# leave at or near zero) and cancels: a per-tensor activation scale flushes every other tile's values,
# and a GEMM without promotion carries the first's product through 2046 additions. The float64 function
# of the other channels is unchanged (their up_proj rows times INLIER_SCALE, down_proj columns divided).
OUTLIER_LAYER = 0
OUTLIER_CHANNELS = (0, 2047)
OUTLIER_GAIN = 2.0**10
INLIER_SCALE = 2.0**-7


def _equal_block_scales(w: torch.Tensor, first: int, second: int) -> None:
    """In place: rows ``first`` and ``second`` of ``w`` lie in 128x128 blocks whose largest |w| is made
    the same in every block column (one weight of the block that lacks it, the row next to the pair's,
    set to the other's largest), so both rows' blocks get the same scale."""
    for col in range(0, w.shape[1], BLOCK):
        cols = slice(col, col + BLOCK)
        blocks = [slice(r - r % BLOCK, r - r % BLOCK + BLOCK) for r in (first, second)]
        tops = [float(w[b, cols].abs().max()) for b in blocks]
        if tops[0] == tops[1]:
            continue
        w[first + 1 if tops[0] < tops[1] else second - 1, col] = max(tops)


def plant_activation_outliers(
    state: dict[str, torch.Tensor],
    *,
    layer: int = OUTLIER_LAYER,
    channels: tuple[int, int] = OUTLIER_CHANNELS,
    gain: float = OUTLIER_GAIN,
    inlier: float = INLIER_SCALE,
) -> dict[str, torch.Tensor]:
    """``state`` with an outlier channel pair in the input of layer ``layer``'s dense down_proj (see
    above): the pair's gate_proj and up_proj rows equal (the first's), its up_proj rows times ``gain``,
    every other up_proj row times ``inlier`` and its down_proj column divided by it, and the pair's
    down_proj columns opposite (the second the first's negation), so that their contributions cancel
    (to the arithmetic's rounding) while each passes through the reduction: the pair is ``gain / inlier`` times the other
    channels, and a GEMM that keeps a running sum over the whole K without promotion carries the first's
    product through the 2046 products between them."""
    out = dict(state)
    gate, up, down = (f"model.layers.{layer}.mlp.{p}.weight" for p in ("gate_proj", "up_proj", "down_proj"))
    first, second = channels
    g, u, d = state[gate].clone(), state[up].clone(), state[down].clone()
    u *= inlier
    d /= inlier
    g[second] = g[first]
    u[first] = state[up][first] * gain
    u[second] = u[first]
    d[:, first] = state[down][:, first]
    d[:, second] = -d[:, first]
    # The pair's blocks get the same weight_scale_inv (``_equal_block_scales``), so that the second's
    # E4M3 codes are exactly the first's (gate_proj, up_proj) or its negation (down_proj) and the pair
    # cancels in every dtype as in float64.
    _equal_block_scales(g, first, second)
    _equal_block_scales(d.t(), first, second)
    out[gate], out[up], out[down] = g, u, d
    return out


def weight_dequant(codes: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """DeepSeek-V3's weight_dequant on the tensors' device: code x its block's scale in float32, stored
    in ``dtype`` (inference/kernel.py: y = x.float() * s, written in the default dtype)."""
    return (codes.to(torch.float32) * expand_scale(scale.to(torch.float32), tuple(codes.shape))).to(dtype)


@dataclass(frozen=True)
class Fp8Checkpoint:
    """The FP8 weights of a file as read: codes (float8_e4m3fn) and scales (float32) by weight name."""

    codes: dict[str, torch.Tensor]
    scales: dict[str, torch.Tensor]

    def dequantized(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Every FP8 weight as code x scale computed in ``dtype`` (float64: exact; float32: the host
        copy, rounded once as DeepSeek's weight_dequant rounds it)."""
        return {
            name: codes.to(dtype) * expand_scale(self.scales[name].to(dtype), tuple(codes.shape))
            for name, codes in self.codes.items()
        }

    def for_run(self, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The FP8 weights for a run on ``device`` in ``dtype`` on the DEQUANTIZED path: codes and
        scales moved to the device as stored (1 byte and 4 bytes per block), dequantized there."""
        return {
            name: weight_dequant(codes.to(device), self.scales[name].to(device), dtype)
            for name, codes in self.codes.items()
        }

    def record(self, path: str = DEQUANTIZED, products: str | None = None) -> dict[str, object]:
        """The document's account of the checkpoint and of how the run computed with it (``products``:
        what computed the FP8 products on the BLOCK_SCALED path)."""
        return {
            "format": FP8_FORMAT,
            "weight_block_size": [BLOCK, BLOCK],
            "scales": "float32 weight_scale_inv, one per block",
            "fp8_weights": len(self.codes),
            "path": path,
            "path_note": FP8_PATH_NOTE[path],
            **(
                {
                    "path_dtypes": [BLOCK_SCALED_DTYPE],
                    "other_dtypes": DEQUANTIZED,
                    "products": products,
                    "products_note": FP8_PRODUCTS_NOTE[products],
                }
                if path == BLOCK_SCALED and products
                else {}
            ),
        }

    def install(self, module: nn.Module, device: torch.device, product: Fp8Product) -> None:
        """Puts the BLOCK_SCALED path into a placed module: each FP8 weight's ``nn.Linear`` becomes an
        ``Fp8Linear`` over the codes and scales as stored, moved to ``device``."""
        for name, codes in self.codes.items():
            parent, _, leaf = name.removesuffix(".weight").rpartition(".")
            weight = Fp8Weight.of(codes.to(device), self.scales[name].to(device), product)
            setattr(module.get_submodule(parent), leaf, Fp8Linear(weight))


@dataclass(frozen=True)
class Fp8Weight:
    """An FP8 weight on the BLOCK_SCALED path: E4M3 codes (N, K) and each row's K-block scales
    (N, ceil(K/128), the catalog's ``row_scales``), with the device's FP8 product."""

    codes: torch.Tensor
    row_scale: torch.Tensor
    product: Fp8Product

    @classmethod
    def of(cls, codes: torch.Tensor, scale: torch.Tensor, product: Fp8Product) -> Fp8Weight:
        return cls(codes, row_scales(scale, codes.shape[0]), product)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """x W^T: x quantized per 1x128 tile (act_quant), the block-scaled GEMM, x's dtype out."""
        flat = x.reshape(-1, x.shape[-1])
        a, a_scale = act_quant(flat)
        out = block_scaled_gemm(a, a_scale, self.codes, self.row_scale, product=self.product)
        return out.to(x.dtype).reshape(*x.shape[:-1], -1)

    def rows(self, start: int, stop: int) -> Fp8Weight:
        return Fp8Weight(self.codes[start:stop], self.row_scale[start:stop], self.product)

    @staticmethod
    def stack(parts: list[Fp8Weight]) -> Fp8Weight:
        """The rows of several weights of one K stacked (an expert's gate_proj and up_proj as w13)."""
        return Fp8Weight(
            torch.cat([p.codes for p in parts]), torch.cat([p.row_scale for p in parts]), parts[0].product
        )

    def absorb_uk(self, q_nope: torch.Tensor, heads: int) -> torch.Tensor:
        """MLA's absorbed query, q_nope (B, S, H, dn) times each head's W_uk (dn rows of kv_b_proj,
        (dn, C)) -> (B, S, H, C): a GEMM whose K runs along kv_b_proj's output rows, so the weight enters
        transposed and its 128x128 blocks are cut along those rows. The head's rows and its query are
        padded on the left with zeros to the row block's start, so that every 128-wide K slice of the
        GEMM lies in one block row of the stored weight (the zeros change no tile's max|x| and add
        nothing); the query is quantized per 1x128 tile of that padded K."""
        per_head, latent = self.codes.shape[0] // heads, self.codes.shape[1]
        nope = q_nope.shape[-1]
        out = []
        for h in range(heads):
            first = h * per_head
            pad = first % BLOCK
            x = F.pad(q_nope[..., h, :].reshape(-1, nope), (pad, 0))
            a, a_scale = act_quant(x)
            b = self.codes[first : first + nope].t()
            if pad:
                b = torch.cat((torch.zeros(latent, pad, dtype=b.dtype, device=b.device), b), dim=1)
            # Slice j of the padded K holds stored rows first - pad + 128 j ...; any of its real rows
            # names the block row, whose scales are spread over the latent columns (the GEMM's N).
            rows = [max(first, first - pad + start) for start in range(0, pad + nope, BLOCK)]
            b_scale = self.row_scale[rows].repeat_interleave(BLOCK, dim=1)[:, :latent].t()
            gemm = block_scaled_gemm(a, a_scale, b, b_scale.contiguous(), product=self.product)
            out.append(gemm.to(q_nope.dtype).reshape(*q_nope.shape[:-2], latent))
        return torch.stack(out, dim=-2)

    def absorb_uv(self, latent: torch.Tensor, heads: int, nope: int) -> torch.Tensor:
        """The absorbed values, latent (B, S, H, C) times each head's W_uv^T (the dv rows of kv_b_proj
        after its dn rows) -> (B, S, H, dv): per head a plain block-scaled linear over those rows."""
        per_head = self.codes.shape[0] // heads
        return torch.stack(
            [
                self.rows(h * per_head + nope, (h + 1) * per_head).linear(latent[..., h, :])
                for h in range(heads)
            ],
            dim=-2,
        )


class Fp8Linear(nn.Module):
    """A projection on the BLOCK_SCALED path in place of its ``nn.Linear`` (the weight is not a
    parameter: no dtype cast of the module may touch the codes)."""

    def __init__(self, weight: Fp8Weight) -> None:
        super().__init__()
        self.fp8 = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fp8.linear(x)


def split_checkpoint(
    loaded: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]]
) -> tuple[dict[str, torch.Tensor], Fp8Checkpoint | None, list[str]]:
    """(the other tensors, the FP8 weights or None, problems) of a file's tensors: a file with any
    ``*_scale_inv`` is an FP8 checkpoint, whose every such pair must be an FP8 weight of the
    architecture in float8_e4m3fn with a finite, positive float32 scale per 128x128 block; a 1-byte
    tensor without its scale is refused (a bare FP8 weight has no meaning)."""
    scale_names = [n for n in loaded if n.endswith(SCALE_SUFFIX)]
    bare = sorted(n for n, t in loaded.items() if t.element_size() == 1 and n + SCALE_SUFFIX not in loaded)
    problems = [f"{n}: a 1-byte tensor without its {SCALE_SUFFIX}" for n in bare[:3]]
    if not scale_names:
        return loaded, None, problems
    codes: dict[str, torch.Tensor] = {}
    scales: dict[str, torch.Tensor] = {}
    rest = {n: t for n, t in loaded.items() if not n.endswith(SCALE_SUFFIX)}
    for scale_name in sorted(scale_names):
        name = scale_name[: -len(SCALE_SUFFIX)]
        weight, scale = loaded.get(name), loaded[scale_name]
        if weight is None or name not in expected or not is_fp8_weight(name):
            problems.append(f"{scale_name}: no FP8 weight {name} of this architecture")
            continue
        if weight.dtype != torch.float8_e4m3fn:
            problems.append(f"{name}: {weight.dtype} beside a {SCALE_SUFFIX}; DeepSeek-V3's FP8 is e4m3")
            continue
        if tuple(weight.shape) != expected[name]:
            continue  # the shape check names it
        if scale.dtype != torch.float32 or tuple(scale.shape) != scale_shape(expected[name]):
            problems.append(
                f"{scale_name}: {scale.dtype} {list(scale.shape)}, expected float32 "
                f"{list(scale_shape(expected[name]))} (one scale per {BLOCK}x{BLOCK} block)"
            )
            continue
        if not bool(torch.isfinite(scale).all()) or not bool((scale > 0).all()):
            problems.append(f"{scale_name}: scales must be finite and positive")
            continue
        if not bool(torch.isfinite(weight.to(torch.float32)).all()):
            problems.append(f"{name}: NaN codes")
            continue
        codes[name], scales[name] = weight, scale
        rest.pop(name)
    return rest, Fp8Checkpoint(codes, scales), problems
