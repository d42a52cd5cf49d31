"""GEMM-shaped kernels: matmul, linear with bias, batched matmul, int8 and float8 matmul."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from runners.catalog.base import (
    FLOAT_DTYPES,
    Case,
    Inputs,
    Kernel,
    Tolerance,
    element_size,
    inject_nan_inf,
    randint8,
    randn,
    reduction_tolerance,
    uniform,
)
from runners.catalog.shapes import HIDDEN, KV_DIM, LONG_REDUCTION, SEQ_DECODE, SEQ_SHORT


def _operand(shape: tuple[int, ...], dtype: str, g: torch.Generator, case: Case) -> torch.Tensor:
    # Long reductions use positive terms: with no cancellation, a narrow accumulator's
    # stagnation (adding 0.25 to 4096 in float16 does nothing) cannot hide.
    if case.edge == "long_reduction":
        return uniform(shape, dtype, g, 0.0, 1.0)
    return randn(shape, dtype, g)


GEMM_CASES = (
    Case("square_64", {"M": 64, "K": 64, "N": 64}),
    Case("llama_qproj_decode", {"M": SEQ_DECODE, "K": HIDDEN, "N": HIDDEN}),
    Case("llama_kvproj_decode", {"M": SEQ_DECODE, "K": HIDDEN, "N": KV_DIM}),
    Case("llama_kvproj_seq128_n256", {"M": SEQ_SHORT, "K": HIDDEN, "N": 256}),
    Case("odd_127x129x131", {"M": 127, "K": 129, "N": 131}, edge="odd_size"),
    Case("long_reduction_k16384", {"M": 8, "K": LONG_REDUCTION, "N": 8}, edge="long_reduction"),
    Case("transposed_b", {"M": 48, "K": 96, "N": 80}, edge="non_contiguous"),
    Case("nan_inf", {"M": 32, "K": 32, "N": 32}, edge="nan_inf"),
    Case("empty_m0", {"M": 0, "K": 64, "N": 32}, edge="empty"),
    Case("empty_k0", {"M": 16, "K": 0, "N": 16}, edge="empty"),
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
        return reduction_tolerance(dtype, case["K"])

    def flops(self, case: Case) -> int:
        return 2 * case["M"] * case["K"] * case["N"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        return element_size(dtype) * (case["M"] * case["K"] + case["K"] * case["N"] + case["M"] * case["N"])


class LinearKernel(Kernel):
    name = "linear"
    description = "y = x @ W.T + b (torch.nn.functional.linear with bias)"
    dtypes = FLOAT_DTYPES
    cases = (
        Case("small_64", {"M": 64, "K": 64, "N": 64}),
        Case("llama_qproj_decode", {"M": SEQ_DECODE, "K": HIDDEN, "N": HIDDEN}),
        Case("llama_kvproj_decode", {"M": SEQ_DECODE, "K": HIDDEN, "N": KV_DIM}),
        Case("llama_qproj_seq128_n256", {"M": SEQ_SHORT, "K": HIDDEN, "N": 256}),
        Case("odd_33x77x45", {"M": 33, "K": 77, "N": 45}, edge="odd_size"),
        Case("long_reduction_k16384", {"M": 4, "K": LONG_REDUCTION, "N": 8}, edge="long_reduction"),
        Case("strided_input", {"M": 24, "K": 64, "N": 40}, edge="non_contiguous"),
        Case("nan_inf", {"M": 16, "K": 32, "N": 16}, edge="nan_inf"),
        Case("empty_m0", {"M": 0, "K": 32, "N": 16}, edge="empty"),
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
        return reduction_tolerance(dtype, case["K"] + 1)

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
        Case("small_4x32", {"B": 4, "M": 32, "K": 32, "N": 32}),
        Case("llama_scores_seq128_32heads", {"B": 32, "M": SEQ_SHORT, "K": 128, "N": SEQ_SHORT}),
        Case("odd_3x17x19x23", {"B": 3, "M": 17, "K": 19, "N": 23}, edge="odd_size"),
        Case("long_reduction_k16384", {"B": 2, "M": 4, "K": LONG_REDUCTION, "N": 4}, edge="long_reduction"),
        Case("transposed_b", {"B": 4, "M": 24, "K": 40, "N": 32}, edge="non_contiguous"),
        Case("empty_batch", {"B": 0, "M": 8, "K": 8, "N": 8}, edge="empty"),
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
        return reduction_tolerance(dtype, case["K"])

    def flops(self, case: Case) -> int:
        return 2 * case["B"] * case["M"] * case["K"] * case["N"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        b, m, k, n = case["B"], case["M"], case["K"], case["N"]
        return element_size(dtype) * b * (m * k + k * n + m * n)


class Int8MatmulKernel(Kernel):
    name = "int8_matmul"
    description = "int8 x int8 -> int32 GEMM (torch._int_mm), exact"
    dtypes = ("int8",)
    # torch._int_mm on CUDA needs M > 16 and K, N multiples of 8; every case respects that.
    cases = (
        Case("square_64", {"M": 64, "K": 64, "N": 64}),
        Case("llama_kvproj_m32", {"M": 32, "K": HIDDEN, "N": KV_DIM}),
        Case("long_reduction_k16384", {"M": 32, "K": LONG_REDUCTION, "N": 32}, edge="long_reduction"),
        Case("odd_m33", {"M": 33, "K": 72, "N": 40}, edge="odd_size"),
        Case("transposed_b", {"M": 32, "K": 128, "N": 64}, edge="non_contiguous"),
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
        return Tolerance(0.0, 0.0, "integer arithmetic is exact")

    def flops(self, case: Case) -> int:
        return 2 * case["M"] * case["K"] * case["N"]

    def bytes(self, case: Case, dtype: str = "int8") -> int:
        m, k, n = case["M"], case["K"], case["N"]
        return m * k + k * n + 4 * m * n


class ScaledMatmulFp8Kernel(Kernel):
    name = "scaled_matmul_fp8"
    description = "float8 e4m3 GEMM with per-tensor scales (torch._scaled_mm), float32 out"
    dtypes = ("float8_e4m3fn",)
    cases = (
        Case("square_64", {"M": 64, "K": 64, "N": 64}),
        Case("llama_qproj_m16_n256", {"M": 16, "K": HIDDEN, "N": 256}),
        Case("long_reduction_k16384", {"M": 16, "K": LONG_REDUCTION, "N": 16}, edge="long_reduction"),
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
        # Products of two e4m3 values are exact in float32; only the float32 accumulation errs.
        # (Hopper tensor cores keep ~14 accumulator bits for fp8 -- DeepSeek-V3 report, s3.3.2 --
        # which this bound deliberately flags as a finding.)
        return reduction_tolerance("float32", case["K"])

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
