"""What a catalog kernel is: cases, seeded inputs, a float64 reference, a device call, tolerances.

Every kernel is defined once here and serves two suites: conformance (device output against
the float64 CPU reference) and performance (FLOP and byte counts, inputs built the same way).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import torch

Inputs = dict[str, Any]  # tensors, plus plain Python options (e.g. "causal": True)

# Named edge cases real hardware gets wrong; a case carries at most one of these tags.
EDGE_CASES: dict[str, str] = {
    "nan_inf": "NaN and +-Inf in the inputs must propagate as IEEE 754 says",
    "masked_rows": "attention rows whose keys are all masked must give zeros, not NaN",
    "fp16_overflow": "magnitudes whose squares or exponentials overflow float16 unless upcast",
    "subnormal": "subnormal inputs and outputs must not be flushed to zero",
    "long_reduction": "K = 16384 positive terms expose accumulation in low precision",
    "non_contiguous": "transposed or strided views must give the same numbers",
    "odd_size": "sizes that are not multiples of any vector width or tile",
    "empty": "zero-sized dimensions must give correctly shaped empty outputs",
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
class Case:
    """One shape (and optional edge condition) of a kernel. `dims` are the named sizes."""

    name: str
    dims: dict[str, int]
    edge: str | None = None
    # Restricts the case to some of the kernel's dtypes (e.g. subnormals differ per format).
    dtypes: tuple[str, ...] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.edge is not None and self.edge not in EDGE_CASES:
            raise ValueError(f"unknown edge case {self.edge!r}")

    def __getitem__(self, key: str) -> int:
        return self.dims[key]


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
    return torch.empty((), dtype=torch_dtype(dtype)).element_size()


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

    def case(self, name: str) -> Case:
        for case in self.cases:
            if case.name == name:
                return case
        raise KeyError(f"kernel {self.name} has no case {name!r}")

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
                    "dims": c.dims,
                    "edge": c.edge,
                    "dtypes": list(c.dtypes) if c.dtypes else None,
                }
                for c in self.cases
            ],
        }
