"""The issue-16 kernels' edge cases added in session 22 (FP8 saturation and subnormal codes, W8A8 -128,
int4 -8, MoE capacity extremes, paged layouts): the honest CPU passes each, and a kernel with the
fault each case exists for fails it."""

from __future__ import annotations

import torch

from runners.backends import get_backend
from runners.catalog import get_kernel
from runners.catalog.moe import MoeExpertsKernel, MoeGatingKernel, swiglu_expert
from runners.catalog.paged_attention import PagedDecodeAttentionKernel, _write
from runners.catalog.quantized import (
    FP8_MAX,
    Fp8BlockQuantKernel,
    Fp8WeightDequantKernel,
    Int4WeightOnlyGemmKernel,
    W8A8Int8GemmKernel,
    block_quantize,
    unpack_int4,
)
from runners.conformance import run_conformance
from runners.document import validate_document
from runners.spec import build_spec

CHALLENGES = ("5eed" * 16, "ab" * 32)
NEW_CASES = {
    "fp8_act_quant": ["saturating_tile_max", "subnormal_codes"],
    "fp8_weight_quant": ["saturating_block_max", "subnormal_codes"],
    "fp8_weight_dequant": ["subnormal_and_max_codes"],
    "fp8_block_gemm": ["format_max_codes", "zero_tiles_and_blocks"],
    "w8a8_int8_gemm": ["most_negative_codes"],
    "int4_weight_only_gemm": ["extreme_codes"],
    "moe_gating": [
        "top1_of_many_renormalised",
        "every_expert_chosen",
        "single_group_kept",
        "sigmoid_bias_ties_group_limited",
    ],
    "moe_grouped_gemm": ["one_expert_takes_all_rows"],
    "moe_experts": ["all_tokens_one_expert", "every_token_every_expert"],
    "mla_prefill": ["single_token_prompt"],
    "mla_decode": ["kv_length_one"],
    "paged_kv_write": ["into_partial_last_page", "token_granular_pages"],
    "paged_decode_attention": [
        "descending_interleaved_pages",
        "nan_in_partial_last_pages",
        "token_granular_pages",
    ],
}


def run(kernels, cases, challenge=CHALLENGES[0], dtypes=None) -> dict:
    spec = build_spec(
        suite="conformance", device="cpu", challenge=challenge, kernels=kernels, dtypes=dtypes, cases=cases
    )
    document = run_conformance(spec, get_backend("cpu"))
    validate_document(document)
    return document


def statuses(document: dict) -> set[str]:
    return {c["status"] for c in document["cases"]}


def test_the_catalog_reaches_nine_hundred_cases_over_the_same_kernels():
    from runners.catalog import all_kernels

    assert len(all_kernels()) >= 45
    assert sum(len(k.cases_for(dtype)) for k in all_kernels() for dtype in k.dtypes) >= 900
    for kernel, names in NEW_CASES.items():
        assert set(names) <= {case.name for case in get_kernel(kernel).cases}, kernel


def test_the_honest_cpu_passes_every_new_case_under_two_challenges():
    cases = sorted({name for names in NEW_CASES.values() for name in names})
    for challenge in CHALLENGES:
        document = run(sorted(NEW_CASES), cases, challenge)
        ran = {(c["kernel"], c["case"]) for c in document["cases"]}
        assert ran == {(k, name) for k, names in NEW_CASES.items() for name in names}
        assert statuses(document) == {"pass"}, [
            (c["kernel"], c["dtype"], c["case"], c["message"])
            for c in document["cases"]
            if c["status"] != "pass"
        ]


# --- FP8: saturation and subnormal codes --------------------------------------------------------


def test_the_tile_maxima_quantize_beyond_fmax_before_saturation():
    """What saturating_tile_max is for: with a full-significand tile maximum, float32's x / scale
    lands above fmax for some tiles, so only a saturating quantizer writes fmax there."""
    kernel = get_kernel("fp8_act_quant")
    beyond = 0
    for challenge in CHALLENGES:
        case = kernel.case("saturating_tile_max", challenge)
        for fmt in ("float8_e4m3fn", "float8_e5m2"):
            from runners.catalog import case_generator

            x = kernel.generate(case, fmt, case_generator(challenge, kernel.name, case.name, fmt))[
                "x"
            ].float()
            _, scale = block_quantize(x, fmt, kernel.tile)
            ratio = x / scale.repeat_interleave(128, dim=1)[:, : x.shape[1]]
            beyond += int((ratio.abs() > FP8_MAX[fmt]).sum())
    assert beyond > 0


