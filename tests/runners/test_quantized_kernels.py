"""Quantized kernels (issue 16): FP8 block-scaled GEMM and its quantize step, W8A8 int8 and int4
weight-only GEMMs. The honest CPU passes them; each planted fault (FP8 without promotion, per-tensor
scales where blocks have their own, swapped int4 nibbles, one activation scale for every token) is
caught by the suite."""

from __future__ import annotations

import pytest
import torch

from runners.backends import get_backend
from runners.catalog import get_kernel
from runners.catalog.quantized import (
    BLOCK,
    FP8_MAX,
    SCALE_FLOOR,
    Fp8BlockGemmKernel,
    Fp8BlockQuantKernel,
    Int4WeightOnlyGemmKernel,
    Int8PerTokenQuantKernel,
    W8A8Int8GemmKernel,
    block_scaled_gemm,
    pack_int4,
    row_scales,
    unpack_int4,
)
from runners.conformance import run_conformance
from runners.document import validate_document
from runners.spec import build_spec
from tests.runners.planted_fp8 import narrow_dot, no_promotion_gemm, per_tensor_act_quant

CHALLENGE = "5eed" * 16
NEW_KERNELS = [
    "fp8_act_quant",
    "fp8_weight_quant",
    "fp8_weight_dequant",
    "fp8_block_gemm",
    "int8_per_token_quant",
    "w8a8_int8_gemm",
    "int4_weight_only_gemm",
]


def run(kernels, challenge=CHALLENGE, dtypes=None, cases=None) -> dict:
    spec = build_spec(
        suite="conformance", device="cpu", challenge=challenge, kernels=kernels, dtypes=dtypes, cases=cases
    )
    document = run_conformance(spec, get_backend("cpu"))
    validate_document(document)
    return document


def statuses(document: dict) -> dict[tuple[str, str], str]:
    return {(c["dtype"], c["case"]): c["status"] for c in document["cases"]}


# --- a simulated Hopper FP8 tensor core ---------------------------------------------------------


class HopperPromoting(Fp8BlockGemmKernel):
    """FP22 partial sums within each promotion interval, promoted to float32 with the scales (DeepSeek)."""

    name = "planted_fp8_hopper_promoting"

    def run(self, inputs):
        a, b, a_s, b_s, step = (inputs[k] for k in ("a", "b", "a_scale", "b_scale", "promotion"))
        m, k = a.shape
        n = b.shape[0]
        chunks = k // step
        a_chunks = a.float().reshape(m, chunks, step).transpose(0, 1)  # (chunks, M, step)
        b_chunks = b.float().reshape(n, chunks, step).transpose(0, 1)
        partials = narrow_dot(a_chunks, b_chunks)  # (chunks, M, N), every interval at once
        b_rows = b_s.repeat_interleave(BLOCK, dim=0)[:n]
        out = torch.zeros(m, n)
        for c in range(chunks):
            block = c * step // BLOCK
            out += partials[c] * a_s[:, block : block + 1] * b_rows[:, block].unsqueeze(0)
        return out


class HopperWithoutPromotion(Fp8BlockGemmKernel):
    """The whole K accumulated in the FP22 register, each product already scaled: no promotion."""

    name = "planted_fp8_no_promotion"

    def run(self, inputs):
        a, b = inputs["a"], inputs["b"]
        n = b.shape[0]
        a_full = a.float() * inputs["a_scale"].repeat_interleave(BLOCK, dim=1)[:, : a.shape[1]]
        b_full = b.float() * inputs["b_scale"].repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1)[:n]
        return narrow_dot(a_full, b_full)


class Fp8PerTensorScales(Fp8BlockGemmKernel):
    """A per-tensor-scaled FP8 GEMM fed block-quantized operands: one scale for all of A, one for B."""

    name = "planted_fp8_per_tensor"

    def run(self, inputs):
        product = inputs["a"].float() @ inputs["b"].float().t()
        return product * inputs["a_scale"].amax() * inputs["b_scale"].amax()


