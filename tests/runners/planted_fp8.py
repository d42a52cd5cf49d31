"""Planted faults of an FP8 block-scaled path (issue 16), shared by the tests and
bench/deepseek_fp8_accuracy.py: each replaces one step of runners/models/fp8.py's BLOCK_SCALED path
with what a wrong device stack would do, and the model suite must catch it.

The narrow accumulator is a simulated Hopper FP8 tensor core's (``fp22``, ``narrow_dot``): DeepSeek-V3
(arXiv:2412.19437 s3.3.2) reports that it keeps around 14 bits of the running sum, which is why its
fp8_gemm promotes to float32 every 128 products."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from runners.catalog.quantized import BLOCK, FP8_MAX, SCALE_FLOOR, row_scales
from runners.models import fp8 as fp8_module


def fp22(x: torch.Tensor) -> torch.Tensor:
    """x (float32) truncated to 14 significand bits, round toward zero: the FP8 MMA accumulator of
    Hopper (1 sign, 8 exponent, 13 mantissa bits; DeepSeek-V3 s3.3.2 "around 14 bits")."""
    return (x.view(torch.int32) & ~((1 << 10) - 1)).view(torch.float32)


def narrow_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (..., M, L) @ b (..., N, L)^T with every product added into an FP22 running sum."""
    acc = torch.zeros(*a.shape[:-1], b.shape[-2], dtype=torch.float32, device=a.device)
    for k in range(a.shape[-1]):
        acc = fp22(acc + a[..., k : k + 1] * b[..., k].unsqueeze(-2))
    return acc


def per_tensor_act_quant(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One activation scale for the whole tensor (max|x| / 448) in place of one per 1x128 tile."""
    wide = x.to(torch.float32)
    scale = torch.clamp(wide.abs().amax() / FP8_MAX["float8_e4m3fn"], min=SCALE_FLOOR)
    tiles = -(-x.shape[1] // BLOCK)
    return (wide / scale).to(torch.float8_e4m3fn), scale.expand(x.shape[0], tiles).contiguous()


def per_tensor_weight_scale(block_scale: torch.Tensor, rows: int) -> torch.Tensor:
    """weight_scale_inv read as one scale for the whole weight (its first block's)."""
    return row_scales(torch.full_like(block_scale, float(block_scale.reshape(-1)[0])), rows)


def wrong_block_index(block_scale: torch.Tensor, rows: int) -> torch.Tensor:
    """Each block reads its row-major predecessor's scale (the block index off by one)."""
    shifted = block_scale.reshape(-1).roll(1).reshape(block_scale.shape)
    return row_scales(shifted, rows)


def no_promotion_gemm(
    a: torch.Tensor,
    a_scale: torch.Tensor,
    b: torch.Tensor,
    b_row_scale: torch.Tensor,
    *,
    step: int = BLOCK,
    product: object = None,
) -> torch.Tensor:
    """The whole K accumulated in the FP22 register, the scales applied to each product: no promotion."""
    k = a.shape[1]
    a_full = a.to(torch.float32) * a_scale.repeat_interleave(BLOCK, dim=1)[:, :k]
    b_full = b.to(torch.float32) * b_row_scale.repeat_interleave(BLOCK, dim=1)[:, :k]
    return narrow_dot(a_full, b_full)


# name -> (attribute of runners.models.fp8 replaced, the replacement)
FAULTS: dict[str, tuple[str, Callable[..., torch.Tensor | tuple[torch.Tensor, torch.Tensor]]]] = {
    "per_tensor_activation_scale": ("act_quant", per_tensor_act_quant),
    "per_tensor_weight_scale": ("row_scales", per_tensor_weight_scale),
    "no_float32_promotion": ("block_scaled_gemm", no_promotion_gemm),
    "wrong_block_scale_index": ("row_scales", wrong_block_index),
}


@contextmanager
def planted(name: str | None) -> Iterator[None]:
    """The FP8 path with fault ``name`` planted (None: honest) for the duration of the block."""
    if name is None:
        yield
        return
    attribute, replacement = FAULTS[name]
    original = getattr(fp8_module, attribute)
    setattr(fp8_module, attribute, replacement)
    try:
        yield
    finally:
        setattr(fp8_module, attribute, original)
