"""Issue 16's kernels (MoE routing and experts, multi-head latent attention, paged KV cache, the MTP
combination): honest ones pass in every declared dtype, one planted fault per kernel is caught, and
the platform's reveal and spot check recompute their references from the challenge alone."""

from __future__ import annotations

import hashlib

import pytest
import torch
import torch.nn.functional as F

from runners.backends import get_backend
from runners.catalog import EDGE_CASES, get_kernel, kernel_family
from runners.catalog.latent_attention import (
    MlaDecodeKernel,
    MlaKvCompressKernel,
    MlaPrefillKernel,
    mla_absorbed,
    rotate_interleaved,
)
from runners.catalog.moe import MoeExpertsKernel, MoeGatingKernel, MoeGroupedGemmKernel, route, swiglu_expert
from runners.catalog.multi_token_prediction import MtpCombineKernel
from runners.catalog.paged_attention import (
    PagedDecodeAttentionKernel,
    PagedKvWriteKernel,
    _new_token_slots,
    _write,
)
from runners.commitment import OutputCommitment, OutputStore
from runners.conformance import recompute_case, run_conformance
from runners.document import validate_document
from runners.revealed import RevealContext, judge_output, judgeable
from runners.spec import attempt_tag, build_spec

CHALLENGE = hashlib.sha256(b"issue 16 kernels").hexdigest()
NEW_KERNELS = [
    "moe_gating",
    "moe_grouped_gemm",
    "moe_experts",
    "mla_kv_compress",
    "mla_prefill",
    "mla_decode",
    "paged_kv_write",
    "paged_decode_attention",
    "mtp_combine",
]


def run(kernels, dtypes, cases=None, backend=None, challenge=CHALLENGE, commitment=None):
    spec = build_spec(
        suite="conformance", device="cpu", challenge=challenge, kernels=kernels, dtypes=dtypes, cases=cases
    )
    document = run_conformance(spec, backend or get_backend("cpu"), commitment=commitment)
    validate_document(document)
    return document


def statuses(document, kernel):
    return {(c["dtype"], c["case"]): c["status"] for c in document["cases"] if c["kernel"] == kernel}


# --- honest kernels ---------------------------------------------------------------------------------


def test_the_catalog_lists_the_new_kernels_with_families_sources_and_edge_cases():
    for name in NEW_KERNELS:
        kernel = get_kernel(name)
        assert set(kernel.dtypes) == {"float32", "bfloat16", "float16"}
        assert kernel_family(name) in {"moe", "latent_attention", "paged_attention", "multi_token_prediction"}
        for dtype in kernel.dtypes:
            for case in kernel.drawn_cases(dtype, CHALLENGE):
                assert kernel.tolerance(case, dtype).source
    edges = {case.edge for name in NEW_KERNELS for case in get_kernel(name).cases}
    assert {"ties", "all_equal", "nan_inf", "masked_rows", "odd_size", "empty"} <= edges
    assert {"ties", "all_equal"} <= set(EDGE_CASES)
    # Real model structure: DeepSeek-V3's router (256 experts, top-8, 8 groups keep 4) and MLA dims.
    v3 = get_kernel("moe_gating").case("deepseek_v3_sigmoid_bias_group_limited", CHALLENGE)
    assert (v3["E"], v3["k"], v3["groups"], v3["topk_groups"]) == (256, 8, 8, 4)
    mla = get_kernel("mla_decode").case("deepseek_v3_batch", CHALLENGE)
    assert (mla["r"], mla["dn"], mla["dr"], mla["dv"]) == (512, 128, 64, 128)


@pytest.mark.slow
def test_every_new_case_passes_in_every_declared_dtype_on_this_cpu():
    document = run(NEW_KERNELS, ["float32", "bfloat16", "float16"])
    summary = document["summary"]
    failing = [
        (c["kernel"], c["dtype"], c["case"], c["message"]) for c in document["cases"] if c["status"] != "pass"
    ]
    assert not failing
    assert summary["passed"] == summary["total"] >= 150


@pytest.mark.slow
def test_the_new_kernels_pass_through_the_separate_device_process():
    """Block tables (int32), routing ids, None and float options cross the device-process protocol."""
    from runners.device.client import DeviceClient

    cases = [
        "deepseek_v3_sigmoid_bias_group_limited",
        "all_equal_scores_no_bias",
        "odd_sizes",
        "deepseek_v3_top8_shared",
        "odd_tokens_and_hidden",
        "padded_batch_causal",
        "varying_lengths_nan_padding",
        "new_page_opened",
        "nan_in_unowned_slots",
        "batch_of_drafts",
    ]
    with DeviceClient("cpu") as device:
        document = run(NEW_KERNELS, ["bfloat16"], cases=cases, backend=device)
    assert document["process_isolation"]["mode"] == "child_process"
    assert document["summary"]["passed"] == document["summary"]["total"] >= 10


