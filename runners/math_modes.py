"""The math-mode flags that change what a device computes, pinned by the runner and recorded.

PyTorch's defaults are not IEEE arithmetic everywhere: on NVIDIA GPUs cuDNN convolutions may use
TF32 (`torch.backends.cudnn.allow_tf32` is on by default), and float16/bfloat16 GEMMs may reduce
split-K partial sums in the input precision (`allow_fp16/bf16_reduced_precision_reduction`, on by
default). The conformance tolerances assume float32 accumulators and float32 products
(runners/catalog/base.py), so every suite runs with the flags pinned to `PINNED`, and the document's
fingerprint records the flags as they were while it ran (`math_modes`). The program level says which
modes it accepts (AIA 1.2 `accepted_math_modes`); a document recorded under another mode fails the
level's fingerprint criterion (apps/certificates/judge.py).

Sources: PyTorch documentation, "CUDA semantics", sections "TensorFloat-32 (TF32) on Ampere (and
later) devices" and "Reduced Precision Reduction in FP16/BF16 GEMMs".
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

# flag name -> the value every suite runs with.
PINNED: dict[str, Any] = {
    "cuda_matmul_allow_tf32": False,
    "cudnn_allow_tf32": False,
    "cuda_matmul_allow_fp16_reduced_precision_reduction": False,
    "cuda_matmul_allow_bf16_reduced_precision_reduction": False,
    "float32_matmul_precision": "highest",
}

F = TypeVar("F", bound=Callable[..., Any])


def read_math_modes() -> dict[str, Any]:
    """The flags as they are now in this process (every torch build has them, GPU or not)."""
    matmul = torch.backends.cuda.matmul
    return {
        "cuda_matmul_allow_tf32": bool(matmul.allow_tf32),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "cuda_matmul_allow_fp16_reduced_precision_reduction": bool(
            matmul.allow_fp16_reduced_precision_reduction
        ),
        "cuda_matmul_allow_bf16_reduced_precision_reduction": bool(
            matmul.allow_bf16_reduced_precision_reduction
        ),
        "float32_matmul_precision": str(torch.get_float32_matmul_precision()),
    }


def set_math_modes(modes: dict[str, Any]) -> None:
    unknown = set(modes) - set(PINNED)
    if unknown:
        raise ValueError(f"unknown math-mode flags {sorted(unknown)}; known: {sorted(PINNED)}")
    matmul = torch.backends.cuda.matmul
    if "cuda_matmul_allow_tf32" in modes:
        matmul.allow_tf32 = bool(modes["cuda_matmul_allow_tf32"])
    if "cudnn_allow_tf32" in modes:
        torch.backends.cudnn.allow_tf32 = bool(modes["cudnn_allow_tf32"])
    if "cuda_matmul_allow_fp16_reduced_precision_reduction" in modes:
        matmul.allow_fp16_reduced_precision_reduction = bool(
            modes["cuda_matmul_allow_fp16_reduced_precision_reduction"]
        )
    if "cuda_matmul_allow_bf16_reduced_precision_reduction" in modes:
        matmul.allow_bf16_reduced_precision_reduction = bool(
            modes["cuda_matmul_allow_bf16_reduced_precision_reduction"]
        )
    if "float32_matmul_precision" in modes:
        torch.set_float32_matmul_precision(str(modes["float32_matmul_precision"]))


@contextmanager
def pinned_math_modes(modes: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Runs the block under `modes` (default PINNED) and restores the previous flags after it.
    Yields the flags as read back, which is what a document records."""
    previous = read_math_modes()
    set_math_modes(PINNED if modes is None else modes)
    try:
        yield read_math_modes()
    finally:
        set_math_modes(previous)


def with_pinned_math_modes(suite: F) -> F:
    """Decorates a suite entry point (spec, backend, ...) -> document to run under PINNED."""

    @functools.wraps(suite)
    def pinned(*args: Any, **kwargs: Any) -> Any:
        with pinned_math_modes():
            return suite(*args, **kwargs)

    return pinned  # type: ignore[return-value]


def math_mode_departures(recorded: Any, accepted: dict[str, list[Any]]) -> list[str]:
    """How `recorded` (a fingerprint's math_modes) departs from what a program level accepts
    (flag -> accepted values); a flag not recorded is a departure, since nothing says it was pinned."""
    if not isinstance(recorded, dict):
        return ["the document records no math-mode flags"]
    problems = []
    for flag, values in accepted.items():
        if flag not in recorded:
            problems.append(f"{flag} not recorded")
        elif recorded[flag] not in values:
            problems.append(f"{flag} was {recorded[flag]!r}, the level accepts {values!r}")
    return problems
