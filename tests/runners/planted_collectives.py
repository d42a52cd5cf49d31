"""Collectives with planted faults, run by the collectives suite's rank processes in
tests/runners/test_collectives.py: an all_reduce that drops the last rank's contribution and an
all_to_all that places the received rows by the wrong split (source ranks in reverse order).
all_gather and reduce_scatter are the honest ones."""

from __future__ import annotations

import torch
import torch.distributed as dist

from runners.collectives.ops import all_gather, reduce_scatter

__all__ = ["all_gather", "all_reduce", "all_to_all", "reduce_scatter"]


def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    if dist.get_rank() == dist.get_world_size() - 1:
        tensor.zero_()
    dist.all_reduce(tensor)
    return tensor


def all_to_all(
    output: torch.Tensor, tensor: torch.Tensor, output_splits: list[int], input_splits: list[int]
) -> torch.Tensor:
    received = torch.empty_like(output)
    dist.all_to_all_single(received, tensor, output_splits, input_splits)
    chunks = list(received.split(output_splits))
    output.copy_(torch.cat(chunks[::-1]))
    return output