# --- one planted fault per kernel ---------------------------------------------------------------------


class GatingIgnoringTheGroupLimit(MoeGatingKernel):
    name = "broken_moe_gating_no_group_limit"

    def run(self, inputs):
        options = {key: inputs[key] for key in ("score", "k", "topk_groups", "normalize", "scale")}
        bias = None if inputs["bias"] is None else inputs["bias"].float()
        indices, weights = route(inputs["logits"].float(), bias, groups=1, **options)
        dense = torch.zeros(inputs["logits"].shape, dtype=torch.float32)
        return dense.scatter(1, indices, weights).to(inputs["logits"].dtype)


class GroupedGemmSkippingIdleExperts(MoeGroupedGemmKernel):
    """Hands the row groups to the busy experts in order, as if idle experts were not in the weight list."""

    name = "broken_moe_grouped_gemm_compacted"

    def run(self, inputs):
        x, weight = inputs["x"], inputs["weight"]
        out = torch.empty(x.shape[0], weight.shape[1], dtype=x.dtype)
        start = 0
        busy = [count for count in inputs["counts"].tolist() if count]
        for slot, count in enumerate(busy):
            out[start : start + count] = x[start : start + count] @ weight[slot].t()
            start += count
        return out


class ExpertsDroppingTheSharedExpert(MoeExpertsKernel):
    name = "broken_moe_experts_no_shared"

    def run(self, inputs):
        x = inputs["x"]
        with_shared = super().run(inputs).float()
        return (with_shared - swiglu_expert(x, inputs["shared_w13"], inputs["shared_w2"]).float()).to(x.dtype)


class CompressWithRotateHalfRope(MlaKvCompressKernel):
    """Llama's rotate-half RoPE where DeepSeek rotates interleaved pairs (a porting bug)."""

    name = "broken_mla_kv_compress_rotate_half"

    def run(self, inputs):
        x, rank = inputs["x"], inputs["norm_weight"].shape[0]
        kv = (x @ inputs["w_dkv"].t()).float()
        latent = F.rms_norm(kv[:, :rank], (rank,), inputs["norm_weight"].float(), 1e-6)
        pe = kv[:, rank:]
        half = pe.shape[-1] // 2
        cos, sin = inputs["cos"].repeat(1, 2), inputs["sin"].repeat(1, 2)
        rotated = pe * cos + torch.cat((-pe[:, half:], pe[:, :half]), dim=-1) * sin
        return torch.cat((latent, rotated), dim=-1).to(x.dtype)


class PrefillWithoutQueryRope(MlaPrefillKernel):
    """Rotates the shared key (it comes rotated from the cache) but not the query's rope part."""

    name = "broken_mla_prefill_query_not_rotated"

    def run(self, inputs):
        zero_angle = {**inputs, "cos": torch.ones_like(inputs["cos"]), "sin": torch.zeros_like(inputs["sin"])}
        return super().run(zero_angle)


class DecodeAbsorbingRopeIntoTheLatent(MlaDecodeKernel):
    """The rope part not decoupled: the query's rope half is dropped from the score and its dims are
    treated as nope dims absorbed through W_uk (the rotation lost)."""

    name = "broken_mla_decode_rope_not_decoupled"

    def run(self, inputs):
        no_rope = {**inputs, "q_pe": torch.zeros_like(inputs["q_pe"])}
        return mla_absorbed(no_rope)


class DecodeAbsorbingTheWrongHalfOfWkvB(MlaDecodeKernel):
    """Absorbs wkv_b split as [W_uv ; W_uk] instead of [W_uk ; W_uv] (the two halves swapped per head)."""

    name = "broken_mla_decode_wrong_absorbed_half"

    def run(self, inputs):
        heads, rank = inputs["heads"], inputs["c_kv"].shape[-1]
        per_head = inputs["wkv_b"].view(heads, -1, rank)
        nope = inputs["q_nope"].shape[-1]
        swapped = torch.cat((per_head[:, nope:], per_head[:, :nope]), dim=1).reshape(-1, rank)
        return mla_absorbed({**inputs, "wkv_b": swapped})


