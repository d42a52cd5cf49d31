"""GEMM-shaped kernels: matmul, linear with bias, batched matmul, int8 and float8 matmul."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from runners.catalog.base import (
    FLOAT_DTYPES,
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
    exact_tolerance,
    inject_nan_inf,
    randint8,
    randn,
    uniform,
)
from runners.catalog.shapes import (
    HEAD_DIMS,
    LONG_K,
    MODEL_HIDDEN,
    MODEL_KV_DIM,
    ODD_100,
    ODD_SMALL,
    SEQ_DECODE,
    SHORT_SEQ,
)


def _operand(shape: tuple[int, ...], dtype: str, g: torch.Generator, case: Case) -> torch.Tensor:
    # Long reductions use positive terms: with no cancellation, a narrow accumulator's
    # stagnation (adding 0.25 to 4096 in float16 does nothing) cannot hide.
    if case.edge == "long_reduction":
        return uniform(shape, dtype, g, 0.0, 1.0)
    return randn(shape, dtype, g)


GEMM_CASES = (
    Case("square", {"M": Span(48, 96), "K": Derived("M"), "N": Derived("M")}),
    Case("llama_qproj_decode", {"M": SEQ_DECODE, "K": MODEL_HIDDEN, "N": Derived("K")}),
    Case("llama_kvproj_decode", {"M": SEQ_DECODE, "K": MODEL_HIDDEN, "N": MODEL_KV_DIM}),
    Case("llama_kvproj_prefill_trimmed_n", {"M": SHORT_SEQ, "K": MODEL_HIDDEN, "N": Span(192, 320, 64)}),
    Case("odd_sizes", {"M": ODD_100, "K": ODD_100, "N": ODD_100}, edge="odd_size"),
    Case(
        "long_reduction",
        {"M": Span(4, 12), "K": LONG_K, "N": Span(4, 12)},
        edge="long_reduction",
    ),
    Case("transposed_b", {"M": Span(32, 64), "K": Span(64, 128), "N": Span(48, 96)}, edge="non_contiguous"),
    Case("nan_inf", {"M": Span(24, 40), "K": Span(24, 40), "N": Span(24, 40)}, edge="nan_inf"),
    Case("empty_m0", {"M": 0, "K": Span(32, 96), "N": Span(16, 48)}, edge="empty"),
    Case("empty_k0", {"M": Span(8, 24), "K": 0, "N": Span(8, 24)}, edge="empty"),
)


class MatmulKernel(Kernel):
    name = "matmul"
    description = "C = A @ B"
    dtypes = FLOAT_DTYPES
    cases = GEMM_CASES

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        a = _operand((case["M"], case["K"]), dtype, g, case)
        if case.edge == "non_contiguous":
            b = _operand((case["N"], case["K"]), dtype, g, case)  # stored transposed
        else:
            b = _operand((case["K"], case["N"]), dtype, g, case)
        if case.edge == "nan_inf":
            a = inject_nan_inf(a, g)
        return {"a": a, "b": b}

    def arrange(self, inputs: Inputs, case: Case) -> Inputs:
        if case.edge == "non_contiguous":
            return {**inputs, "b": inputs["b"].t()}
        return inputs

    def run(self, inputs: Inputs) -> torch.Tensor:
        return torch.matmul(inputs["a"], inputs["b"])

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return inputs["a"] @ inputs["b"]

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return accumulation_tolerance(dtype, case["K"], "|A||B|")

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor:
        return accumulation_bound(abs32(inputs["a"]) @ abs32(inputs["b"]), case["K"], dtype)

    def flops(self, case: Case) -> int:
        return 2 * case["M"] * case["K"] * case["N"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        return element_size(dtype) * (case["M"] * case["K"] + case["K"] * case["N"] + case["M"] * case["N"])


class LinearKernel(Kernel):
    name = "linear"
    description = "y = x @ W.T + b (torch.nn.functional.linear with bias)"
    dtypes = FLOAT_DTYPES
    cases = (
        Case("small", {"M": Span(48, 96), "K": Span(48, 96), "N": Span(48, 96)}),
        Case("llama_qproj_decode", {"M": SEQ_DECODE, "K": MODEL_HIDDEN, "N": Derived("K")}),
        Case("llama_kvproj_decode", {"M": SEQ_DECODE, "K": MODEL_HIDDEN, "N": MODEL_KV_DIM}),
        Case("llama_qproj_prefill_trimmed_n", {"M": SHORT_SEQ, "K": MODEL_HIDDEN, "N": Span(192, 320, 64)}),
        Case("odd_sizes", {"M": ODD_SMALL, "K": ODD_SMALL, "N": ODD_SMALL}, edge="odd_size"),
        Case(
            "long_reduction",
            {"M": Span(2, 6), "K": LONG_K, "N": Span(4, 12)},
            edge="long_reduction",
        ),
        Case(
            "strided_input", {"M": Span(16, 32), "K": Span(48, 80), "N": Span(32, 48)}, edge="non_contiguous"
        ),
        Case("nan_inf", {"M": Span(12, 24), "K": Span(24, 40), "N": Span(12, 24)}, edge="nan_inf"),
        Case("empty_m0", {"M": 0, "K": Span(16, 48), "N": Span(8, 24)}, edge="empty"),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        k = case["K"] * (2 if case.edge == "non_contiguous" else 1)
        x = _operand((case["M"], k), dtype, g, case)
        weight = _operand((case["N"], case["K"]), dtype, g, case)
        # A bias comparable to the outputs, so a kernel that drops it is visibly wrong.
        bias = randn((case["N"],), dtype, g, scale=max(1.0, case["K"] ** 0.5))
        if case.edge == "nan_inf":
            x = inject_nan_inf(x, g)
        return {"x": x, "weight": weight, "bias": bias}

    def arrange(self, inputs: Inputs, case: Case) -> Inputs:
        if case.edge == "non_contiguous":
            return {**inputs, "x": inputs["x"][:, ::2]}  # every other column: stride 2
        return inputs

    def run(self, inputs: Inputs) -> torch.Tensor:
        return F.linear(inputs["x"], inputs["weight"], inputs["bias"])

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return inputs["x"] @ inputs["weight"].t() + inputs["bias"]

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return accumulation_tolerance(dtype, case["K"] + 1, "(|x||W|^T + |b|)")

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor:
        magnitude = abs32(inputs["x"]) @ abs32(inputs["weight"]).t() + abs32(inputs["bias"])
        return accumulation_bound(magnitude, case["K"] + 1, dtype)

    def flops(self, case: Case) -> int:
        return 2 * case["M"] * case["K"] * case["N"] + case["M"] * case["N"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        m, k, n = case["M"], case["K"], case["N"]
        return element_size(dtype) * (m * k + k * n + n + m * n)


class BatchedMatmulKernel(Kernel):
    name = "bmm"
    description = "C[b] = A[b] @ B[b] (attention-score shaped batches)"
    dtypes = FLOAT_DTYPES
    cases = (
        Case("small_batch", {"B": Span(2, 6), "M": Span(24, 40), "K": Span(24, 40), "N": Span(24, 40)}),
        # Attention scores of one prefill: heads x seq x head_dim x seq.
        Case(
            "llama_scores_prefill",
            {"B": Span(16, 40, 8), "M": SHORT_SEQ, "K": HEAD_DIMS, "N": Derived("M")},
        ),
        Case(
            "odd_sizes",
            {
                "B": Span(2, 5),
                "M": Span(11, 31, odd=True),
                "K": Span(11, 31, odd=True),
                "N": Span(11, 31, odd=True),
            },
            edge="odd_size",
        ),
        Case(
            "long_reduction",
            {"B": 2, "M": Span(2, 6), "K": LONG_K, "N": Span(2, 6)},
            edge="long_reduction",
        ),
        Case(
            "transposed_b",
            {"B": Span(2, 6), "M": Span(16, 32), "K": Span(32, 48), "N": Span(24, 40)},
            edge="non_contiguous",
        ),
        Case("empty_batch", {"B": 0, "M": Span(4, 12), "K": Span(4, 12), "N": Span(4, 12)}, edge="empty"),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        a = _operand((case["B"], case["M"], case["K"]), dtype, g, case)
        if case.edge == "non_contiguous":
            b = _operand((case["B"], case["N"], case["K"]), dtype, g, case)
        else:
            b = _operand((case["B"], case["K"], case["N"]), dtype, g, case)
        return {"a": a, "b": b}

    def arrange(self, inputs: Inputs, case: Case) -> Inputs:
        if case.edge == "non_contiguous":
            return {**inputs, "b": inputs["b"].transpose(1, 2)}
        return inputs

    def run(self, inputs: Inputs) -> torch.Tensor:
        return torch.bmm(inputs["a"], inputs["b"])

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return torch.bmm(inputs["a"], inputs["b"])

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return accumulation_tolerance(dtype, case["K"], "|A[b]||B[b]|")

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor:
        return accumulation_bound(torch.bmm(abs32(inputs["a"]), abs32(inputs["b"])), case["K"], dtype)

    def flops(self, case: Case) -> int:
        return 2 * case["B"] * case["M"] * case["K"] * case["N"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        b, m, k, n = case["B"], case["M"], case["K"], case["N"]
        return element_size(dtype) * b * (m * k + k * n + m * n)


class Int8MatmulKernel(Kernel):
    name = "int8_matmul"
    description = "int8 x int8 -> int32 GEMM (torch._int_mm), exact"
    dtypes = ("int8",)
    # torch._int_mm on CUDA needs M > 16 and K, N multiples of 8; every draw respects that.
    cases = (
        Case("square", {"M": Span(48, 96, 8), "K": Derived("M"), "N": Derived("M")}),
        Case("llama_kvproj_few_rows", {"M": Span(24, 40, 8), "K": MODEL_HIDDEN, "N": MODEL_KV_DIM}),
        Case(
            "long_reduction",
            {"M": Span(24, 40, 8), "K": LONG_K, "N": Span(24, 40, 8)},
            edge="long_reduction",
        ),
        Case(
            "odd_rows",
            {"M": Span(17, 49, odd=True), "K": Span(48, 96, 8), "N": Span(32, 64, 8)},
            edge="odd_size",
        ),
        Case(
            "transposed_b",
            {"M": Span(24, 40, 8), "K": Span(96, 160, 8), "N": Span(48, 80, 8)},
            edge="non_contiguous",
        ),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        a = randint8((case["M"], case["K"]), g)
        shape_b = (case["N"], case["K"]) if case.edge == "non_contiguous" else (case["K"], case["N"])
        if case.edge == "long_reduction":
            # All-positive extremes: the int32 sum reaches 16384*127*127 = 2.6e8, which an
            # int16 or float16 accumulator cannot hold.
            a = torch.full((case["M"], case["K"]), 127, dtype=torch.int8) - randint8(a.shape, g, 0, 4)
            b = torch.full(shape_b, 127, dtype=torch.int8) - randint8(shape_b, g, 0, 4)
        else:
            b = randint8(shape_b, g)
        return {"a": a, "b": b}

    def arrange(self, inputs: Inputs, case: Case) -> Inputs:
        if case.edge == "non_contiguous":
            return {**inputs, "b": inputs["b"].t()}
        return inputs

    def run(self, inputs: Inputs) -> torch.Tensor:
        return torch._int_mm(inputs["a"], inputs["b"])

    def reference(self, inputs: Inputs) -> torch.Tensor:
        # float64 holds every int32-range sum exactly (< 2**53) and is far faster than int64 mm.
        return (inputs["a"].double() @ inputs["b"].double()).round().long()

    def output_dtype(self, dtype: str) -> torch.dtype:
        return torch.int32

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return exact_tolerance("integer arithmetic is exact")

    def flops(self, case: Case) -> int:
        return 2 * case["M"] * case["K"] * case["N"]

    def bytes(self, case: Case, dtype: str = "int8") -> int:
        m, k, n = case["M"], case["K"], case["N"]
        return m * k + k * n + 4 * m * n


class ScaledMatmulFp8Kernel(Kernel):
    name = "scaled_matmul_fp8"
    description = "float8 e4m3 GEMM with per-tensor scales (torch._scaled_mm), float32 out"
    dtypes = ("float8_e4m3fn",)
    # torch._scaled_mm needs K and N multiples of 16.
    cases = (
        Case("square", {"M": Span(48, 96, 16), "K": Derived("M"), "N": Derived("M")}),
        Case(
            "llama_qproj_few_rows_trimmed_n",
            {"M": Span(16, 32, 16), "K": MODEL_HIDDEN, "N": Span(192, 320, 64)},
        ),
        Case(
            "long_reduction",
            {"M": Span(16, 32, 16), "K": LONG_K, "N": Span(16, 32, 16)},
            edge="long_reduction",
        ),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        a = _operand((case["M"], case["K"]), dtype, g, case)
        b = _operand((case["N"], case["K"]), dtype, g, case)  # _scaled_mm wants B column-major
        return {"a": a, "b": b, "scale_a": torch.tensor(0.5), "scale_b": torch.tensor(2.0)}

    def arrange(self, inputs: Inputs, case: Case) -> Inputs:
        return {**inputs, "b": inputs["b"].t()}

    def run(self, inputs: Inputs) -> torch.Tensor:
        return torch._scaled_mm(
            inputs["a"],
            inputs["b"],
            scale_a=inputs["scale_a"],
            scale_b=inputs["scale_b"],
            out_dtype=torch.float32,
        )

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return (inputs["a"] * inputs["scale_a"]) @ (inputs["b"] * inputs["scale_b"])

    def output_dtype(self, dtype: str) -> torch.dtype:
        return torch.float32

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        # Products of two e4m3 values (and the power-of-two scales) are exact in float32; only the
        # float32 accumulation errs. (Hopper tensor cores keep ~14 accumulator bits for fp8 --
        # DeepSeek-V3 report, s3.3.2 -- which this bound deliberately flags as a finding.)
        return accumulation_tolerance("float32", case["K"], "|a sa||b sb|")

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor:
        a, b = abs32(inputs["a"] * inputs["scale_a"]), abs32(inputs["b"] * inputs["scale_b"])
        return accumulation_bound(a @ b, case["K"], "float32")

    def flops(self, case: Case) -> int:
        return 2 * case["M"] * case["K"] * case["N"]

    def bytes(self, case: Case, dtype: str = "float8_e4m3fn") -> int:
        m, k, n = case["M"], case["K"], case["N"]
        return m * k + k * n + 4 * m * n


KERNELS: tuple[Kernel, ...] = (
    MatmulKernel(),
    LinearKernel(),
    BatchedMatmulKernel(),
    Int8MatmulKernel(),
    ScaledMatmulFp8Kernel(),
)