class _QuantOverflowing(Fp8BlockQuantKernel):
    """x / scale cast without saturation: beyond fmax E4M3 has only NaN and E5M2 Inf (OCP OFP8)."""

    def __init__(self, base: str) -> None:
        kernel = get_kernel(base)
        super().__init__(f"planted_{base}_overflowing", "no saturation", kernel.tile, kernel.cases)

    def run(self, inputs):
        values, scale = block_quantize(inputs["x"], inputs["fmt"], self.tile)
        x = inputs["x"].float()
        rows, cols = x.shape
        per_value = scale.repeat_interleave(self.tile[0], 0).repeat_interleave(self.tile[1], 1)[:rows, :cols]
        ratio = x / per_value
        over = ratio.abs() > FP8_MAX[inputs["fmt"]]
        overflow = float("nan") if inputs["fmt"] == "float8_e4m3fn" else float("inf")
        widened = values.float().masked_fill(over, overflow)
        return widened.to(getattr(torch, inputs["fmt"])), scale


class _QuantFlushing(Fp8BlockQuantKernel):
    """Subnormal FP8 codes flushed to zero (FTZ on the output)."""

    def __init__(self, base: str) -> None:
        kernel = get_kernel(base)
        super().__init__(f"planted_{base}_flushing", "flush to zero", kernel.tile, kernel.cases)

    def run(self, inputs):
        values, scale = block_quantize(inputs["x"], inputs["fmt"], self.tile)
        tiny = float(torch.finfo(getattr(torch, inputs["fmt"])).smallest_normal)
        wide = values.float()
        return wide.masked_fill(wide.abs() < tiny, 0.0).to(values.dtype), scale


def test_a_quantizer_that_does_not_saturate_fails_the_saturation_cases(registered):
    for base, case in (
        ("fp8_act_quant", "saturating_tile_max"),
        ("fp8_weight_quant", "saturating_block_max"),
    ):
        planted = registered(_QuantOverflowing(base))
        for challenge in CHALLENGES:
            document = run([planted.name], [case], challenge)
            assert "fail" in statuses(document), (base, challenge, document["cases"])


def test_a_quantizer_that_flushes_fp8_subnormals_fails_the_subnormal_cases(registered):
    for base in ("fp8_act_quant", "fp8_weight_quant"):
        planted = registered(_QuantFlushing(base))
        document = run([planted.name], ["subnormal_codes"])
        assert statuses(document) == {"fail"}, document["cases"]


class _DequantFlushing(Fp8WeightDequantKernel):
    name = "planted_fp8_dequant_flushing"

    def run(self, inputs):
        w = inputs["w"].float()
        tiny = float(torch.finfo(inputs["w"].dtype).smallest_normal)
        return super().run({**inputs, "w": w.masked_fill(w.abs() < tiny, 0.0).to(inputs["w"].dtype)})


def test_a_dequantizer_that_flushes_subnormal_codes_fails(registered):
    planted = registered(_DequantFlushing())
    assert statuses(run([planted.name], ["subnormal_and_max_codes"])) == {"fail"}


# --- int8 -128 and int4 -8 ----------------------------------------------------------------------


class _W8A8Symmetric(W8A8Int8GemmKernel):
    """Clamps the codes to the symmetric -127..127 before multiplying (wrong for an int8 input)."""

    name = "planted_w8a8_symmetric_clamp"

    def run(self, inputs):
        return super().run({**inputs, "a": inputs["a"].clamp_min(-127), "b": inputs["b"].clamp_min(-127)})


def test_a_w8a8_gemm_that_mishandles_minus_128_fails(registered):
    planted = registered(_W8A8Symmetric())
    assert statuses(run([planted.name], ["most_negative_codes"])) == {"fail"}
    # The case exists for it: the other full-range cases rarely draw -128 often enough to matter.
    assert statuses(run(["w8a8_int8_gemm"], ["most_negative_codes"])) == {"pass"}


class _Int4PlusEight(Int4WeightOnlyGemmKernel):
    """Sign extension off by one: nibble 0x8 read as +8 instead of -8."""

    name = "planted_int4_plus_eight"

    def run(self, inputs):
        x, scale = inputs["x"], inputs["scale"]
        q = unpack_int4(inputs["packed"]).to(torch.int16)
        q = torch.where(q == -8, 8, q).to(x.dtype)
        return x @ (q * scale.repeat_interleave(self.group, dim=1)).t()


def test_an_int4_decoder_that_reads_minus_eight_as_plus_eight_fails(registered):
    planted = registered(_Int4PlusEight())
    assert statuses(run([planted.name], ["extreme_codes"])) == {"fail"}