class KvWriteOneSlotLate(PagedKvWriteKernel):
    name = "broken_paged_kv_write_off_by_one"

    def run(self, inputs):
        slots = (_new_token_slots(inputs) + 1) % (inputs["k_cache"].shape[0] * inputs["k_cache"].shape[1])
        return torch.stack(
            (
                _write(inputs["k_cache"], slots, inputs["key"]),
                _write(inputs["v_cache"], slots, inputs["value"]),
            )
        )


class PagedDecodeBlockTableOffByOne(PagedDecodeAttentionKernel):
    """Reads each logical block from the next physical page (block table entries off by one)."""

    name = "broken_paged_decode_block_table_off_by_one"

    def run(self, inputs):
        pages = inputs["k_cache"].shape[0]
        tables = inputs["block_tables"]
        shifted = torch.where(tables >= 0, (tables + 1) % pages, tables)
        return super().run({**inputs, "block_tables": shifted})


class MtpWiredToTheNextHiddenState(MtpCombineKernel):
    """Pairs the embedding of token i + 1 with hidden state i + 1 instead of i."""

    name = "broken_mtp_wrong_hidden_state"

    def run(self, inputs):
        shifted = torch.cat((inputs["hidden"][:, 1:], inputs["hidden"][:, -1:]), dim=1)
        return super().run({**inputs, "hidden": shifted})


FAULTS = [
    (
        GatingIgnoringTheGroupLimit,
        ["deepseek_v3_sigmoid_bias_group_limited", "deepseek_v2_softmax_group_limited"],
    ),
    (GroupedGemmSkippingIdleExperts, ["deepseek_v3_up_proj_uneven", "decode_most_experts_idle"]),
    (ExpertsDroppingTheSharedExpert, ["deepseek_v3_top8_shared", "decode_one_token"]),
    (CompressWithRotateHalfRope, ["deepseek_v3_rank512_rope64", "odd_tokens_and_hidden"]),
    (PrefillWithoutQueryRope, ["deepseek_v3_chunk_over_prefix", "padded_batch_causal"]),
    (DecodeAbsorbingRopeIntoTheLatent, ["deepseek_v3_batch", "varying_lengths_nan_padding"]),
    (DecodeAbsorbingTheWrongHalfOfWkvB, ["deepseek_v3_batch", "two_token_verify"]),
    (KvWriteOneSlotLate, ["llama_batch_block16", "new_page_opened"]),
    (PagedDecodeBlockTableOffByOne, ["llama_gqa_block16_varying_lengths", "odd_block_and_dims"]),
    (MtpWiredToTheNextHiddenState, ["deepseek_v3_prefill", "decode_two_positions"]),
]


@pytest.mark.parametrize(("broken", "cases"), FAULTS, ids=[fault.name for fault, _ in FAULTS])
@pytest.mark.slow
def test_the_suite_catches_a_planted_fault_in_every_new_kernel(registered, broken, cases):
    kernel = registered(broken())
    document = run([kernel.name], ["float32", "bfloat16"], cases=cases)
    found = statuses(document, kernel.name)
    assert len(found) == 4 and set(found.values()) == {"fail"}, found
    # The same cases of the honest kernel pass: the fault, not the case, fails them.
    honest = run([type(kernel).__mro__[1].name], ["float32", "bfloat16"], cases=cases)
    assert set(statuses(honest, type(kernel).__mro__[1].name).values()) == {"pass"}


def test_any_k_experts_are_accepted_when_every_score_is_equal_but_not_a_wrong_weight(registered):
    """The documented tie: all scores equal and no bias, any k experts are a correct routing."""

    class LastExpertsOnTies(MoeGatingKernel):
        name = "ties_pick_the_last_experts"

        def run(self, inputs):
            logits = inputs["logits"]
            k = inputs["k"]
            dense = torch.zeros(logits.shape, dtype=torch.float32)
            dense[:, -k:] = float(inputs["scale"]) / k
            return dense.to(logits.dtype)

    class HalfWeightOnTies(LastExpertsOnTies):
        name = "ties_half_weight_outside"

        def run(self, inputs):
            out = super().run(inputs).float()
            out[:, 0] = 2.0 * float(inputs["scale"]) / inputs["k"]  # more than the tied weight
            return out.to(inputs["logits"].dtype)

    registered(LastExpertsOnTies())
    registered(HalfWeightOnTies())
    document = run(
        ["ties_pick_the_last_experts", "ties_half_weight_outside"],
        ["float32", "bfloat16"],
        cases=["all_equal_scores_no_bias"],
    )
    assert set(statuses(document, "ties_pick_the_last_experts").values()) == {"pass"}
    assert set(statuses(document, "ties_half_weight_outside").values()) == {"fail"}


