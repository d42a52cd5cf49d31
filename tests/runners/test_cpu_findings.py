"""The failure message names what is wrong, and this CPU's real findings fail (tests/cpu_findings.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from runners.backends import get_backend
from runners.catalog.elementwise import UnaryKernel, _gelu_erf_reference
from runners.conformance import run_conformance
from runners.document import validate_document
from runners.spec import build_spec
from tests import cpu_findings

CHALLENGE = "0123456789abcdef" * 4


def run(kernels, dtypes, cases, challenge=CHALLENGE):
    spec = build_spec(
        suite="conformance", device="cpu", challenge=challenge, kernels=kernels, dtypes=dtypes, cases=cases
    )
    document = run_conformance(spec, get_backend("cpu"))
    validate_document(document)
    return {(c["kernel"], c["dtype"], c["case"]): c for c in document["cases"]}


def _gelu_without_onednn(x: torch.Tensor) -> torch.Tensor:
    # PyTorch's own kernel (aten), not oneDNN's: correct at +-inf and on subnormals on every CPU.
    with torch.backends.mkldnn.flags(enabled=False):
        return F.gelu(x)


class GeluNanAtInf(UnaryKernel):
    def __init__(self) -> None:
        super().__init__(
            "gelu_nan_at_inf",
            "gelu(+inf) = NaN",
            _gelu_without_onednn,
            _gelu_erf_reference,
            flops_per_element=8,
        )

    def run(self, inputs):
        out = super().run(inputs)
        return torch.where(inputs["x"] == math.inf, torch.full_like(out, math.nan), out)


class GeluFlushing(UnaryKernel):
    def __init__(self) -> None:
        super().__init__(
            "gelu_flushing",
            "gelu with flush to zero",
            _gelu_without_onednn,
            _gelu_erf_reference,
            flops_per_element=8,
        )

    def run(self, inputs):
        out = super().run(inputs)
        return torch.where(out.abs() < torch.finfo(out.dtype).smallest_normal, torch.zeros_like(out), out)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_a_nan_in_place_of_inf_is_named_with_its_input_in_the_failure_message(registered, dtype):
    registered(GeluNanAtInf())
    case = run(["gelu_nan_at_inf"], [dtype], ["nan_inf"])[("gelu_nan_at_inf", dtype, "nan_inf")]
    assert case["status"] == "fail" and case["stats"]["mismatches"] == 1
    # max_abs cannot show it (a NaN has no finite error): the message does.
    assert "NaN/Inf placement differs from the reference at 1: e.g. element [" in case["message"]
    assert case["message"].endswith("(x=inf) gave nan, reference inf"), case["message"]


def test_a_flush_to_zero_is_named_in_the_failure_message(registered):
    registered(GeluFlushing())
    case = run(["gelu_flushing"], ["float32"], ["subnormals"])[("gelu_flushing", "float32", "subnormals")]
    assert case["status"] == "fail"
    assert f"flushed to zero at {case['stats']['mismatches']}: e.g. element [" in case["message"], case
    assert "gave 0, reference" in case["message"] or "gave -0, reference" in case["message"]


def test_the_control_without_onednn_passes_both_cases():
    """The same torch with oneDNN off is correct on this machine too: the findings are oneDNN's."""
    with torch.backends.mkldnn.flags(enabled=False):
        cases = run(["gelu_erf", "matmul"], ["float32", "bfloat16", "float16"], ["nan_inf", "subnormals"])
    assert {c["status"] for c in cases.values()} == {"pass"}, cpu_findings.unexplained(list(cases.values()))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_this_cpus_gelu_of_inf_fails_the_nan_inf_case_exactly_when_the_probe_sees_it(dtype):
    case = run(["gelu_erf"], [dtype], ["nan_inf"])[("gelu_erf", dtype, "nan_inf")]
    nan_at_inf = any(f.key == "gelu_inf_nan" and dtype in f.dtypes for f in cpu_findings.present())
    if nan_at_inf:
        assert case["status"] == "fail" and case["stats"]["mismatches"] == 1, case
        assert cpu_findings.explained(case).key == "gelu_inf_nan", case["message"]
    else:
        assert case["status"] == "pass", case


def test_this_cpus_bfloat16_gelu_fails_the_subnormal_case_exactly_when_the_probe_sees_a_flush():
    case = run(["gelu_erf"], ["bfloat16"], ["subnormals"])[("gelu_erf", "bfloat16", "subnormals")]
    if any(f.key == "gelu_bf16_ftz" for f in cpu_findings.present()):
        assert case["status"] == "fail" and cpu_findings.explained(case).key == "gelu_bf16_ftz", case
    else:
        assert case["status"] == "pass", case


@pytest.mark.parametrize("challenge", [f"{i:064x}" for i in range(3)])
def test_the_honest_cpu_fails_the_edge_cases_only_by_this_machines_findings(challenge):
    cases = run(
        ["gelu_erf", "gelu_tanh", "silu", "matmul", "linear", "conv2d_nchw", "conv2d_channels_last"],
        ["float32", "bfloat16", "float16"],
        ["nan_inf", "subnormals", "large_magnitudes"],
        challenge,
    )
    assert cases and not cpu_findings.unexplained(list(cases.values())), cpu_findings.unexplained(
        list(cases.values())
    )


def _conv_leaks_anywhere(channels_last: bool) -> bool:
    """An independent scan: +inf at every input position of a small odd-channel conv, in turn."""
    g = torch.Generator().manual_seed(1)
    base = torch.randn(1, 7, 5, 6, generator=g).bfloat16()
    w = torch.randn(9, 7, 3, 3, generator=g).bfloat16()
    for index in range(base.numel()):
        x = base.clone()
        x.view(-1)[index] = math.inf
        reference = F.conv2d(x.double(), w.double(), padding=1)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = F.conv2d(x, w, padding=1)
        if bool((~out.isfinite() & reference.isfinite()).any()):
            return True
    return False


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_conv_probe_sees_every_non_finite_spread_a_scan_of_input_positions_finds(channels_last):
    """The probe must not miss this machine's fault (a missed probe turns a real finding into a flaky
    'honest CPU fails' test), nor invent one: it agrees with a scan of every input position."""
    probed = any(f.key == "bf16_conv2d_nan_spread" for f in cpu_findings.present())
    assert probed == _conv_leaks_anywhere(channels_last)