# --- MoE capacity extremes and the group limit ------------------------------------------------


class _GatingIgnoresGroupLimit(MoeGatingKernel):
    name = "planted_gating_ignores_group_limit"

    def run(self, inputs):
        return super().run({**inputs, "groups": 1, "topk_groups": 1})


def test_a_router_that_ignores_the_group_limit_fails_the_single_group_case(registered):
    planted = registered(_GatingIgnoresGroupLimit())
    assert statuses(run([planted.name], ["single_group_kept"])) == {"fail"}


class _ExpertsWithCapacity(MoeExpertsKernel):
    """GShard-style capacity: an expert takes at most ceil(1.25 T k / E) rows, the rest are dropped
    (their routed output is lost): what a kernel with a fixed per-expert buffer does."""

    name = "planted_experts_with_capacity"

    def run(self, inputs):
        x, ids, weights = inputs["x"], inputs["topk_ids"], inputs["topk_weights"]
        tokens, k = ids.shape
        experts = inputs["w13"].shape[0]
        capacity = -(-5 * tokens * k // (4 * experts))
        y = torch.zeros(tokens, x.shape[1], dtype=torch.float32)
        for expert in range(experts):
            token, slot = (ids == expert).nonzero(as_tuple=True)
            token, slot = token[:capacity], slot[:capacity]
            if token.numel():
                out = swiglu_expert(x[token], inputs["w13"][expert], inputs["w2"][expert]).float()
                y.index_add_(0, token, out * weights[token, slot, None].float())
        shared = swiglu_expert(x, inputs["shared_w13"], inputs["shared_w2"]).float()
        return (y + shared).to(x.dtype)


def test_an_expert_layer_with_a_capacity_limit_fails_when_all_tokens_go_to_one_expert(registered):
    planted = registered(_ExpertsWithCapacity())
    assert statuses(run([planted.name], ["all_tokens_one_expert"])) == {"fail"}


# --- paged layouts -------------------------------------------------------------------------------


class _PagedAssumesContiguous(PagedDecodeAttentionKernel):
    """Finds page i of a sequence at table[0] + i: right only when a sequence's pages are adjacent and
    ascending."""

    name = "planted_paged_assumes_contiguous"

    def run(self, inputs):
        tables = inputs["block_tables"].clone()
        width = tables.shape[1]
        first = tables[:, :1].long()
        assumed = (first + torch.arange(width)[None, :]).to(tables.dtype)
        tables = torch.where(tables >= 0, assumed.clamp_max(inputs["k_cache"].shape[0] - 1), tables)
        return super().run({**inputs, "block_tables": tables})


class _PagedReadsWholeLastPage(PagedDecodeAttentionKernel):
    """Attends over every slot of a sequence's pages, the unfilled tail of its last page included."""

    name = "planted_paged_reads_whole_last_page"

    def run(self, inputs):
        block = inputs["k_cache"].shape[1]
        slots_new = inputs["seq_lens"].long() - 1
        pages = inputs["block_tables"].long().gather(1, (slots_new // block)[:, None])[:, 0]
        slots = pages * block + slots_new % block
        k_cache = _write(inputs["k_cache"], slots, inputs["key"])
        v_cache = _write(inputs["v_cache"], slots, inputs["value"])
        padded = -(-inputs["seq_lens"].long() // block) * block
        # The new token already written; the attention then runs over whole pages.
        return super().run(
            {
                **inputs,
                "k_cache": k_cache,
                "v_cache": v_cache,
                "key": k_cache.reshape(-1, *k_cache.shape[2:])[
                    inputs["block_tables"].long().gather(1, ((padded - 1) // block)[:, None])[:, 0] * block
                    + (padded - 1) % block
                ],
                "value": v_cache.reshape(-1, *v_cache.shape[2:])[
                    inputs["block_tables"].long().gather(1, ((padded - 1) // block)[:, None])[:, 0] * block
                    + (padded - 1) % block
                ],
                "seq_lens": padded.to(torch.int32),
            }
        )


def test_a_paged_kernel_that_assumes_adjacent_ascending_pages_fails(registered):
    planted = registered(_PagedAssumesContiguous())
    assert statuses(run([planted.name], ["descending_interleaved_pages"])) == {"fail"}


def test_a_paged_kernel_that_reads_the_tail_of_the_last_page_fails(registered):
    planted = registered(_PagedReadsWholeLastPage())
    assert statuses(run([planted.name], ["nan_in_partial_last_pages"])) == {"fail"}