def test_selection_is_exact_a_router_computed_in_bfloat16_may_differ_but_a_float32_one_never_does():
    kernel = get_kernel("moe_gating")
    case = kernel.case("deepseek_v3_sigmoid_bias_group_limited", CHALLENGE)
    from runners.catalog import case_generator

    inputs = kernel.generate(case, "bfloat16", case_generator(CHALLENGE, kernel.name, case.name, "bfloat16"))
    options = {key: inputs[key] for key in ("score", "k", "groups", "topk_groups", "normalize", "scale")}
    exact, _ = route(inputs["logits"].double(), inputs["bias"].double(), **options)
    in_float32, _ = route(inputs["logits"].float(), inputs["bias"].float(), **options)
    assert torch.equal(exact.sort(dim=-1).values, in_float32.sort(dim=-1).values)


# --- the platform recomputes them ---------------------------------------------------------------------


REVEAL_CASES = [
    "deepseek_v3_decode_batch",
    "all_equal_scores_no_bias",
    "odd_sizes",
    "no_tokens",
    "odd_tokens_and_hidden",
    "padded_batch_causal",
    "varying_lengths_nan_padding",
    "new_page_opened",
    "single_token_sequence",
    "decode_two_positions",
]


@pytest.mark.slow
def test_the_reveal_and_the_spot_check_recompute_the_new_kernels_from_the_challenge(tmp_path):
    attempt = attempt_tag(CHALLENGE)
    spec = build_spec(
        suite="conformance",
        device="cpu",
        challenge=CHALLENGE,
        kernels=NEW_KERNELS,
        dtypes=["bfloat16"],
        cases=REVEAL_CASES,
    )
    commitment = OutputCommitment(OutputStore(tmp_path, attempt))
    document = run_conformance(spec, get_backend("cpu"), commitment=commitment)
    store = OutputStore(tmp_path, attempt)
    context = RevealContext(document, spec)
    ids = [entry["id"] for entry in document["commitment"]["outputs"]]
    assert {output_id.split("/")[1] for output_id in ids} == set(NEW_KERNELS)
    for output_id in ids:
        assert judgeable(context, output_id) is None
        verdict = judge_output(context, output_id, store.get(output_id))
        assert verdict["server_status"] == "pass" and verdict["agrees"], (output_id, verdict)
    # A revealed output that is wrong where it matters (a routing weight moved) is failed by the server.
    routed = next(i for i in ids if i.startswith("conformance/moe_gating/") and "decode" in i)
    tampered = store.get(routed).clone()
    tampered[0] = tampered[0].roll(1)
    assert judge_output(context, routed, tampered)["server_status"] == "fail"
    # The ingestion spot check: the same input and reference digests from the challenge alone.
    records = {(c["kernel"], c["case"]): c for c in document["cases"]}
    for kernel, case in [
        ("moe_experts", "odd_sizes"),
        ("paged_decode_attention", "single_token_sequence"),
        ("mla_decode", "varying_lengths_nan_padding"),
        ("mtp_combine", "decode_two_positions"),
    ]:
        again = recompute_case(kernel, "bfloat16", case, CHALLENGE)
        assert again["status"] == "pass"
        assert again["input_digest"] == records[(kernel, case)]["input_digest"]
        assert again["reference_digest"] == records[(kernel, case)]["reference_digest"]


def test_rotation_is_deepseeks_interleaved_form():
    x = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    cos = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    sin = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    # Pair (1, 0) rotated by 90 degrees is (0, 1); pair (0, 1) by 0 degrees stays.
    assert torch.equal(
        rotate_interleaved(x, cos, sin), torch.tensor([[0.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
    )


def test_uneven_counts_keep_one_busy_expert_when_the_draw_idles_them_all():
    # zero_share 1.0 idles every expert: all-zero weights made torch.multinomial raise (a harness
    # error in moe_grouped_gemm odd_sizes float32 under the fixed test challenge).
    from runners.catalog.moe import _uneven_counts

    counts = _uneven_counts(37, 5, 1.0, torch.Generator().manual_seed(0))
    assert int(counts.sum()) == 37 and int((counts == 0).sum()) == 4
