"""Real findings of the honest local CPU backend, detected by probing this machine's torch.

The conformance suite is right to fail these cases: each is a deviation of the device (PyTorch's
CPU build routes the call to oneDNN, whose AVX-512 / AMX kernels give it) from the IEEE 754 float64
reference, and with oneDNN disabled (torch.backends.mkldnn.flags(enabled=False)) or limited to AVX2
(ONEDNN_MAX_CPU_ISA=AVX2) the same torch passes them. They appear on CPUs with AVX-512 (gelu) and
AVX-512 BF16 / AMX (the rest); CPUs without those pass. Tests that assert "the honest CPU passes"
use `explained` to accept exactly these failures, and only where the probe shows the deviation here,
so a machine without it still has to pass and a new deviation still turns them red.

Probes are tiny fixed inputs with a known exact answer, not runs of the suite.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Finding:
    key: str
    kernels: tuple[str, ...]
    dtypes: tuple[str, ...]
    cases: tuple[str, ...]
    message: (
        str  # the part of the case's failure message (runners.conformance.describe_mismatches) that states it
    )
    always: bool  # every draw of the case fails (False: only draws whose shapes hit the kernel's fault)
    reason: str


def _gelu_of_inf_is_nan(dtype: torch.dtype) -> bool:
    # gelu(x) = x Phi(x): gelu(+inf) = +inf (the float64 reference: 0.5 * inf * (1 + erf(inf)) = inf).
    return bool(F.gelu(torch.full((16,), math.inf, dtype=dtype)).isnan().any())


def _gelu_flushes_bfloat16_subnormals() -> bool:
    # gelu(2e-38) = 1e-38 (1 + O(1e-38)): a bfloat16 subnormal (smallest normal 1.18e-38), not zero.
    x = torch.full((16,), 2e-38, dtype=torch.bfloat16)
    return bool((F.gelu(x) == 0).any())


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _bfloat16_gemm_spreads_non_finite_rows(kernel: str) -> bool:
    # C = A B with A[14, 3] = +inf: only row 14 of C may be non-finite (every B entry is non-zero).
    g = _generator()
    a = torch.randn(34, 35, generator=g).bfloat16()
    b = torch.randn(35, 26, generator=g).bfloat16()
    a[14, 3] = math.inf
    out = torch.matmul(a, b) if kernel == "matmul" else F.linear(a, b.t().contiguous())
    others = torch.cat([out[:14], out[15:]])
    return bool((~others.isfinite()).any())


def _bfloat16_conv2d_spreads_non_finite() -> bool:
    # 3x3 convolution, padding 1, one +inf input: outputs whose window misses it must stay finite.
    # Two placements, one per fault seen: a middle channel (AMX brg_conv_fwd) and the last of an odd
    # number of channels (AVX-512 BF16 jit_bf16, whose weights pair channels and pad the odd one out
    # with zeros: inf x 0 = NaN lands on outputs the inf never touched).
    for position in ((0, 5, 7, 5), (0, 10, 0, 3)):
        g = _generator()
        x = torch.randn(1, 11, 8, 7, generator=g).bfloat16()
        w = torch.randn(11, 11, 3, 3, generator=g).bfloat16()
        x[position] = math.inf
        out = F.conv2d(x, w, padding=1)
        reference = F.conv2d(x.double(), w.double(), padding=1)
        if bool((~out.isfinite() & reference.isfinite()).any()):
            return True
    return False


ONEDNN = "oneDNN (torch.backends.mkldnn) on this CPU"


@functools.cache
def present() -> tuple[Finding, ...]:
    """The findings that this machine's torch shows."""
    found = []
    inf_nan = tuple(
        name for name in ("float32", "bfloat16", "float16") if _gelu_of_inf_is_nan(getattr(torch, name))
    )
    if inf_nan:
        found.append(
            Finding(
                "gelu_inf_nan",
                ("gelu_erf",),
                inf_nan,
                ("nan_inf", "large_magnitudes"),  # float16 N(0, 20000^2) rounds to +inf beyond 65504
                "(x=inf) gave nan, reference inf",
                always=False,  # large_magnitudes holds +inf only in some draws
                reason=f"gelu(+inf) returns NaN instead of +inf ({ONEDNN}: eltwise_gelu_erf AVX-512 JIT)",
            )
        )
    if _gelu_flushes_bfloat16_subnormals():
        found.append(
            Finding(
                "gelu_bf16_ftz",
                ("gelu_erf",),
                ("bfloat16",),
                ("subnormals",),
                "flushed to zero",
                always=True,
                reason=f"bfloat16 gelu flushes subnormal results to zero ({ONEDNN}: the AVX-512 BF16 "
                "conversion always flushes; Intel BFLOAT16 Hardware Numerics Definition, 338302-001US)",
            )
        )
    gemms = tuple(k for k in ("matmul", "linear") if _bfloat16_gemm_spreads_non_finite_rows(k))
    if gemms:
        found.append(
            Finding(
                "bf16_matmul_nan_rows",
                gemms,
                ("bfloat16",),
                ("nan_inf",),
                "NaN/Inf placement differs from the reference",
                always=False,  # only K of 33..63 and some M, N blockings
                reason=f"bfloat16 matmul / linear turn the finite row before a NaN/Inf row into NaN ({ONEDNN}: "
                "brg_matmul avx10_1_512_amx)",
            )
        )
    if _bfloat16_conv2d_spreads_non_finite():
        found.append(
            Finding(
                "bf16_conv2d_nan_spread",
                ("conv2d_nchw", "conv2d_channels_last"),
                ("bfloat16",),
                ("nan_inf",),
                "NaN/Inf placement differs from the reference",
                always=False,
                reason=f"bfloat16 conv2d gives NaN outside the window of the NaN/Inf inputs ({ONEDNN}: "
                "brg_conv_fwd avx10_1_512_amx, or jit_bf16 avx512_core_bf16 when the inf is in the last "
                "of an odd number of input channels)",
            )
        )
    return tuple(found)


def explained(record: dict[str, Any]) -> Finding | None:
    """The finding of this machine that a failed case record is, or None (then it is a real failure)."""
    for finding in present():
        if (
            record.get("status") == "fail"
            and record.get("kernel") in finding.kernels
            and record.get("dtype") in finding.dtypes
            and record.get("case") in finding.cases
            and finding.message in (record.get("message") or "")
        ):
            return finding
    return None


def unexplained(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records that neither passed nor are one of this machine's findings."""
    return [r for r in records if r.get("status") != "pass" and explained(r) is None]