class ActQuantPerTensor(Fp8BlockQuantKernel):
    def __init__(self) -> None:
        act = get_kernel("fp8_act_quant")
        super().__init__("planted_act_quant_per_tensor", "per-tensor scale", act.tile, act.cases)

    def run(self, inputs):
        x = inputs["x"].float()
        scale = torch.clamp(x.abs().amax() / FP8_MAX[inputs["fmt"]], min=SCALE_FLOOR)
        values = (x / scale).to(getattr(torch, inputs["fmt"]))
        tiles = torch.full((x.shape[0], -(-x.shape[1] // BLOCK)), float(scale))
        return values, tiles


class Int8QuantPerTensor(Int8PerTokenQuantKernel):
    name = "planted_int8_quant_per_tensor"

    def run(self, inputs):
        x = inputs["x"].float()
        scale = torch.clamp(x.abs().amax() / 127, min=SCALE_FLOOR).expand(x.shape[0], 1)
        return torch.round(x / scale).clamp(-127, 127).to(torch.int8), scale


class Int4SwappedNibbles(Int4WeightOnlyGemmKernel):
    name = "planted_int4_swapped_nibbles"

    def run(self, inputs):
        packed = inputs["packed"].to(torch.int16)
        pairs = torch.stack([(packed >> 4) & 0xF, packed & 0xF], dim=-1).reshape(packed.shape[0], -1)
        q = ((pairs ^ 8) - 8).to(inputs["x"].dtype)
        weight = q * inputs["scale"].repeat_interleave(self.group, dim=1)
        return inputs["x"] @ weight.t()


class W8A8PerTensorActivationScale(W8A8Int8GemmKernel):
    name = "planted_w8a8_per_tensor_activation"

    def run(self, inputs):
        acc = torch._int_mm(inputs["a"], inputs["b"].t())
        return acc.to(torch.float32) * inputs["a_scale"].amax() * inputs["w_scale"]


# --- tests ----------------------------------------------------------------------------------------


def test_the_catalog_lists_the_quantized_kernels_with_sourced_tolerances():
    for name in NEW_KERNELS:
        kernel = get_kernel(name)
        for dtype in kernel.dtypes:
            for case in kernel.drawn_cases(dtype, CHALLENGE):
                assert kernel.tolerance(case, dtype).source
    assert (
        "DeepSeek-V3"
        in get_kernel("fp8_block_gemm")
        .tolerance(get_kernel("fp8_block_gemm").case("long_reduction", CHALLENGE), "float8_e4m3fn")
        .source
    )
    assert set(get_kernel("fp8_block_gemm").dtypes) == {"float8_e4m3fn", "float8_e5m2"}


def test_int4_packing_puts_the_even_element_in_the_low_nibble_and_round_trips():
    q = torch.tensor([[-8, 7, 1, -1, 0, 3]])
    packed = pack_int4(q)
    assert packed.tolist() == [[0x78, 0xF1, 0x30]]
    assert torch.equal(unpack_int4(packed).long(), q)


@pytest.mark.slow
def test_the_honest_cpu_passes_every_quantized_kernel():
    document = run(NEW_KERNELS)
    assert document["summary"]["failed"] == 0 and document["summary"]["errors"] == 0, [
        (c["kernel"], c["dtype"], c["case"], c["message"]) for c in document["cases"] if c["status"] != "pass"
    ]
    assert document["summary"]["total"] >= 40


def test_fp8_that_promotes_every_128_products_passes_and_without_promotion_fails(registered):
    cases = ["long_reduction", "partial_weight_block"]
    promoting = registered(HopperPromoting())
    passed = run([promoting.name], dtypes=["float8_e4m3fn"], cases=cases)
    assert set(statuses(passed).values()) == {"pass"}, passed["cases"]
    unpromoted = registered(HopperWithoutPromotion())
    failed = run([unpromoted.name], dtypes=["float8_e4m3fn"], cases=["long_reduction"])
    assert set(statuses(failed).values()) == {"fail"}


@pytest.mark.slow
def test_fp8_gemm_with_per_tensor_scales_fails(registered):
    planted = registered(Fp8PerTensorScales())
    document = run([planted.name], cases=["dsv3_expert_down_decode", "short_prefill", "partial_weight_block"])
    assert set(statuses(document).values()) == {"fail"}


def test_fp8_quantizer_with_one_scale_per_tensor_fails(registered):
    planted = registered(ActQuantPerTensor())
    document = run([planted.name], cases=["dsv3_expert_prefill", "odd_tokens", "wide_outliers"])
    assert set(statuses(document).values()) == {"fail"}


def test_int8_quantizer_with_one_scale_for_every_token_fails(registered):
    planted = registered(Int8QuantPerTensor())
    document = run([planted.name], cases=["prefill_tokens", "odd_sizes"])
    assert set(statuses(document).values()) == {"fail"}


def test_int4_with_swapped_nibbles_fails(registered):
    planted = registered(Int4SwappedNibbles())
    document = run([planted.name], cases=["llama_qproj_decode", "odd_tokens"])
    assert set(statuses(document).values()) == {"fail"}


def test_w8a8_with_one_activation_scale_for_every_token_fails(registered):
    planted = registered(W8A8PerTensorActivationScale())
    document = run([planted.name], cases=["llama_qproj_few_rows", "odd_tokens"])
    assert set(statuses(document).values()) == {"fail"}


@pytest.mark.parametrize("challenge", ["00" * 32, "ab" * 32])
def test_the_fp8_gemm_bound_holds_for_the_promoting_hopper_under_other_challenges(registered, challenge):
    promoting = registered(
        HopperPromoting(),
    )
    document = run([promoting.name], challenge=challenge, cases=["promotion_64", "dsv3_expert_down_decode"])
    assert set(statuses(document).values()) == {"pass"}


# --- the DeepSeek decoder's planted FP8 faults (tests/runners/planted_fp8.py) in the catalog ------
# Two of them stay inside the tiny decoder's honest FP8 spread (bench/deepseek_fp8_accuracy.py): its
# activations have no outlier tiles and its reductions are at most 512 long. The kernels catch both.


class ModelFaultNoPromotion(Fp8BlockGemmKernel):
    name = "planted_model_fp8_no_promotion"

    def run(self, inputs):
        b = inputs["b"]
        return no_promotion_gemm(inputs["a"], inputs["a_scale"], b, row_scales(inputs["b_scale"], b.shape[0]))


class ModelFaultPerTensorActQuant(Fp8BlockQuantKernel):
    def __init__(self) -> None:
        act = get_kernel("fp8_act_quant")
        super().__init__("planted_model_act_quant_per_tensor", "per-tensor scale", act.tile, act.cases)

    def run(self, inputs):
        return per_tensor_act_quant(inputs["x"])


def test_the_decoders_unpromoted_fp8_gemm_fails_the_catalogs_long_reduction(registered):
    planted = registered(ModelFaultNoPromotion())
    document = run([planted.name], dtypes=["float8_e4m3fn"], cases=["long_reduction"])
    assert set(statuses(document).values()) == {"fail"}


def test_the_decoders_per_tensor_activation_scale_fails_the_catalogs_act_quant(registered):
    planted = registered(ModelFaultPerTensorActQuant())
    document = run([planted.name], dtypes=["float8_e4m3fn"], cases=["wide_outliers", "dsv3_expert_prefill"])
    assert set(statuses(document).values()) == {"fail"}


def test_the_catalog_kernel_and_the_decoder_share_one_block_scaled_gemm():
    kernel = get_kernel("fp8_block_gemm")
    inputs = kernel.generate(
        kernel.case("short_prefill", CHALLENGE), "float8_e4m3fn", torch.Generator().manual_seed(3)
    )
    b = inputs["b"]
    direct = block_scaled_gemm(inputs["a"], inputs["a_scale"], b, row_scales(inputs["b_scale"], b.shape[0]))
    assert torch.equal(kernel.run(inputs), direct)
