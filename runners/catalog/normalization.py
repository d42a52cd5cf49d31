"""Row-wise kernels over the hidden dimension: layer_norm, rms_norm, softmax, log_softmax."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from runners.catalog.base import (
    FLOAT32_EPS,
    FLOAT_DTYPES,
    TORCH_TESTING_DEFAULTS,
    Case,
    Inputs,
    Kernel,
    Span,
    Tolerance,
    element_size,
    inject_nan_inf,
    randn,
)
from runners.catalog.shapes import LONG_K, LONG_SEQ, MODEL_HIDDEN, SEQ_DECODE, SHORT_SEQ

ROW_CASES = (
    Case("llama_hidden_decode", {"M": SEQ_DECODE, "N": MODEL_HIDDEN}),
    Case("llama_hidden_short_prefill", {"M": SHORT_SEQ, "N": MODEL_HIDDEN}),
    Case("odd_sizes", {"M": Span(25, 49, odd=True), "N": Span(769, 1279, odd=True)}, edge="odd_size"),
    Case("long_row", {"M": Span(2, 6), "N": LONG_K}, edge="long_reduction"),
    # Squares (norms) or exponentials (softmax) of these overflow float16 unless upcast.
    Case(
        "large_magnitudes",
        {"M": Span(4, 12), "N": Span(384, 640, 64)},
        edge="fp16_overflow",
        options={"scale": 3000.0},
    ),
    Case("nan_inf", {"M": Span(4, 12), "N": Span(192, 320, 32)}, edge="nan_inf"),
    Case("strided_rows", {"M": Span(12, 20), "N": Span(384, 640, 64)}, edge="non_contiguous"),
    Case("empty_rows", {"M": 0, "N": Span(192, 320, 32)}, edge="empty"),
)
# The full 2048x4096 prefill shape, for the kernels every Llama layer runs on it.
LONG_SEQUENCE_CASES = (*ROW_CASES, Case("llama_hidden_long_prefill", {"M": LONG_SEQ, "N": MODEL_HIDDEN}))

NORM_EPS = 1e-5


def _layer_norm(inputs: Inputs) -> torch.Tensor:
    return F.layer_norm(inputs["x"], inputs["x"].shape[-1:], inputs["weight"], inputs["bias"], NORM_EPS)


def _layer_norm_reference(inputs: Inputs) -> torch.Tensor:
    x = inputs["x"]
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + NORM_EPS) * inputs["weight"] + inputs["bias"]


def _rms_norm(inputs: Inputs) -> torch.Tensor:
    return F.rms_norm(inputs["x"], inputs["x"].shape[-1:], inputs["weight"], NORM_EPS)


def _rms_norm_reference(inputs: Inputs) -> torch.Tensor:
    x = inputs["x"]
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + NORM_EPS) * inputs["weight"]


class RowKernel(Kernel):
    """A kernel applied to each row of a (M, N) matrix, optionally with (N,) weight and bias."""

    dtypes = FLOAT_DTYPES
    cases: tuple[Case, ...] = ROW_CASES

    def __init__(
        self,
        name: str,
        description: str,
        device_fn: Callable[[Inputs], torch.Tensor],
        reference_fn: Callable[[Inputs], torch.Tensor],
        *,
        weight: bool,
        bias: bool,
        flops_per_element: int,
        cases: tuple[Case, ...] = ROW_CASES,
    ) -> None:
        self.name = name
        self.cases = cases
        self.description = description
        self._device_fn = device_fn
        self._reference_fn = reference_fn
        self._weight = weight
        self._bias = bias
        self._flops_per_element = flops_per_element

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        width = case["N"] * (2 if case.edge == "non_contiguous" else 1)
        x = randn((case["M"], width), dtype, g, case.options.get("scale", 1.0))
        if case.edge == "nan_inf":
            x = inject_nan_inf(x, g)
        inputs: Inputs = {"x": x}
        if self._weight:
            inputs["weight"] = 1.0 + randn((case["N"],), dtype, g, 0.1)
        if self._bias:
            inputs["bias"] = randn((case["N"],), dtype, g, 0.1)
        return inputs

    def arrange(self, inputs: Inputs, case: Case) -> Inputs:
        if case.edge == "non_contiguous":
            return {**inputs, "x": inputs["x"][:, 1::2]}
        return inputs

    def run(self, inputs: Inputs) -> torch.Tensor:
        return self._device_fn(inputs)

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return self._reference_fn(inputs)

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        # The row statistic (mean, variance, sum of exponentials) is a float32 sum of N terms;
        # its relative error, at worst 4*N*eps32, carries into every output of the row.
        base_atol, base_rtol = TORCH_TESTING_DEFAULTS[dtype]
        accumulation = 4 * max(case["N"], 1) * FLOAT32_EPS
        return Tolerance(
            base_atol + accumulation,
            base_rtol + accumulation,
            f"torch.testing defaults for {dtype} + float32 row-statistic bound 4*N*eps32, N={case['N']} "
            "(Higham 2002, s4.2)",
        )

    def flops(self, case: Case) -> int:
        return self._flops_per_element * case["M"] * case["N"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        params = case["N"] * (int(self._weight) + int(self._bias))
        return element_size(dtype) * (2 * case["M"] * case["N"] + params)


class LogSoftmaxKernel(RowKernel):
    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        # log_softmax = x - max - log(sum): outputs near zero carry the absolute error of
        # log(sum) (its relative error 4*N*eps32) and the rounding of x - max in dtype.
        tolerance = super().tolerance(case, dtype)
        scale = case.options.get("scale", 1.0)
        return Tolerance(
            tolerance.atol + tolerance.rtol * scale * 8.0,
            tolerance.rtol,
            tolerance.source + " + rtol * |x - max| for the subtraction (|x| <= 4 * scale)",
        )


KERNELS: tuple[Kernel, ...] = (
    RowKernel(
        "layer_norm",
        "layer_norm over the last dim with weight and bias, eps 1e-5",
        _layer_norm,
        _layer_norm_reference,
        weight=True,
        bias=True,
        flops_per_element=8,
    ),
    RowKernel(
        "rms_norm",
        "RMSNorm (Llama) over the last dim with weight, eps 1e-5",
        _rms_norm,
        _rms_norm_reference,
        weight=True,
        bias=False,
        flops_per_element=5,
        cases=LONG_SEQUENCE_CASES,
    ),
    RowKernel(
        "softmax",
        "softmax over the last dim",
        lambda i: torch.softmax(i["x"], dim=-1),
        lambda i: torch.softmax(i["x"], dim=-1),
        weight=False,
        bias=False,
        flops_per_element=5,
        cases=LONG_SEQUENCE_CASES,
    ),
    LogSoftmaxKernel(
        "log_softmax",
        "log_softmax over the last dim",
        lambda i: torch.log_softmax(i["x"], dim=-1),
        lambda i: torch.log_softmax(i["x"], dim=-1),
        weight=False,
        bias=False,
        flops_per_element=5,
    ),
)
