"""Elementwise kernels: GELU (erf, tanh), SiLU, SwiGLU, and broadcast add / mul."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from runners.catalog.base import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    Case,
    Inputs,
    Kernel,
    Tolerance,
    element_size,
    elementwise_tolerance,
    inject_nan_inf,
    subnormal_ulp,
    subnormals,
    torch_dtype,
    values_for,
)
from runners.catalog.shapes import HIDDEN, INTERMEDIATE, SEQ_DECODE, SEQ_LONG, SEQ_SHORT

# Inputs are N(0, scale^2): |x| <= 6 scale for all but 2e-9 of them (a 1024-element case
# exceeds it once in 5e5 runs).
SIGMA_BOUND = 6.0


def _cases(*, subnormal: bool, long_sequence: bool = False) -> tuple[Case, ...]:
    # Elementwise numerics do not depend on the tensor's size; the 2048x4096 shape (8M
    # elements) is kept only where it is the real workload (the residual add) to save time.
    cases = [
        Case("llama_hidden_seq1", {"M": SEQ_DECODE, "N": HIDDEN}),
        Case("llama_mlp_seq128", {"M": SEQ_SHORT, "N": INTERMEDIATE}),
        Case("odd_7x1001", {"M": 7, "N": 1001}, edge="odd_size"),
        Case("transposed", {"M": 64, "N": 96}, edge="non_contiguous"),
        Case("nan_inf", {"M": 16, "N": 64}, edge="nan_inf", dtypes=FLOAT_DTYPES),
        Case(
            "large_magnitudes",
            {"M": 16, "N": 64},
            edge="fp16_overflow",
            dtypes=FLOAT_DTYPES,
            options={"scale": 20000.0},
        ),
        Case("empty", {"M": 0, "N": 64}, edge="empty"),
    ]
    if long_sequence:
        cases.insert(2, Case("llama_hidden_seq2048", {"M": SEQ_LONG, "N": HIDDEN}))
    if subnormal:
        cases.append(Case("subnormals", {"M": 16, "N": 64}, edge="subnormal", dtypes=FLOAT_DTYPES))
    return tuple(cases)


def _generate_operand(case: Case, dtype: str, g: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    if case.edge == "subnormal":
        return subnormals(shape, dtype, g)
    x = values_for(shape, dtype, g, case.options.get("scale", 1.0))
    if case.edge == "nan_inf":
        x = inject_nan_inf(x, g)
    return x


def _transposed_shape(case: Case) -> tuple[int, int]:
    # Non-contiguous cases store the transpose and hand the device a .t() view.
    return (case["N"], case["M"]) if case.edge == "non_contiguous" else (case["M"], case["N"])


class UnaryKernel(Kernel):
    """y = f(x) elementwise. `rtol_scale` widens torch.testing's rtol for transcendental functions."""

    dtypes = FLOAT_DTYPES

    def __init__(
        self,
        name: str,
        description: str,
        fn: Callable[[torch.Tensor], torch.Tensor],
        reference_fn: Callable[[torch.Tensor], torch.Tensor],
        *,
        flops_per_element: int,
        rtol_scale: float = 1.0,
        subnormal: bool = True,
    ) -> None:
        self.name = name
        self.description = description
        self._fn = fn
        self._reference_fn = reference_fn
        self._flops = flops_per_element
        self._rtol_scale = rtol_scale
        self.cases = _cases(subnormal=subnormal)

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        return {"x": _generate_operand(case, dtype, g, _transposed_shape(case))}

    def arrange(self, inputs: Inputs, case: Case) -> Inputs:
        return {"x": inputs["x"].t()} if case.edge == "non_contiguous" else inputs

    def run(self, inputs: Inputs) -> torch.Tensor:
        return self._fn(inputs["x"])

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return self._reference_fn(inputs["x"])

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        if case.edge == "subnormal":
            # The default atol (1e-5) would accept a flushed-to-zero result, so the allowance is in
            # subnormal ulps u (the grid spacing there, IEEE 754-2019 3.3). These functions are x/2
            # (1 + O(x)) on subnormal x = k u: for odd k the exact value lies a hair beyond a
            # rounding tie. The reference, rounded once from float64, lands on the far side; a
            # device that evaluates in float32 first gets 1 + erf(.) == 1 exactly, so its value is
            # the tie itself and round-half-even may take the near side. Each is within u/2 of the
            # exact value, so an honest result is up to 1 u from the rounded reference (double
            # rounding: Goldberg 1991, "What every computer scientist should know about
            # floating-point arithmetic", section on double rounding; Boldo & Melquiond, IEEE
            # Trans. Computers 57(4), 2008). gelu_erf in float16 on x86 CPUs shows exactly that:
            # 1 u on every honest run, 0.996 of the old 1 u allowance. Both results lie on the
            # grid, so errors are whole ulps: 1.5 u admits the honest 1 u with margin and still
            # refuses 2 u (and a flush to zero of any |k| >= 3).
            tolerance = elementwise_tolerance(dtype, self._rtol_scale, atol=1.5 * subnormal_ulp(dtype))
            return Tolerance(
                tolerance.atol,
                tolerance.rtol,
                tolerance.source
                + "; atol = 1.5 subnormal ulp: double rounding at a tie allows an honest 1 ulp "
                "against the rounded reference, errors on the subnormal grid are whole ulps "
                "(Goldberg 1991; Boldo & Melquiond 2008)",
            )
        return elementwise_tolerance(dtype, self._rtol_scale)

    def flops(self, case: Case) -> int:
        return self._flops * case["M"] * case["N"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        return element_size(dtype) * 2 * case["M"] * case["N"]


def _gelu_erf_reference(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _gelu_tanh_reference(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _silu_reference(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class SwigluKernel(Kernel):
    name = "swiglu"
    description = "silu(gate) * up, the Llama MLP activation"
    dtypes = FLOAT_DTYPES
    cases = _cases(subnormal=False)

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        shape = _transposed_shape(case)
        gate, up = _generate_operand(case, dtype, g, shape), _generate_operand(case, dtype, g, shape)
        if case.edge == "fp16_overflow":
            # The case is about the product overflowing, not infinite inputs (the nan_inf case
            # has those): N(0, 20000^2) rounded to float16 is +-inf beyond 65504, and then an
            # underflowed silu(gate) = -0 times inf is NaN on the device and +-inf in a float64
            # reference that never rounds silu, an artefact of the draw rather than a finding.
            info = torch.finfo(gate.dtype)
            gate, up = (t.clamp(-info.max, info.max) for t in (gate, up))
        return {"gate": gate, "up": up}

    def arrange(self, inputs: Inputs, case: Case) -> Inputs:
        if case.edge == "non_contiguous":
            return {"gate": inputs["gate"].t(), "up": inputs["up"].t()}
        return inputs

    def run(self, inputs: Inputs) -> torch.Tensor:
        return F.silu(inputs["gate"]) * inputs["up"]

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return _silu_reference(inputs["gate"]) * inputs["up"]

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        # silu is rounded to dtype before the product: two roundings (rtol x2). Where silu(gate)
        # underflows (gate below about -17 in float16), that rounding is absolute, up to half a
        # subnormal ulp (Higham 2002, eq. 2.8: fl(x op y) = (x op y)(1 + d) + e, |e| <= half the
        # subnormal spacing), and the product multiplies it by |up|.
        tolerance = elementwise_tolerance(dtype, rtol_scale=2.0)
        info = torch.finfo(torch_dtype(dtype))
        up_bound = min(float(info.max), SIGMA_BOUND * case.options.get("scale", 1.0))
        underflow = up_bound * subnormal_ulp(dtype) / 2
        return Tolerance(
            tolerance.atol + underflow,
            tolerance.rtol,
            tolerance.source + f"; + |up|max x half a subnormal ulp = {underflow:.3g} for silu(gate) "
            f"underflowing before the product (Higham 2002, eq. 2.8), |up|max = min(dtype max, "
            f"{SIGMA_BOUND:g} x input scale)",
        )

    def flops(self, case: Case) -> int:
        return 5 * case["M"] * case["N"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        return element_size(dtype) * 3 * case["M"] * case["N"]


class BroadcastKernel(Kernel):
    """x (M, N) op y (N,): a bias add or a per-channel scale, broadcast over rows."""

    dtypes = ALL_DTYPES

    def __init__(
        self,
        name: str,
        description: str,
        fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        long_sequence: bool = False,
    ):
        self.name = name
        self.description = description
        self._fn = fn
        self.cases = _cases(subnormal=True, long_sequence=long_sequence)

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        x = _generate_operand(case, dtype, g, _transposed_shape(case))
        if case.edge == "subnormal":
            # Multiplying by 1 or 0.5 and adding another subnormal stay exact in gradual underflow.
            y = (
                torch.tensor([1.0, 0.5], dtype=x.dtype).repeat(case["N"] // 2)
                if self.name == "mul"
                else subnormals((case["N"],), dtype, g)
            )
        else:
            y = _generate_operand(case, dtype, g, (case["N"],))
        return {"x": x, "y": y}

    def arrange(self, inputs: Inputs, case: Case) -> Inputs:
        return {**inputs, "x": inputs["x"].t()} if case.edge == "non_contiguous" else inputs

    def run(self, inputs: Inputs) -> torch.Tensor:
        return self._fn(inputs["x"], inputs["y"])

    def reference(self, inputs: Inputs) -> torch.Tensor:
        # int8 wraps around on overflow in PyTorch; the comparison casts the int64 reference to
        # int8, which wraps the same way, so only the wrapping semantics are certified.
        return self._fn(inputs["x"], inputs["y"])

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        if case.edge == "subnormal" and dtype in FLOAT_DTYPES:
            # Subnormal sums and products by 1 or 0.5 are exact in gradual underflow, but a
            # relative tolerance gives a subnormal result less than one ulp of room (rtol x 8
            # ulps << 1 ulp), stricter than any normal-range result: one ulp of rounding would
            # fail by a ratio of 10^5. One subnormal ulp is the same allowance torch.testing's
            # rtol gives normal numbers, and a flush to zero (up to 16 ulps here) still fails.
            tolerance = elementwise_tolerance(dtype, atol=subnormal_ulp(dtype))
            return Tolerance(
                tolerance.atol,
                tolerance.rtol,
                tolerance.source + "; atol = 1 subnormal ulp (IEEE 754-2019 gradual underflow: "
                "the spacing of subnormals is the smallest subnormal)",
            )
        return elementwise_tolerance(dtype)

    def flops(self, case: Case) -> int:
        return case["M"] * case["N"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        return element_size(dtype) * (2 * case["M"] * case["N"] + case["N"])


KERNELS: tuple[Kernel, ...] = (
    UnaryKernel(
        "gelu_erf",
        "GELU, exact erf form",
        lambda x: F.gelu(x),
        _gelu_erf_reference,
        flops_per_element=8,
        rtol_scale=4.0,
    ),
    UnaryKernel(
        "gelu_tanh",
        "GELU, tanh approximation",
        lambda x: F.gelu(x, approximate="tanh"),
        _gelu_tanh_reference,
        flops_per_element=10,
        rtol_scale=4.0,
    ),
    UnaryKernel("silu", "SiLU / swish", F.silu, _silu_reference, flops_per_element=4, rtol_scale=4.0),
    SwigluKernel(),
    BroadcastKernel("add", "x + bias broadcast over rows", torch.add),
    BroadcastKernel("mul", "x * scale broadcast over rows", torch.mul),
)
