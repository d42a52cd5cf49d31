"""AIA 1.3 (draft, issue 16): the next program requires the MoE, latent-attention, paged-KV and MTP
kernels; as a draft it loads and passes the definition checks but is never the program in force."""

from __future__ import annotations

import json
from datetime import date

from apps.runs.models import ProgramStatus
from apps.runs.selectors import program_current
from apps.runs.services.programs import PROGRAMS_DIR, program_definition_check, program_load
from runners.catalog import KERNELS

DEFINITION = json.loads((PROGRAMS_DIR / "aia-1.3.json").read_text())


def _kernel_criteria(level_code: str) -> list[dict]:
    level = next(level for level in DEFINITION["levels"] if level["code"] == level_code)
    return [
        c for c in level["criteria"] if c["kind"] == "conformance_pass_rate" and c["params"].get("kernels")
    ]


def test_the_draft_requires_moe_and_paged_decode_at_standard_and_every_new_kernel_at_advanced():
    program_definition_check(DEFINITION)
    assert DEFINITION["status"] == "draft"
    (standard,) = _kernel_criteria("standard")
    assert standard["blocker"] and standard["params"]["dtypes"] == ["bfloat16"]
    assert {"moe_gating", "moe_experts", "paged_decode_attention"} <= set(standard["params"]["kernels"])
    (advanced,) = _kernel_criteria("advanced")
    assert advanced["blocker"] and {"mla_decode", "mla_prefill", "mtp_combine"} <= set(
        advanced["params"]["kernels"]
    )
    for criterion in (standard, advanced):
        assert set(criterion["params"]["kernels"]) <= set(KERNELS), "every required kernel is in the catalog"
    assert not _kernel_criteria("baseline")


def test_a_loaded_draft_is_never_the_program_in_force(db):
    program, _ = program_load(definition=DEFINITION)
    assert program.status == ProgramStatus.DRAFT
    current = program_current(code="AIA", today=date(2030, 1, 1))
    assert current is None or current.version != "1.3"


QUANTIZED = {
    "fp8_act_quant",
    "fp8_weight_quant",
    "fp8_weight_dequant",
    "fp8_block_gemm",
    "int8_per_token_quant",
    "w8a8_int8_gemm",
    "int4_weight_only_gemm",
}


def _level(code: str) -> dict:
    return next(level for level in DEFINITION["levels"] if level["code"] == code)


def test_advanced_requires_the_quantized_kernels_in_e4m3_and_int8_and_runs_them():
    (advanced,) = _kernel_criteria("advanced")
    assert QUANTIZED <= set(advanced["params"]["kernels"]) <= set(KERNELS)
    assert {"float8_e4m3fn", "int8"} <= set(advanced["params"]["dtypes"])
    level = _level("advanced")
    # The level's conformance job runs every dtype the criterion names, and none of it is tolerated
    # as unsupported; E5M2 ("where the device has it") is not required.
    assert set(advanced["params"]["dtypes"]) <= set(level["suites"]["conformance"]["dtypes"])
    tolerated = level["thresholds"]["unsupported_tolerated"]
    assert all(tolerated["value"].get(dtype) == 0 for dtype in advanced["params"]["dtypes"])
    assert "float8_e5m2" not in advanced["params"]["dtypes"]
    # Every E4M3 dtype of the level's conformance is under the semantic-cases blocker (issue 13).
    (semantic,) = [c for c in level["criteria"] if c["kind"] == "semantic_cases"]
    assert "float8_e4m3fn" in semantic["params"]["dtypes"]
    # Each quantized kernel has cases in the dtypes the criterion names (else the criterion is vacuous).
    for name in QUANTIZED:
        assert set(KERNELS[name].dtypes) & set(advanced["params"]["dtypes"]), name


def test_advanced_judges_the_collectives_with_a_stated_one_device_rule():
    level = _level("advanced")
    assert "collectives" in level["suites"]
    (collectives,) = [c for c in level["criteria"] if c["kind"] == "collectives"]
    assert collectives["blocker"] is True
    assert "not applicable" in collectives["source"] and "nccl-tests" in collectives["source"]
    for frozen in ("aia-1.0.json", "aia-1.1.json", "aia-1.2.json"):
        definition = json.loads((PROGRAMS_DIR / frozen).read_text())
        assert all(c["kind"] != "collectives" for lvl in definition["levels"] for c in lvl["criteria"]), (
            frozen
        )


def test_the_drafts_collectives_blocker_is_not_applicable_on_one_device_and_fails_on_two_without_evidence(
    cpu_world,
):
    from apps.certificates.criteria import criterion_judge
    from apps.certificates.models import CriterionOutcome
    from tests.runs.test_collectives_evidence import submit

    (criterion,) = [c for c in _level("advanced")["criteria"] if c["kind"] == "collectives"]
    campaign = submit(cpu_world)
    assert cpu_world.target.device_count == 1
    judgement = criterion_judge(campaign=campaign, criterion=criterion)
    assert judgement.outcome == CriterionOutcome.NOT_APPLICABLE
    cpu_world.target.device_count = 2
    cpu_world.target.save()
    campaign.target.refresh_from_db()
    judgement = criterion_judge(campaign=campaign, criterion=criterion)
    assert judgement.outcome == CriterionOutcome.FAIL
