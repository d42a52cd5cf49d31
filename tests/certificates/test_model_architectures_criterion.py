"""AIA 1.3 Advanced requires a DeepSeek-V3-style decoder (issue 16): the model suite needs a deepseek-v3
model at submission, and criterion A18 (kind model_architectures) needs that model's accuracy at the
level's bar in float32, bfloat16 and float16; AIA 1.0-1.2 judge as before."""

from __future__ import annotations

import copy
import json

import pytest
from django.core.exceptions import ValidationError

from apps.certificates.criteria import criterion_judge
from apps.certificates.models import CriterionOutcome
from apps.registry.models import Architecture, ModelArtifact, ModelTask
from apps.runs.models import Job, JobSuite, Measurement
from apps.runs.services.campaigns import _campaign_models
from apps.runs.services.programs import PROGRAMS_DIR, program_definition_check, program_load
from tests.certificates.evidence import campaign_with_evidence
from tests.factories import ModelArtifactFactory, OrganizationFactory

DEFINITION = json.loads((PROGRAMS_DIR / "aia-1.3.json").read_text())
pytestmark = pytest.mark.django_db


def _level(definition: dict, code: str) -> dict:
    return next(level for level in definition["levels"] if level["code"] == code)


def _a18() -> dict:
    (criterion,) = [c for c in _level(DEFINITION, "advanced")["criteria"] if c["id"] == "A18"]
    return criterion


def _campaign(*, architecture: str, values: dict[str, float] | None = None):
    """An AIA 1.3 Advanced campaign with one model job of ``architecture`` whose greedy-token agreement
    per dtype is ``values`` (every level dtype at 0.99999 unless stated)."""
    vendor = OrganizationFactory()
    program, _ = program_load(definition=DEFINITION)
    campaign = campaign_with_evidence(
        vendor=vendor,
        program=program,
        level="advanced",
        accuracy=[0.99999],
        accuracy_metric="greedy_token_agreement",
    )
    job = Job.objects.get(campaign=campaign, suite=JobSuite.MODEL)
    ModelArtifact.objects.filter(pk=job.model_id).update(architecture=architecture, task=ModelTask.LLM_DECODE)
    for dtype, value in (values or {}).items():
        rows = Measurement.objects.filter(document__job=job, kind="accuracy", dtype=dtype)
        if value is None:
            rows.delete()
        else:
            rows.update(value=value)
    return campaign


def test_advanced_requires_a_deepseek_v3_model_at_its_bars_and_earlier_versions_do_not():
    program_definition_check(DEFINITION)
    advanced = _level(DEFINITION, "advanced")
    assert advanced["suites"]["model"]["required_architectures"] == ["deepseek-v3"]
    criterion = _a18()
    assert criterion["blocker"] is True
    assert criterion["params"] == {
        "architectures": ["deepseek-v3"],
        "dtypes": ["float32", "bfloat16", "float16"],
    }
    assert set(criterion["params"]["dtypes"]) <= set(advanced["suites"]["model"]["dtypes"])
    assert "bench/deepseek_agreement.py" in criterion["source"]
    for code in ("baseline", "standard"):
        assert "required_architectures" not in _level(DEFINITION, code)["suites"]["model"]
    for frozen in ("aia-1.0.json", "aia-1.1.json", "aia-1.2.json"):
        definition = json.loads((PROGRAMS_DIR / frozen).read_text())
        for level in definition["levels"]:
            assert all(c["kind"] != "model_architectures" for c in level["criteria"]), frozen
            assert "required_architectures" not in (level.get("suites", {}).get("model") or {}), frozen


def test_a_campaign_with_a_passing_deepseek_run_passes_it():
    judgement = criterion_judge(campaign=_campaign(architecture=Architecture.DEEPSEEK_V3), criterion=_a18())
    assert judgement.outcome == CriterionOutcome.PASS, judgement.explanation
    assert (judgement.measured, judgement.threshold) == (1.0, 1.0)
    assert judgement.evidence["documents"] and judgement.evidence["models"][0]["failed"] == []


def test_a_campaign_that_ran_only_a_llama_decoder_fails_it_and_says_so():
    judgement = criterion_judge(campaign=_campaign(architecture=Architecture.LLAMA_DECODER), criterion=_a18())
    assert judgement.outcome == CriterionOutcome.FAIL
    assert "deepseek-v3: no model of this architecture was run" in judgement.explanation
    assert judgement.measured == 0.0


def test_a_deepseek_run_below_the_bfloat16_bar_or_without_float16_evidence_fails_it():
    low = _campaign(architecture=Architecture.DEEPSEEK_V3, values={"bfloat16": 0.85})
    judgement = criterion_judge(campaign=low, criterion=_a18())
    assert judgement.outcome == CriterionOutcome.FAIL
    assert "bfloat16 greedy_token_agreement 0.85 below the level's bar" in judgement.explanation
    missing = _campaign(architecture=Architecture.DEEPSEEK_V3, values={"float16": None})
    judgement = criterion_judge(campaign=missing, criterion=_a18())
    assert judgement.outcome == CriterionOutcome.FAIL
    assert "no float16 accuracy evidence" in judgement.explanation


def test_submission_at_advanced_needs_a_deepseek_v3_model():
    vendor = OrganizationFactory()
    advanced = _level(DEFINITION, "advanced")
    llama = ModelArtifactFactory(
        owner=vendor, task=ModelTask.LLM_DECODE, architecture=Architecture.LLAMA_DECODER
    )
    with pytest.raises(ValidationError, match="needs a model of each architecture: \\['deepseek-v3'\\]"):
        _campaign_models(vendor=vendor, level=advanced, model_artifacts=[llama])
    deepseek = ModelArtifactFactory(
        owner=vendor, task=ModelTask.LLM_DECODE, architecture=Architecture.DEEPSEEK_V3
    )
    _campaign_models(vendor=vendor, level=advanced, model_artifacts=[llama, deepseek])
    _campaign_models(vendor=vendor, level=_level(DEFINITION, "standard"), model_artifacts=[llama])


def test_a_program_cannot_require_an_unknown_architecture_or_one_its_model_suite_does_not():
    for change in ("unknown", "unplanned"):
        definition = copy.deepcopy(DEFINITION)
        advanced = _level(definition, "advanced")
        if change == "unknown":
            advanced["suites"]["model"]["required_architectures"] = ["gpt-oss"]
        else:
            del advanced["suites"]["model"]["required_architectures"]
        with pytest.raises(ValidationError, match="architecture|does not"):
            program_definition_check(definition)
