"""Seeded synthetic weights: the same seed and config give the same tensors on every host."""

from __future__ import annotations

import math

import torch


def synthetic_state_dict(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Float32 tensors for every name in ``shapes``, drawn from one seeded CPU generator.

    Scales keep activations of order one through depth (1/sqrt(fan_in) for matrices and
    kernels) so that low-precision error is measured on realistic magnitudes, not on
    saturated or vanishing signals. Names are visited in sorted order so the draw is
    independent of module construction order.
    """
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name in sorted(shapes):
        shape = shapes[name]
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            out[name] = torch.zeros(shape, dtype=torch.int64)
            continue
        noise = torch.randn(shape, generator=generator)
        if leaf == "running_var":
            tensor = 1.0 + 0.1 * noise.abs()
        elif leaf == "running_mean":
            tensor = 0.1 * noise
        elif leaf in ("bias", "e_score_correction_bias"):
            tensor = 0.02 * noise
        elif len(shape) == 1:  # norm scales
            tensor = 1.0 + 0.1 * noise
        else:
            fan_in = math.prod(shape[1:])
            tensor = noise / math.sqrt(fan_in)
        out[name] = tensor.contiguous()
    return out
