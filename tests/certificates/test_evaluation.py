"""Evaluation: every criterion kind of AIA 1.0 judged over evidence rows, and what the campaign shows."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.certificates.models import CriterionOutcome, CriterionResult
from apps.certificates.services import campaign_evaluate
from apps.runs.models import CampaignState


def outcomes(campaign) -> dict[str, str]:
    return dict(CriterionResult.objects.filter(campaign=campaign).values_list("criterion_id", "outcome"))


def result(campaign, criterion_id) -> CriterionResult:
    return CriterionResult.objects.get(campaign=campaign, criterion_id=criterion_id)


def test_good_evidence_passes_every_baseline_criterion_and_awaits_review(evaluated):
    campaign = evaluated()
    assert campaign.state == CampaignState.AWAITING_REVIEW
    assert outcomes(campaign) == {"B1": "pass", "B2": "pass", "B3": "pass", "B4": "pass"}
    assert "Every blocker criterion passes" in campaign.state_reason
    assert AuditEvent.objects.filter(action="campaign.evaluated", object_id=str(campaign.pk)).exists()


def test_each_result_names_its_value_threshold_and_evidence(evaluated):
    campaign = evaluated()
    b1 = result(campaign, "B1")
    assert (b1.measured_value, b1.threshold) == (1.0, 0.99)
    documents = b1.evidence["documents"]
    assert (
        len(documents) == 1 and documents[0]["suite"] == "conformance" and len(documents[0]["sha256"]) == 64
    )
    assert documents[0]["job"] == campaign.jobs.get(suite="conformance").pk


def test_conformance_pass_rate_excludes_unsupported_cases(evaluated):
    campaign = evaluated(
        conformance={"float32": {"pass": 99, "fail": 1}, "bfloat16": {"pass": 100, "unsupported": 500}}
    )
    b1 = result(campaign, "B1")
    assert b1.outcome == CriterionOutcome.PASS
    assert b1.measured_value == pytest.approx(199 / 200)


def test_a_campaign_below_the_conformance_bar_shows_why(evaluated):
    campaign = evaluated(conformance={"float32": {"pass": 90, "fail": 10}, "bfloat16": {"pass": 100}})
    b1 = result(campaign, "B1")
    assert b1.outcome == CriterionOutcome.FAIL and b1.measured_value == pytest.approx(0.95)
    assert campaign.state == CampaignState.AWAITING_REVIEW
    assert "Cannot reach the level" in campaign.state_reason and "B1" in campaign.state_reason
    assert "190 of 200" in campaign.state_reason


def test_a_required_dtype_the_device_does_not_support_fails_the_criterion(evaluated):
    campaign = evaluated(conformance={"float32": {"pass": 200}, "bfloat16": {"unsupported": 200}})
    b1 = result(campaign, "B1")
    assert b1.outcome == CriterionOutcome.FAIL
    assert "bfloat16" in b1.explanation


def test_no_supported_case_is_a_failure_not_a_pass(evaluated):
    campaign = evaluated(conformance={"float32": {"unsupported": 10}, "bfloat16": {"unsupported": 10}})
    assert result(campaign, "B1").outcome == CriterionOutcome.FAIL


@pytest.mark.parametrize(
    ("accuracy", "models", "expected"),
    [
        ([0.9999], "any", "pass"),
        ([0.99], "any", "fail"),
        ([0.99, 0.9999], "any", "pass"),
    ],
)
def test_model_accuracy_uses_the_programs_cosine_bar(evaluated, accuracy, models, expected):
    campaign = evaluated(accuracy=accuracy)
    assert result(campaign, "B2").outcome == expected


def test_every_model_must_pass_at_standard_level(evaluated):
    campaign = evaluated(level="standard", accuracy=[0.99999, 0.99])
    s2 = result(campaign, "S2")
    assert s2.outcome == CriterionOutcome.FAIL
    assert [m["passed"] for m in s2.evidence["models"]] == [True, False]


def test_a_model_job_that_failed_leaves_all_models_unproven(evaluated):
    campaign = evaluated(level="standard", accuracy=[0.99999], failed_model_jobs=1)
    s2 = result(campaign, "S2")
    assert s2.outcome == CriterionOutcome.FAIL and "no float32 accuracy evidence" in s2.explanation


def test_agreement_metrics_use_the_runners_bar_when_the_program_sets_none(evaluated):
    assert result(evaluated(accuracy=[0.9999], accuracy_metric="top1_agreement"), "B2").outcome == "pass"
    assert result(evaluated(accuracy=[0.5], accuracy_metric="greedy_token_agreement"), "B2").outcome == "fail"


def test_claims_are_judged_against_the_declared_peak(evaluated):
    low = evaluated(gemm={"float32": 0.4, "bfloat16": 0.9})
    assert result(low, "B4").outcome == CriterionOutcome.FAIL
    assert result(low, "B4").measured_value == pytest.approx(0.4)
    implausible = evaluated(gemm={"float32": 1.5, "bfloat16": 0.9})
    assert result(implausible, "B4").outcome == CriterionOutcome.FAIL


def test_claims_do_not_apply_without_a_declared_peak(evaluated):
    from tests.factories import HardwareTargetFactory

    target = HardwareTargetFactory(chip__peak_fp32_tflops=None, chip__peak_bf16_tflops=None)
    campaign = evaluated(target=target)
    assert result(campaign, "B4").outcome == CriterionOutcome.NOT_APPLICABLE


def test_a_failed_non_blocker_is_a_note_not_a_stop(evaluated):
    campaign = evaluated(gemm={"float32": 0.3, "bfloat16": 0.3})
    assert outcomes(campaign)["B4"] == "fail"
    assert "Every blocker criterion passes" in campaign.state_reason
    assert "noted on the certificate" in campaign.state_reason


@pytest.mark.parametrize("check", ["output_consistency", "caching"])
def test_integrity_verdicts_of_the_performance_run_are_blockers_at_standard(evaluated, check):
    good = evaluated(level="standard")
    assert outcomes(good) == {sid: "pass" for sid in ["S1", "S2", "S3", "S4", "S5", "S6"]}
    bad = evaluated(
        level="standard", integrity={"output_consistency": "pass", "caching": "pass", check: "fail"}
    )
    failed = {"output_consistency": "S4", "caching": "S5"}[check]
    assert outcomes(bad)[failed] == "fail"
    assert failed in bad.state_reason


def test_missing_integrity_verdicts_fail(evaluated):
    campaign = evaluated(level="standard", integrity={})
    assert outcomes(campaign)["S4"] == "fail" and outcomes(campaign)["S5"] == "fail"


def test_documents_from_different_devices_fail_the_fingerprint_criterion(evaluated):
    from apps.runs.models import ResultDocument

    campaign = evaluated()
    campaign.state = CampaignState.EVALUATING
    campaign.save()
    document = ResultDocument.objects.filter(job__campaign=campaign).first()
    document.fingerprint = {**document.fingerprint, "device_name": "Another device"}
    document.save()
    campaign_evaluate(campaign_id=campaign.pk)
    assert outcomes(campaign)["B3"] == "fail"


def test_stability_bounds_the_unstable_fraction_at_advanced(evaluated):
    steady = evaluated(level="advanced", unstable=1, timed=20)
    assert outcomes(steady)["A7"] == "pass"
    noisy = evaluated(level="advanced", unstable=10, timed=20)
    assert outcomes(noisy)["A7"] == "fail"


def test_evaluation_runs_once_and_only_from_evaluating(evaluated):
    campaign = evaluated()
    events = AuditEvent.objects.filter(action="campaign.evaluated").count()
    campaign_evaluate(campaign_id=campaign.pk)  # a re-delivered call
    assert AuditEvent.objects.filter(action="campaign.evaluated").count() == events
    assert CriterionResult.objects.filter(campaign=campaign).count() == 4


def test_the_runs_app_calls_the_evaluator_through_settings(settings):
    from django.utils.module_loading import import_string

    assert import_string(settings.CAMPAIGN_EVALUATOR) is campaign_evaluate


def test_aia_1_1_sets_the_agreement_bar_itself_whatever_the_runner_wrote(evaluated):
    import json

    from apps.runs.services.programs import PROGRAMS_DIR, program_load

    program, _ = program_load(definition=json.loads((PROGRAMS_DIR / "aia-1.1.json").read_text()))
    # The runner's document carries a bar of its own (0.9999 here); the program's 0.99 decides both ways.
    campaign = evaluated(program=program, accuracy=[0.98], accuracy_metric="greedy_token_agreement")
    b2 = result(campaign, "B2")
    assert b2.outcome == CriterionOutcome.FAIL and b2.threshold == pytest.approx(0.99)
    assert (
        result(evaluated(program=program, accuracy=[0.995], accuracy_metric="top1_agreement"), "B2").outcome
        == "pass"
    )


def test_the_default_version_is_the_newest_in_effect_and_a_future_one_is_chosen_only_by_name(db):
    from datetime import date

    from apps.runs.selectors import program_current
    from apps.runs.services.programs import programs_load_all

    programs_load_all()  # AIA 1.0 effective 2026-12-01, 1.1 on 2027-01-01, 1.2 on 2027-04-01
    assert program_current(code="AIA", today=date(2026, 12, 15)).version == "1.0"
    assert program_current(code="AIA", today=date(2027, 1, 1)).version == "1.1"
    assert program_current(code="AIA", today=date(2027, 3, 31)).version == "1.1"
    assert program_current(code="AIA", today=date(2027, 4, 1)).version == "1.2"
    # Before any version is in effect, the default is the one that takes effect first.
    assert program_current(code="AIA", today=date(2026, 11, 1)).version == "1.0"
    # Named explicitly, a version that is not yet in effect can be chosen.
    assert program_current(code="AIA", version="1.2", today=date(2026, 12, 15)).version == "1.2"
    assert program_current(code="AIA", version="1.0").version == "1.0"
