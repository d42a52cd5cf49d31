"""Embedding lookup and per-channel quantization (int8, float8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from runners.catalog.base import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    Case,
    Inputs,
    Kernel,
    Span,
    Tolerance,
    element_size,
    randint8,
    randn,
    subnormals,
    values_for,
)
from runners.catalog.shapes import LONG_SEQ, MODEL_HIDDEN, SEQ_DECODE, SHORT_SEQ


class EmbeddingKernel(Kernel):
    name = "embedding"
    description = "token embedding lookup (index_select of table rows)"
    dtypes = ALL_DTYPES
    cases = (
        # A Llama-sized hidden dimension; the vocabulary is cut to a few hundred rows to keep the table small.
        Case("llama_hidden_decode", {"V": Span(384, 640), "H": MODEL_HIDDEN, "S": SEQ_DECODE}),
        Case("llama_hidden_short_prefill", {"V": Span(384, 640), "H": MODEL_HIDDEN, "S": SHORT_SEQ}),
        Case("repeated_ids_long_prefill", {"V": Span(48, 80), "H": Span(192, 320, 64), "S": LONG_SEQ}),
        Case(
            "odd_sizes",
            {"V": Span(769, 1279, odd=True), "H": Span(61, 93, odd=True), "S": Span(25, 41, odd=True)},
            edge="odd_size",
        ),
        Case("empty_seq", {"V": Span(48, 80), "H": Span(24, 40), "S": 0}, edge="empty"),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        table = values_for((case["V"], case["H"]), dtype, g)
        ids = torch.randint(0, case["V"], (case["S"],), generator=g)
        return {"table": table, "ids": ids}

    def run(self, inputs: Inputs) -> torch.Tensor:
        return F.embedding(inputs["ids"], inputs["table"])

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return inputs["table"][inputs["ids"]]

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return Tolerance(0.0, 0.0, "a lookup copies table rows, which must come back bit-exact")

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        return 2 * element_size(dtype) * case["S"] * case["H"] + 8 * case["S"]


def _power_of_two_scales(x: torch.Tensor) -> torch.Tensor:
    # Power-of-two scales (as in OCP Microscaling) make x / scale exact in any binary float,
    # so the rounding to int8 has one correct answer and no tie depends on division rounding.
    amax = x.float().abs().amax(dim=-1).clamp(min=1e-30)
    return torch.exp2(torch.ceil(torch.log2(amax / 127.0)))


QUANT_CASES = (
    Case("llama_weight_rows", {"C": Span(192, 320, 32), "N": MODEL_HIDDEN}),
    Case("odd_sizes", {"C": Span(9, 19, odd=True), "N": Span(769, 1279, odd=True)}, edge="odd_size"),
    Case("empty_channels", {"C": 0, "N": Span(48, 80)}, edge="empty"),
)


class QuantizePerChannelKernel(Kernel):
    name = "quantize_per_channel"
    description = "int8 symmetric per-channel quantization: clamp(round(x / scale), -128, 127)"
    dtypes = FLOAT_DTYPES
    cases = QUANT_CASES

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        x = randn((case["C"], case["N"]), dtype, g)
        return {"x": x, "scale": _power_of_two_scales(x)}

    def run(self, inputs: Inputs) -> torch.Tensor:
        scaled = inputs["x"].float() / inputs["scale"][:, None]
        return torch.clamp(torch.round(scaled), -128, 127).to(torch.int8)

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return torch.clamp(torch.round(inputs["x"] / inputs["scale"][:, None]), -128, 127)

    def output_dtype(self, dtype: str) -> torch.dtype:
        return torch.int8

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return Tolerance(
            0.0, 0.0, "with power-of-two scales x/scale is exact: round-half-even has one answer"
        )

    def flops(self, case: Case) -> int:
        return 3 * case["C"] * case["N"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        return (element_size(dtype) + 1) * case["C"] * case["N"] + 4 * case["C"]


class DequantizePerChannelKernel(Kernel):
    name = "dequantize_per_channel"
    description = "int8 weights times a float32 per-channel scale"
    dtypes = ("int8",)
    cases = QUANT_CASES

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        return {
            "q": randint8((case["C"], case["N"]), g),
            "scale": torch.rand((case["C"],), generator=g) * 0.02 + 1e-4,
        }

    def run(self, inputs: Inputs) -> torch.Tensor:
        return inputs["q"].float() * inputs["scale"][:, None]

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return inputs["q"].double() * inputs["scale"][:, None]

    def output_dtype(self, dtype: str) -> torch.dtype:
        return torch.float32

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        # An int8 value is exact in float32; the product with the scale is rounded once.
        return Tolerance(
            0.0,
            0.0,
            "bit-exact known answer: int8 x float32 scale is one correctly rounded float32 "
            "multiplication (IEEE 754-2019 s4.3), the exact float64 product rounded once",
        )

    def flops(self, case: Case) -> int:
        return case["C"] * case["N"]

    def bytes(self, case: Case, dtype: str = "int8") -> int:
        return 5 * case["C"] * case["N"] + 4 * case["C"]


class CastFp8Kernel(Kernel):
    name = "cast_fp8"
    description = "float32 -> float8 e4m3 rounding (round to nearest even), within range"
    dtypes = ("float8_e4m3fn",)
    cases = (
        Case("llama_activations_short_prefill", {"M": SHORT_SEQ, "N": MODEL_HIDDEN}),
        Case("odd_sizes", {"M": Span(5, 11, odd=True), "N": Span(769, 1279, odd=True)}, edge="odd_size"),
        # e4m3 subnormals (2**-9 .. 2**-7) must not be flushed.
        Case("subnormals", {"M": Span(12, 20), "N": Span(48, 80)}, edge="subnormal"),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        shape = (case["M"], case["N"])
        if case.edge == "subnormal":
            return {"x": subnormals(shape, dtype, g).float()}
        return {"x": randn(shape, "float32", g, scale=64.0).clamp(-448.0, 448.0)}  # e4m3fn max is 448

    def run(self, inputs: Inputs) -> torch.Tensor:
        return inputs["x"].to(torch.float8_e4m3fn)

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return inputs["x"]  # the comparison rounds the reference to float8 once, on the CPU

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return Tolerance(0.0, 0.0, "a single correctly rounded conversion has exactly one answer")

    def bytes(self, case: Case, dtype: str = "float8_e4m3fn") -> int:
        return 5 * case["M"] * case["N"]


KERNELS: tuple[Kernel, ...] = (
    EmbeddingKernel(),
    QuantizePerChannelKernel(),
    DequantizePerChannelKernel(),
    CastFp8Kernel(),
)
