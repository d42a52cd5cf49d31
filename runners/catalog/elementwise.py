"""Elementwise kernels: GELU (erf, tanh), SiLU, SwiGLU, and broadcast add / mul."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from runners.catalog.base import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    HIGHAM,
    Case,
    Inputs,
    Kernel,
    Span,
    Tolerance,
    element_size,
    elementwise_tolerance,
    exact_tolerance,
    inject_nan_inf,
    subnormal_ulp,
    subnormals,
    unit_roundoff,
    values_for,
)
from runners.catalog.shapes import LONG_SEQ, MODEL_HIDDEN, MODEL_INTERMEDIATE, SEQ_DECODE, SHORT_SEQ

# Inputs are N(0, scale^2): |x| <= 6 scale for all but 2e-9 of them (a 1024-element case
# exceeds it once in 5e5 runs).
SIGMA_BOUND = 6.0
# A float32 silu (x / (1 + exp(-x)): a correctly rounded or 2-ulp exp, an add, a divide) is within
# 8 ulps of float32 of the exact value (CUDA C Programming Guide, appendix "Mathematical Functions":
# expf 2 ulps, division correctly rounded; glibc expf < 1 ulp).
SILU_FLOAT32_ULPS = 8.0
# Below -ln(float32 max) = -88.72, exp(-x) overflows float32 and x / (1 + exp(-x)) is -0 while the exact
# silu is still a float32 number (89 e^-89 = 2e-37): that evaluation error is all of |silu(x)|.
FLOAT32_EXP_OVERFLOW = math.log(float(torch.finfo(torch.float32).max))


def _cases(*, subnormal: bool, long_sequence: bool = False) -> tuple[Case, ...]:
    # Elementwise numerics do not depend on the tensor's size; the 2048x4096 shape (8M
    # elements) is kept only where it is the real workload (the residual add) to save time.
    cases = [
        Case("llama_hidden_decode", {"M": SEQ_DECODE, "N": MODEL_HIDDEN}),
        Case("llama_mlp_short_prefill", {"M": SHORT_SEQ, "N": MODEL_INTERMEDIATE}),
        Case("odd_sizes", {"M": Span(5, 11, odd=True), "N": Span(769, 1279, odd=True)}, edge="odd_size"),
        Case("transposed", {"M": Span(48, 80), "N": Span(80, 112, 2)}, edge="non_contiguous"),
        Case("nan_inf", {"M": Span(12, 20), "N": Span(48, 80)}, edge="nan_inf", dtypes=FLOAT_DTYPES),
        Case(
            "large_magnitudes",
            {"M": Span(12, 20), "N": Span(48, 80)},
            edge="fp16_overflow",
            dtypes=FLOAT_DTYPES,
            options={"scale": 20000.0},
        ),
        Case("empty", {"M": 0, "N": Span(48, 80)}, edge="empty"),
    ]
    if long_sequence:
        cases.insert(2, Case("llama_hidden_long_prefill", {"M": LONG_SEQ, "N": MODEL_HIDDEN}))
    if subnormal:
        # N even: the mul case scales by a repeating (1, 0.5) pattern.
        cases.append(
            Case(
                "subnormals", {"M": Span(12, 20), "N": Span(48, 80, 2)}, edge="subnormal", dtypes=FLOAT_DTYPES
            )
        )
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
        # The scalar part: the output's rounding, on the device and in the reference (2u|ref|, and
        # half a subnormal spacing each). The rest is componentwise, in the intermediates (error_bound).
        u = unit_roundoff(dtype)
        return Tolerance(
            subnormal_ulp(dtype),
            2 * u / (1 - u),
            f"two-rounding budget of silu(gate) * up in {dtype}: |out - ref| <= "
            f"(u + {SILU_FLOAT32_ULPS:g} ulps of float32) |silu(gate)||up| for silu computed and rounded to "
            f"{dtype} + |up| x half a subnormal spacing where silu(gate) underflows + u|silu(gate) up| "
            f"for the product's rounding + 2u|ref| + one subnormal spacing (u = 2^-{round(-math.log2(u))}), "
            "+ |silu(gate) up| where gate < -88.72 (exp(-gate) overflows float32, silu evaluates to -0); "
            f"{HIGHAM}, s2.2 (model of floating-point arithmetic with gradual underflow)",
        )

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor:
        """Componentwise, from the intermediates: s = fl(silu(gate)) errs by (u + e_f)|silu(gate)| + eta/2
        (eta: the subnormal spacing; e_f: float32 evaluation of silu), which the product scales by |up|;
        the product's own rounding adds u|s up|."""
        u = unit_roundoff(dtype)
        eta = subnormal_ulp(dtype)
        e_f = SILU_FLOAT32_ULPS * 2 * unit_roundoff("float32")
        silu, up = _silu_reference(inputs["gate"]).abs(), inputs["up"].abs()
        bound = (2 * u + e_f) * (1 + u) * silu * up + up * (eta / 2) * (1 + u)
        flushed = inputs["gate"] < -FLOAT32_EXP_OVERFLOW  # silu(gate) may come back as -0
        bound = bound + torch.where(flushed, silu * up * (1 + u), 0.0)
        return torch.nan_to_num(bound, nan=0.0)

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
        # IEEE 754-2019 s4.3 and s5.4.1: a sum or product of two floats is the exact result rounded
        # once (round to nearest even), subnormal results included (gradual underflow), so it has one
        # correct answer: the float64 reference (exact for two float32 operands) rounded to the dtype.
        # Integers wrap as PyTorch's do (the int64 reference cast to int8 wraps the same way).
        if dtype in FLOAT_DTYPES:
            return exact_tolerance(
                "bit-exact known answer: IEEE 754-2019 s4.3/s5.4.1 correctly rounded addition and "
                "multiplication (gradual underflow included), the exact float64 result rounded once"
            )
        return exact_tolerance("integer arithmetic is exact (two's-complement wrap-around as in PyTorch)")

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
