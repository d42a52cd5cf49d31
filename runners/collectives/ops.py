"""The collectives as the target's stack runs them: torch.distributed calls on the process group.

This module is the device side's only contract with the suite (runners/collectives/rank.py imports
it by name): a test passes another module with the same four functions to plant a fault. A job
spec cannot name the module; only Python callers of run_collectives can.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks, in place (the suite passes a fresh copy of the rank's input)."""
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather(output: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's `tensor` concatenated in rank order into `output` (world_size x its numel)."""
    dist.all_gather_into_tensor(output, tensor)
    return output


def reduce_scatter(output: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks of `tensor`, whose rank-th 1/world_size chunk lands in `output`."""
    single = getattr(dist, "reduce_scatter_single", None)  # torch >= 2.10; older stacks have _tensor
    if single is not None:
        single(output, tensor, op=dist.ReduceOp.SUM)
    else:
        dist.reduce_scatter_tensor(output, tensor, op=dist.ReduceOp.SUM)
    return output


def all_to_all(
    output: torch.Tensor, tensor: torch.Tensor, output_splits: list[int], input_splits: list[int]
) -> torch.Tensor:
    """Rows of `tensor` sent to each rank by `input_splits` (uneven, zeros allowed, as MoE dispatch
    sends tokens to the ranks holding their experts); rows received placed by source rank."""
    dist.all_to_all_single(output, tensor, output_splits, input_splits)
    return output
