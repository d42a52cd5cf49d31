"""What a catalog kernel is: cases, seeded inputs, a float64 reference, a device call, tolerances.

Every kernel is defined once here and serves two suites: conformance (device output against
the float64 CPU reference) and performance (FLOP and byte counts, inputs built the same way).
"""

from __future__ import annotations

import ast
import hashlib
import math
import operator
import random
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

import torch

Inputs = dict[str, Any]  # tensors, plus plain Python options (e.g. "causal": True)

# Named edge cases real hardware gets wrong; a case carries at most one of these tags.
EDGE_CASES: dict[str, str] = {
    "nan_inf": "NaN and +-Inf in the inputs must propagate as IEEE 754 says",
    "masked_rows": "attention rows whose keys are all masked must give zeros, not NaN",
    "fp16_overflow": "magnitudes whose squares or exponentials overflow float16 unless upcast",
    "subnormal": "subnormal inputs and outputs must not be flushed to zero",
    "long_reduction": "K >= 16384 positive terms expose accumulation in low precision",
    "non_contiguous": "transposed or strided views must give the same numbers",
    "odd_size": "sizes that are not multiples of any vector width or tile",
    "empty": "zero-sized dimensions must give correctly shaped empty outputs",
    "ties": "equal scores inside a top-k selection must get equal weights and leave the selection unchanged",
    "all_equal": "all scores equal: the bias alone decides, or (no bias) any k experts with the tied weight",
}

FLOAT_DTYPES = ("float32", "bfloat16", "float16")
ALL_DTYPES = ("float32", "bfloat16", "float16", "int8")
FP8_DTYPES = ("float8_e4m3fn",)


def torch_dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return dtype


@dataclass(frozen=True)
class Span:
    """A dimension drawn from the challenge: a value in [low, high] (both included), a multiple of
    `multiple`, and odd when `odd` (no vector width or tile divides it)."""

    low: int
    high: int
    multiple: int = 1
    odd: bool = False

    def __post_init__(self) -> None:
        if not self.choices():
            raise ValueError(f"empty span {self}")

    def choices(self) -> range:
        if self.odd:
            start = self.low if self.low % 2 else self.low + 1
            return range(start, self.high + 1, 2)
        start = -(-self.low // self.multiple) * self.multiple
        return range(start, self.high + 1, self.multiple)

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"min": self.low, "max": self.high}
        if self.multiple != 1:
            described["multiple_of"] = self.multiple
        if self.odd:
            described["odd"] = True
        return described


@dataclass(frozen=True)
class Derived:
    """A dimension computed from the drawn ones: `+ - * //`, integers, names of other dims,
    `min(...)` and `max(...)` (e.g. "Hkv * group": grouped-query heads stay a multiple of KV heads)."""

    expression: str

    def evaluate(self, dims: dict[str, int]) -> int:
        return _evaluate(ast.parse(self.expression, mode="eval").body, dims)

    def describe(self) -> dict[str, Any]:
        return {"derived": self.expression}


_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
}


def _evaluate(node: ast.AST, dims: dict[str, int]) -> int:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.Name) and node.id in dims:
        return dims[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left, dims), _evaluate(node.right, dims))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max"):
        values = [_evaluate(arg, dims) for arg in node.args]
        return min(values) if node.func.id == "min" else max(values)
    raise ValueError(f"not a dimension expression: {ast.unparse(node)}")


Dim = int | Span | Derived


