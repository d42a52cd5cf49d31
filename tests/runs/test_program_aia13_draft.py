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
