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
run computes with them is recorded (``fp8_path``): DEQUANTIZED, the weights dequantized to the run's
dtype (DeepSeek's ``gemm_impl == "bf16"``), which is the path on a device without a probed FP8 GEMM,
this CPU included; no FP8 computation is claimed for it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from runners.catalog.quantized import BLOCK, block_quantize

FP8_FORMAT = "float8_e4m3fn"
SCALE_SUFFIX = "_scale_inv"
# The linear weights DeepSeek-V3's released checkpoint stores in FP8 (README_WEIGHTS.md; its
# model.safetensors.index.json lists a weight_scale_inv for exactly these).
_FP8_WEIGHT = re.compile(
    r"^model\.layers\.\d+\.(self_attn\.(q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj|o_proj)"
    r"|mlp\.(experts\.\d+\.|shared_experts\.)?(gate_proj|up_proj|down_proj))\.weight$"
)
DEQUANTIZED = "dequantized"
FP8_PATH_NOTE = {
    DEQUANTIZED: (
        "FP8 weights dequantized per 128x128 block (float32 code x weight_scale_inv, then the run's "
        "dtype: DeepSeek-V3 inference/kernel.py weight_dequant) before every GEMM: no FP8 computation ran"
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

    def record(self, path: str = DEQUANTIZED) -> dict[str, object]:
        """The document's account of the checkpoint and of how the run computed with it."""
        return {
            "format": FP8_FORMAT,
            "weight_block_size": [BLOCK, BLOCK],
            "scales": "float32 weight_scale_inv, one per block",
            "fp8_weights": len(self.codes),
            "path": path,
            "path_note": FP8_PATH_NOTE[path],
        }


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
