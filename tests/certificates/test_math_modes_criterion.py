"""AIA 1.2 states the math modes each level accepts; a document recorded under another mode (TF32
convolutions, reduced-precision reductions: NVIDIA's defaults) fails the fingerprint criterion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.certificates import judge
from apps.certificates.models import CriterionOutcome
from apps.runs.services.programs import PROGRAMS_DIR, program_load
from runners.math_modes import PINNED
from tests.certificates.test_program_judge import stable_gemms
from tests.real_documents import campaign_from_runner


def definition(version: str) -> dict:
    return json.loads(Path(PROGRAMS_DIR, f"aia-{version}.json").read_text())


@pytest.fixture
def aia12(db):
    program, _ = program_load(definition=definition("1.2"))
    return program


def test_every_level_of_aia_1_2_accepts_only_the_pinned_modes_and_says_why():
    for level in definition("1.2")["levels"]:
        entry = level["thresholds"]["accepted_math_modes"]
        assert entry["value"] == {flag: [value] for flag, value in PINNED.items()}
        assert "Higham" in entry["source"] and "TF32" in entry["source"]
        thresholds = judge.level_thresholds(program=definition("1.2"), level=level["code"])
        assert judge.math_mode_problems(fingerprint={"math_modes": PINNED}, thresholds=thresholds) == []
        nvidia = {
            **PINNED,
            "cudnn_allow_tf32": True,
            "cuda_matmul_allow_bf16_reduced_precision_reduction": True,
        }
        assert len(judge.math_mode_problems(fingerprint={"math_modes": nvidia}, thresholds=thresholds)) == 2


def test_older_programs_do_not_judge_math_modes():
    thresholds = judge.level_thresholds(program=definition("1.1"), level="baseline")
    assert judge.math_mode_problems(fingerprint={}, thresholds=thresholds) == []


@pytest.mark.slow
def test_a_document_recorded_under_tf32_convolutions_fails_the_fingerprint_criterion(cast, aia12):
    def tf32(suite, document):
        stable_gemms(suite, document)
        if suite == "conformance":
            document["fingerprint"]["math_modes"]["cudnn_allow_tf32"] = True

    honest = campaign_from_runner(
        vendor=cast.vendor, program=aia12, submitted_by=cast.owner, edit=stable_gemms
    )
    assert honest.criterion_results.get(criterion_id="B3").outcome == CriterionOutcome.PASS
    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, submitted_by=cast.owner, edit=tf32)
    b3 = campaign.criterion_results.get(criterion_id="B3")
    assert b3.outcome == CriterionOutcome.FAIL
    assert "math mode not accepted" in b3.explanation and "cudnn_allow_tf32" in b3.explanation