def shape_seed(challenge: str, kernel: str, case: str) -> int:
    """The seed of a case's dimensions: the challenge and the case's identity (not the dtype, so
    every dtype of a case runs the same shape)."""
    digest = hashlib.sha256(f"shape|{challenge}|{kernel}|{case}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


# The cases drawn inside `drawn_cases_kept()`: (challenge, kernel, id(case)) -> (case, drawn case). The
# case itself is kept beside its draw, so its id cannot be reused by another object while the block runs.
_DRAWN: ContextVar[dict[tuple[str, str, int], tuple[Case, Case]] | None] = ContextVar(
    "drawn_cases", default=None
)


@contextmanager
def drawn_cases_kept() -> Iterator[None]:
    """Within the block each case's dimensions are drawn once per challenge and kernel, however many
    checks ask for them (ingestion draws every case of a conformance job for the plan check, and the
    reveal's sample draws them again to price each output). A draw is deterministic, so nothing but
    the work changes; the memory is the block's own, never shared between jobs or tasks."""
    token = _DRAWN.set({})
    try:
        yield
    finally:
        _DRAWN.reset(token)


@dataclass(frozen=True)
class Case:
    """One case of a kernel: its structure (edge condition, layout, model role, options) and its
    named dimensions. In the catalog a dimension is fixed (int), drawn (Span) or computed from the
    others (Derived); `draw(challenge, kernel)` gives the case a job runs, every dimension an int,
    so no shape is known before the job (as NIST ACVP draws its vector parameters)."""

    name: str
    dims: dict[str, Dim]
    edge: str | None = None
    # Restricts the case to some of the kernel's dtypes (e.g. subnormals differ per format).
    dtypes: tuple[str, ...] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.edge is not None and self.edge not in EDGE_CASES:
            raise ValueError(f"unknown edge case {self.edge!r}")

    def __getitem__(self, key: str) -> int:
        value = self.dims[key]
        if not isinstance(value, int):
            raise TypeError(f"case {self.name}: dimension {key} is {value}, not drawn yet (Case.draw)")
        return value

    @property
    def drawn(self) -> bool:
        return all(isinstance(value, int) for value in self.dims.values())

    def draw(self, challenge: str, kernel: str) -> Case:
        """This case with every dimension drawn from the challenge (deterministic: the platform
        draws the same from the same challenge)."""
        if self.drawn:
            return self
        memo = _DRAWN.get()
        if memo is None:
            return self._draw(challenge, kernel)
        kept = memo.get((challenge, kernel, id(self)))
        if kept is None or kept[0] is not self:
            kept = memo[(challenge, kernel, id(self))] = (self, self._draw(challenge, kernel))
        return kept[1]

    def _draw(self, challenge: str, kernel: str) -> Case:
        rng = random.Random(shape_seed(challenge, kernel, self.name))
        dims: dict[str, int] = {}
        for key, value in self.dims.items():  # spans in declaration order, derived ones after
            if isinstance(value, int):
                dims[key] = value
            elif isinstance(value, Span):
                dims[key] = rng.choice(value.choices())
        for key, value in self.dims.items():
            if isinstance(value, Derived):
                dims[key] = value.evaluate(dims)
        return replace(self, dims={key: dims[key] for key in self.dims})

    def describe_dims(self) -> dict[str, Any]:
        return {
            key: value if isinstance(value, int) else value.describe() for key, value in self.dims.items()
        }


@dataclass(frozen=True)
class Tolerance:
    """|out - ref| <= atol + rtol * |ref| elementwise, where `source` says where the numbers come from."""

    atol: float
    rtol: float
    source: str


# torch.testing.assert_close defaults (torch/testing/_comparison.py, default_tolerances).
# float8 has no torch.testing default; one unit of its 3-bit mantissa (eps = 2**-3) is used.
TORCH_TESTING_DEFAULTS: dict[str, tuple[float, float]] = {
    "float32": (1e-5, 1.3e-6),
    "bfloat16": (1e-5, 1.6e-2),
    "float16": (1e-5, 1e-3),
    "float8_e4m3fn": (1e-5, 0.125),
    "float8_e5m2": (1e-5, 0.25),
}
FLOAT32_EPS = float(torch.finfo(torch.float32).eps)


def elementwise_tolerance(dtype: str, rtol_scale: float = 1.0, atol: float | None = None) -> Tolerance:
    """One rounding to the output dtype: torch.testing's defaults, optionally widened by a factor."""
    if dtype not in TORCH_TESTING_DEFAULTS:
        return Tolerance(0.0, 0.0, "integer arithmetic is exact")
    base_atol, base_rtol = TORCH_TESTING_DEFAULTS[dtype]
    source = "torch.testing.assert_close defaults"
    if rtol_scale != 1.0:
        source += f", rtol x{rtol_scale:g} (PyTorch OpInfo-style override for transcendental ops)"
    return Tolerance(base_atol if atol is None else atol, base_rtol * rtol_scale, source)


def reduction_tolerance(dtype: str, length: int, term_magnitude: float = 1.0) -> Tolerance:
    """A sum of `length` terms accumulated in float32 (as every sane device does), rounded once.

    Probabilistic rounding-error analysis bounds a float32 sum's error by about
    sqrt(K) * eps32 * sum|t_i| (Higham & Mary, SIAM J. Sci. Comput. 41(5), 2019), here taken
    twice, with sum|t_i| <= K * term_magnitude. Only an accumulator narrower than float32, or
    a dropped term, exceeds it. The output's own rounding to `dtype` is torch.testing's rtol.
    """
    if dtype not in TORCH_TESTING_DEFAULTS:
        return Tolerance(0.0, 0.0, "integer arithmetic is exact")
    base_atol, base_rtol = TORCH_TESTING_DEFAULTS[dtype]
    k = max(length, 1)
    accumulation = 2.0 * math.sqrt(k) * FLOAT32_EPS * k * term_magnitude
    return Tolerance(
        base_atol + accumulation,
        base_rtol,
        f"torch.testing defaults for {dtype} + float32 accumulation bound 2*sqrt(K)*eps32*K*|t| "
        f"(Higham & Mary 2019) with K={length}, |t|={term_magnitude:g}",
    )


# Componentwise error bounds (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed.,
# SIAM 2002: s2.2 for the model fl(x op y) = (x op y)(1 + d), |d| <= u, plus an absolute error of at
# most half the subnormal spacing under gradual underflow; s3.1 (3.4)-(3.5) for inner products and
# s3.5 for matrix products, |C - fl(AB)| <= gamma_k |A||B| with gamma_k = k u / (1 - k u), for any
# order of summation). The intermediates are float32 accumulators: the runner pins the math modes
# that would narrow them (runners/math_modes.py: no TF32, no reduced-precision reductions).
ACCUMULATOR_DTYPE = "float32"
FLOAT64_UNIT_ROUNDOFF = 2.0**-53
HIGHAM = 'Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed. (SIAM 2002)'


def unit_roundoff(dtype: str) -> float:
    """u = 2**-p for a float format with p significand bits (half its machine epsilon)."""
    return float(torch.finfo(torch_dtype(dtype)).eps) / 2


def gamma(k: int, u: float) -> float:
    """Higham's gamma_k = k u / (1 - k u), the relative error bound of k roundings (infinite when k u >= 1)."""
    ku = max(k, 0) * u
    return ku / (1.0 - ku) if ku < 1.0 else math.inf


def accumulation_gamma(k: int) -> float:
    """gamma_k of a k-term float32 accumulation, plus that of the float64 reference computing the same sum."""
    return gamma(k, unit_roundoff(ACCUMULATOR_DTYPE)) + gamma(k, FLOAT64_UNIT_ROUNDOFF)


def exact_tolerance(reason: str) -> Tolerance:
    return Tolerance(0.0, 0.0, reason)


def accumulation_tolerance(dtype: str, k: int, what: str) -> Tolerance:
    """The scalar part of the componentwise bound of a k-term sum accumulated in float32 and rounded
    once to `dtype`; the kernel's `error_bound` adds gamma_k * (the same sum over |terms|) per element.

    Device and reference each round the exact result to `dtype` once: rtol 2u/(1 - u), and half a
    subnormal spacing each (atol = one spacing). Integer outputs are exact."""
    if dtype not in TORCH_TESTING_DEFAULTS:
        return exact_tolerance("integer arithmetic is exact")
    u = unit_roundoff(dtype)
    return Tolerance(
        subnormal_ulp(dtype),
        2 * u / (1 - u),
        f"componentwise bound |out - ref| <= (1 + u) gamma_k * {what} + 2u/(1 - u) |ref| + one subnormal spacing, "
        f"k = {k} terms accumulated in float32 (gamma_k = k u32 / (1 - k u32), u32 = 2^-24, plus gamma_k "
        f"of the float64 reference), u = 2^-{round(-math.log2(u))} for the {dtype} output: {HIGHAM}, "
        "s3.1 and s3.5",
    )


def abs32(tensor: torch.Tensor) -> torch.Tensor:
    """|tensor| in float32, for computing a bound's magnitude (|A||B|) at half the float64 cost; every
    catalog input is exact in float32, and accumulation_bound allows for the float32 sum's own error."""
    return tensor.abs().to(torch.float32)


def accumulation_bound(magnitude: torch.Tensor, k: int, dtype: str) -> torch.Tensor:
    """(1 + u) gamma_k * magnitude, where `magnitude` is the sum over |terms| (|A||B| for a product)
    and u the output dtype's unit roundoff: the device's final rounding scales the accumulation error.
    A magnitude summed in float32 (abs32) may be low by gamma_k(u32) of itself, so it is divided by
    1 - gamma_k(u32) (non-negative terms: Higham 2002, s3.1)."""
    u = unit_roundoff(dtype) if dtype in TORCH_TESTING_DEFAULTS else 0.0
    factor = accumulation_gamma(k) * (1 + u)
    if magnitude.dtype == torch.float32:
        factor /= max(1.0 - gamma(k, unit_roundoff("float32")), 1e-300)
    return torch.nan_to_num(magnitude.to(torch.float64).abs() * factor, nan=0.0)


def case_seed(challenge: str, kernel: str, case: str, dtype: str) -> int:
    """A 63-bit generator seed unique to (challenge, kernel, case, dtype)."""
    digest = hashlib.sha256(f"{challenge}|{kernel}|{case}|{dtype}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def case_generator(challenge: str, kernel: str, case: str, dtype: str) -> torch.Generator:
    # Inputs are always drawn on the CPU: the CPU generator's stream is the same on every host,
    # which is what lets the platform recompute a case from the challenge alone.
    return torch.Generator(device="cpu").manual_seed(case_seed(challenge, kernel, case, dtype))


def randn(shape: tuple[int, ...], dtype: str, g: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(shape, generator=g, dtype=torch.float32) * scale).to(torch_dtype(dtype))


def uniform(shape: tuple[int, ...], dtype: str, g: torch.Generator, low: float, high: float) -> torch.Tensor:
    values = torch.rand(shape, generator=g, dtype=torch.float32) * (high - low) + low
    return values.to(torch_dtype(dtype))


def randint8(shape: tuple[int, ...], g: torch.Generator, low: int = -128, high: int = 128) -> torch.Tensor:
    return torch.randint(low, high, shape, generator=g, dtype=torch.int8)


def values_for(shape: tuple[int, ...], dtype: str, g: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    """Normal floats for float dtypes; the full int8 range for int8."""
    if dtype == "int8":
        return randint8(shape, g)
    return randn(shape, dtype, g, scale)


def inject_nan_inf(tensor: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Puts one NaN, one +Inf and one -Inf at seeded positions of a float tensor."""
    flat = tensor.clone().reshape(-1)
    if flat.numel() < 3:
        return tensor
    positions = torch.randperm(flat.numel(), generator=g)[:3]
    flat[positions[0]] = float("nan")
    flat[positions[1]] = float("inf")
    flat[positions[2]] = float("-inf")
    return flat.reshape(tensor.shape)


def subnormal_ulp(dtype: str) -> float:
    """The spacing of the dtype's subnormals, which is its smallest subnormal (0 for integers)."""
    if dtype not in TORCH_TESTING_DEFAULTS:
        return 0.0
    info = torch.finfo(torch_dtype(dtype))
    return float(info.smallest_normal * info.eps)  # eps = 2**-mantissa_bits


def subnormals(shape: tuple[int, ...], dtype: str, g: torch.Generator) -> torch.Tensor:
    """Small integer multiples of the dtype's smallest subnormal: exact, far below normal range."""
    info = torch.finfo(torch_dtype(dtype))
    smallest_subnormal = info.smallest_normal * info.eps  # eps = 2**-mantissa_bits
    multiples = torch.randint(-8, 9, shape, generator=g).to(torch.float64)
    return (multiples * smallest_subnormal).to(torch_dtype(dtype))


def element_size(dtype: str) -> int:
    return torch_dtype(dtype).itemsize  # no tensor allocated: called for every case a reveal prices


def numel(*shape: int) -> int:
    return math.prod(shape)


class Kernel:
    """One inference kernel. Subclasses set the class attributes and implement the hooks.

    Contract for the hooks: `generate` draws CPU tensors in the case's dtype from the
    generator only; `arrange` turns them into the layout the device call receives (views,
    channels_last) and must not change values; `run` is the device call under test and must
    not modify its inputs; `reference` receives float64 (floats) or int64 (integers) CPU
    copies of the arranged inputs and returns the exact answer in float64 or int64.
    """

    name: str = ""
    description: str = ""
    dtypes: tuple[str, ...] = FLOAT_DTYPES
    cases: tuple[Case, ...] = ()

    def cases_for(self, dtype: str) -> list[Case]:
        return [case for case in self.cases if case.dtypes is None or dtype in case.dtypes]

    def case(self, name: str, challenge: str | None = None) -> Case:
        """The catalog's case `name`; drawn from `challenge` when one is given."""
        for case in self.cases:
            if case.name == name:
                return case if challenge is None else case.draw(challenge, self.name)
        raise KeyError(f"kernel {self.name} has no case {name!r}")

    def drawn_cases(self, dtype: str, challenge: str) -> list[Case]:
        """The cases a job of `challenge` runs in `dtype`, every dimension drawn."""
        return [case.draw(challenge, self.name) for case in self.cases_for(dtype)]

    # --- inputs -----------------------------------------------------------------------
    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        raise NotImplementedError

    def arrange(self, inputs: Inputs, case: Case) -> Inputs:
        return inputs

    def make_inputs(
        self, case: Case, dtype: str, generator: torch.Generator, device: torch.device | str
    ) -> Inputs:
        """Inputs on `device` ready for `run` (what the performance suite calls)."""
        raw = self.generate(case, dtype, generator)
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in raw.items()}
        return self.arrange(moved, case)

    # --- computation --------------------------------------------------------------------
    def run(self, inputs: Inputs) -> Any:
        raise NotImplementedError

    def reference(self, inputs: Inputs) -> torch.Tensor:
        raise NotImplementedError

    def comparable(self, output: Any, inputs: Inputs) -> torch.Tensor:
        """Turns the device call's output into the tensor compared with the reference."""
        return output

    def output_dtype(self, dtype: str) -> torch.dtype:
        return torch_dtype(dtype)

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return elementwise_tolerance(dtype)

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor | None:
        """A componentwise allowance added to the tolerance's atol + rtol * |ref|, element by element,
        computed from the float64 copies of the arranged inputs (as `reference` gets them); None
        where the scalar tolerance is the whole bound. A NaN allowance counts as none."""
        return None

    # --- cost model (performance suite) -----------------------------------------------
    def flops(self, case: Case) -> int:
        return 0

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        """Minimum bytes moved to and from device memory: each input read and output written once."""
        return 0

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "dtypes": list(self.dtypes),
            "cases": [
                {
                    "name": c.name,
                    # What a job may draw, never a shape: the job's challenge picks the dimensions.
                    "ranges": c.describe_dims(),
                    "options": c.options,
                    "edge": c.edge,
                    "dtypes": list(c.dtypes) if c.dtypes else None,
                }
                for c in self.cases
            ],
        }
