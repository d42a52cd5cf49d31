"""AIA 1.2: every bar of a level is a threshold with a source, judged by one module
(apps/certificates/judge.py) for the criteria, the certificate and the pages; two approvers at the
Standard and Advanced levels; declared peaks frozen at submission; figures fit to publish."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from apps.certificates import judge
from apps.certificates.models import CriterionOutcome
from apps.certificates.services import certificate_issue, review_approve
from apps.runs.services.programs import PROGRAMS_DIR, THRESHOLD_NAMES, program_definition_check, program_load
from tests.real_documents import campaign_from_runner, gemm_items, peak_fp32, stable_gemms

REASON = "Evidence complete and verified."


def definition(version: str = "1.2") -> dict:
    return json.loads(Path(PROGRAMS_DIR, f"aia-{version}.json").read_text())


@pytest.fixture
def aia12(db):
    program, _ = program_load(definition=definition())
    return program


@pytest.fixture
def aia11(db):
    program, _ = program_load(definition=definition("1.1"))
    return program


def variant(**thresholds):
    """AIA 1.2 with some thresholds of every level changed (and another version)."""
    changed = copy.deepcopy(definition())
    changed["version"] = "9.1"
    for level in changed["levels"]:
        for name, value in thresholds.items():
            level["thresholds"][name]["value"] = value
    program, _ = program_load(definition=changed)
    return program


def result(campaign, criterion_id):
    return campaign.criterion_results.get(criterion_id=criterion_id)


# The program data ------------------------------------------------------------------------------


def test_every_level_of_aia_1_2_states_each_bar_with_its_source_and_no_quick_policy():
    for level in definition()["levels"]:
        assert set(level["thresholds"]) == THRESHOLD_NAMES
        assert all(entry["source"].strip() for entry in level["thresholds"].values())
        assert not any(plan.get("quick") for plan in level["suites"].values())
        # Criterion params carry no numbers any more: the thresholds are the one place to edit.
        for criterion in level["criteria"]:
            assert not any(
                isinstance(v, int | float) and not isinstance(v, bool) for v in criterion["params"].values()
            ), criterion


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda level: level["thresholds"]["above_peak_ratio"].update(source=""),
            "needs a value and a source",
        ),
        (lambda level: level["thresholds"].pop("test04_max_speedup"), "missing thresholds"),
        (lambda level: level["thresholds"].update(made_up={"value": 1, "source": "x"}), "unknown thresholds"),
        (
            lambda level: level["suites"]["performance"].update(quick=True),
            "cannot use the quick timing policy",
        ),
        (lambda level: level.update(required_approvals=0), "required_approvals"),
    ],
)
def test_a_level_with_an_unsourced_bar_or_the_quick_policy_is_refused(change, message):
    changed = copy.deepcopy(definition())
    change(changed["levels"][0])
    with pytest.raises(ValidationError, match=message):
        program_definition_check(changed)


def test_the_published_versions_1_0_and_1_1_are_unchanged():
    digests = {
        "1.0": "8b64b43d69da4507cdb7d22ccf6bbc04f0a245f04fd0c6ecb8fafab105d211d2",
        "1.1": "243ec3009957d6bb5cc832e97b3e3e0536af10ae10e4f27d6f4b3e1373455853",
    }
    for version, digest in digests.items():
        assert hashlib.sha256(Path(PROGRAMS_DIR, f"aia-{version}.json").read_bytes()).hexdigest() == digest


def test_legacy_levels_keep_the_bars_they_were_judged_by():
    thresholds = judge.level_thresholds(program=definition("1.1"), level="standard")
    assert thresholds.legacy and thresholds.above_peak_ratio == 1.10
    assert thresholds.conformance_min_pass_rate == 0.995 and thresholds.claims_min_ratio == 0.8
    assert judge.accuracy_bar(thresholds=thresholds, dtype="float32", metric="cosine_min") == 0.999
    assert judge.required_approvals(program=definition("1.1"), level="standard") == 1
    assert judge.required_approvals(program=definition(), level="standard") == 2
    assert judge.required_approvals(program=definition(), level="baseline") == 1


# Significant figures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("center", "low", "high", "cv", "digits"),
    [
        (1.0, 0.99, 1.01, None, 2),  # half-width 0.01: two digits
        (1.0, 0.9999, 1.0001, None, 4),
        (1.0, 0.99999, 1.00001, None, 4),  # never more than four (torch.utils.benchmark)
        (1.0, 0.5, 1.5, None, 1),  # never fewer than one
        (2e-5, None, None, 0.09, 1),  # no interval: the coefficient of variation stands in
        (2e-5, None, None, None, 2),
    ],
)
def test_significant_figures_follow_the_confidence_interval(center, low, high, cv, digits):
    assert judge.significant_figures(center=center, ci_low=low, ci_high=high, cv=cv) == digits


def test_rounding_keeps_the_significant_digits():
    assert judge.round_significant(0.032494588495070337, 2) == 0.032
    assert judge.round_significant(1234.5678, 3) == 1230.0
    assert judge.published_accuracy(0.99899996) == 0.998999  # never rounds up across a bar


# Judged from the runner's real documents ------------------------------------------------------


@pytest.mark.slow
def test_a_real_baseline_campaign_under_1_2_certifies_with_rounded_headline_figures(cast, aia12):
    campaign = campaign_from_runner(
        vendor=cast.vendor, program=aia12, submitted_by=cast.owner, edit=stable_gemms
    )
    outcomes = {r.criterion_id: r.outcome for r in campaign.criterion_results.all()}
    assert outcomes["B1"] == outcomes["B2"] == outcomes["B3"] == CriterionOutcome.PASS, campaign.state_reason
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
    payload = json.loads(campaign.certificate.payload_json)
    headline = payload["headline"]
    document = json.loads(campaign.jobs.get(suite="performance").document.content.read())
    stable = [m for m in document["measurements"] if m["kind"] == "gemm" and m["value"]]
    best = max(stable, key=lambda m: m["value"])
    digits = judge.published_digits(stats=best["stats"], runner_digits=best["significant_digits"])
    assert headline["best_gemm_tflops"]["float32"] == judge.round_significant(best["value"], digits)
    assert headline["best_gemm_tflops"]["float32"] != best["value"]  # not the raw 15-digit float
    for item in headline["model_latency"] + headline["model_accuracy"]:
        assert len(repr(item["value"]).replace("0.", "").lstrip("0")) <= 8, item
    assert payload["subject"]["chip"]["declared_peak_tflops"] == {"fp32": peak_fp32()}


def test_an_unstable_gemm_feeds_neither_the_headline_nor_the_claims(cast, aia12):
    def unstable_record(suite, document):
        stable_gemms(suite, document)
        if suite == "performance":
            # A record that only noisy timing produced: three times the declared peak, unstable.
            record = {**copy.deepcopy(gemm_items(document)[0]), "name": "matmul record"}
            record.update(value=peak_fp32() * 3, unstable=True)
            # In place of a measurement of another kind, so the stable GEMMs stay as the runner made them.
            measurements = document["measurements"]
            spare = next(i for i, m in enumerate(measurements) if m.get("kind") != "gemm")
            measurements[spare] = record

    campaign = campaign_from_runner(
        vendor=cast.vendor, program=aia12, submitted_by=cast.owner, edit=unstable_record
    )
    claims = result(campaign, "B4")
    assert "above" not in claims.explanation  # the unstable row is not judged at all
    assert claims.evidence["dtypes"]["float32"]["measurement"].startswith("matmul perf_")
    assert {
        "measurement": "matmul record",
        "dtype": "float32",
        "reason": "unstable timing (high coefficient of variation)",
    } in claims.evidence["excluded"]
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
    payload = json.loads(campaign.certificate.payload_json)
    assert payload["headline"]["best_gemm_tflops"]["float32"] < peak_fp32()
    assert any(
        e["measurement"] == "matmul record" and e["reason"].startswith("unstable")
        for e in payload["headline"]["excluded"]
    )


def set_peak(chip, tflops: float) -> None:
    from apps.registry.models import PEAK_FIELDS, Chip

    Chip.objects.filter(pk=chip.pk).update(**{PEAK_FIELDS["fp32"]: tflops})


def test_declared_peaks_are_frozen_at_submission(cast, aia12):
    from apps.registry.services import chip_update

    campaign = campaign_from_runner(
        vendor=cast.vendor, program=aia12, submitted_by=cast.owner, evaluate=False, edit=stable_gemms
    )
    # During the campaign the vendor tries to lower the declared peak tenfold (every GEMM would then be
    # "above"): the registry refuses, and a row changed behind its back (admin, SQL) changes nothing either.
    with pytest.raises(ValidationError, match="under certification"):
        chip_update(chip=campaign.target.chip, declared_peak={"fp32": peak_fp32() / 10})
    set_peak(campaign.target.chip, peak_fp32() / 10)
    from apps.certificates.services import campaign_evaluate

    campaign_evaluate(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    claims = result(campaign, "B4")
    assert claims.evidence["dtypes"]["float32"]["declared_peak_tflops"] == peak_fp32()
    assert "above" not in claims.explanation
    set_peak(campaign.target.chip, peak_fp32() * 10)
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
    payload = json.loads(campaign.certificate.payload_json)
    assert payload["subject"]["chip"]["declared_peak_tflops"] == {"fp32": peak_fp32()}


def test_a_changed_threshold_is_edited_in_one_place(cast):
    from apps.portal.evidence import campaign_evidence

    def scale(suite, document):
        stable_gemms(suite, document)
        if suite == "performance":
            gemm_items(document)[0]["value"] = peak_fp32() * 1.07

    strict = variant(above_peak_ratio=1.05)
    campaign = campaign_from_runner(vendor=cast.vendor, program=strict, edit=scale)
    assert "above 105% of the declared peak" in result(campaign, "B4").explanation
    page = campaign_evidence(campaign=campaign, criteria=list(campaign.criterion_results.all()))
    assert any("above the credible 1.05" in a.text for a in page.anomalies)


# Hand-built evidence ---------------------------------------------------------------------------


def test_two_approvers_are_needed_at_standard_in_1_2(cast, evaluated, aia12, second_reviewer):
    campaign = evaluated(program=aia12, level="standard")
    assert not campaign.criterion_results.filter(blocker=True, outcome="fail").exists(), campaign.state_reason
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
    campaign.refresh_from_db()
    assert not hasattr(campaign, "certificate")
    with pytest.raises(ValidationError, match="needs 2 approving reviewers"):
        certificate_issue(campaign=campaign, actor=cast.reviewer)
    review_approve(campaign=campaign, reviewer=second_reviewer, reason=REASON)
    campaign.refresh_from_db()
    assert json.loads(campaign.certificate.payload_json)["approvals"] == 2


def test_one_approver_suffices_at_standard_in_1_1_and_at_baseline_in_1_2(cast, evaluated, aia11, aia12):
    for program, level in ((aia11, "standard"), (aia12, "baseline")):
        campaign = evaluated(program=program, level=level)
        review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
        campaign.refresh_from_db()
        assert campaign.certificate.payload_json


def test_an_unsupported_case_in_a_required_dtype_fails_1_2_and_is_listed_as_excluded_in_1_1(
    cast, evaluated, aia11, aia12
):
    conformance = {"float32": {"pass": 200, "unsupported": 3}, "bfloat16": {"pass": 200}}
    strict = evaluated(program=aia12, conformance=conformance)
    assert result(strict, "B1").outcome == CriterionOutcome.FAIL
    assert "3 float32 case(s) unsupported, 0 tolerated" in result(strict, "B1").explanation
    legacy = evaluated(program=aia11, conformance=conformance)
    assert result(legacy, "B1").outcome == CriterionOutcome.PASS
    review_approve(campaign=legacy, reviewer=cast.reviewer, reason=REASON)
    legacy.refresh_from_db()
    scope = json.loads(legacy.certificate.payload_json)["scope"]
    assert "float32" in scope["dtypes"]
    assert sum(e["cases"] for e in scope["excluded"] if e.get("kernel")) == 3
    assert all(e["reason"] == "unsupported by the device" for e in scope["excluded"])


def test_the_certificate_scope_follows_the_programs_accuracy_bar_not_the_runners_flag(cast, evaluated, aia11):
    from apps.runs.models import Measurement

    # The runner's own bar (0.9999) flagged 0.9995 below_threshold; the program's bar is 0.999.
    campaign = evaluated(program=aia11, accuracy=[0.9995])
    Measurement.objects.filter(document__job__campaign=campaign, kind="accuracy").update(
        flags=["below_threshold"]
    )
    assert result(campaign, "B2").outcome == CriterionOutcome.PASS
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
    campaign.refresh_from_db()
    models = json.loads(campaign.certificate.payload_json)["scope"]["models"]
    assert models and models[0]["dtypes"] == ["float32"]


def test_caching_and_output_consistency_are_judged_from_raw_figures(aia12):
    thresholds = judge.level_thresholds(program=aia12, level="standard")
    separated = {
        "fresh_median_s": 0.010,
        "repeated_median_s": 0.005,
        "fresh_ci_s": [0.0099, 0.0101],
        "repeated_ci_s": [0.0049, 0.0051],
        "verdict": "pass",
    }  # the runner says pass; 2x is a cache
    assert not judge.caching_verdict(item=separated, thresholds=thresholds).passed
    assert "separated: a result cache" in judge.caching_verdict(item=separated, thresholds=thresholds).detail
    overlapping = {**separated, "repeated_ci_s": [0.004, 0.0105]}
    assert judge.caching_verdict(item=overlapping, thresholds=thresholds).passed
    # A pass above the bound says why it passes (issue 17, item 5), not just "speed-up 2.000 (bound ...)".
    assert (
        "intervals overlap, so the speed-up is within the noise"
        in judge.caching_verdict(item=overlapping, thresholds=thresholds).detail
    )
    even = {**separated, "repeated_median_s": 0.010}
    assert "within the bound" in judge.caching_verdict(item=even, thresholds=thresholds).detail
    assert not judge.caching_verdict(item={"verdict": "pass"}, thresholds=thresholds).passed  # no raw figures
    # Equal speed on both sides, but the refilled buffers got the old answer: a cache keyed on them.
    stale = {**overlapping, "fresh_outputs_checked": 8, "fresh_output_mismatches": 8, "verdict": "pass"}
    assert not judge.caching_verdict(item=stale, thresholds=thresholds).passed
    checked = {**overlapping, "fresh_outputs_checked": 8, "fresh_output_mismatches": 0}
    assert judge.caching_verdict(item=checked, thresholds=thresholds).passed
    # The outputs agree with each other, but not with the reference of the fresh values: a cache by shape.
    by_shape = {**checked, "fresh_reference_checked": 2, "fresh_reference_failures": 2, "verdict": "pass"}
    assert not judge.caching_verdict(item=by_shape, thresholds=thresholds).passed
    assert judge.caching_verdict(
        item={**by_shape, "fresh_reference_failures": 0}, thresholds=thresholds
    ).passed
    assert not judge.output_consistency_verdict(
        item={"sampled": 4, "mismatches": 1, "verdict": "pass"}, thresholds=thresholds
    ).passed
    looser = {"sampled": 4, "mismatches": 0, "dtype": "float32", "rtol": 1e-2, "atol": 1e-5}
    assert not judge.output_consistency_verdict(item=looser, thresholds=thresholds).passed
    assert math.isclose(thresholds.test04_max_speedup, 0.10)


def test_test04_timings_outside_the_judges_probe_frames_are_refused_with_that_reason(aia12):
    """TEST04's probe calls timed in the runner's judge's frames (runners/probe_frames.py): fresh calls
    reported at a tenth of the judge's clock around them are refused whatever speed-up they give, and the
    record says so (not "within the bound"); ratios inside the level's clock bounds fall through to the
    speed-up; a section without ratios (evidence that is not what the frames saw) is refused too. On the
    code before this judge read ``host_frames`` the first item passed as "no sign of a result cache"."""
    from certification.recorded_text import parse

    thresholds = judge.level_thresholds(program=aia12, level="standard")
    frames = {
        "checked": 40,
        "refused": 0,
        "bounds": [0.5, 1.05],
        "fresh_ratio": 0.9,
        "repeated_ratio": 0.92,
        "max_call_ratio": 0.99,
    }
    even = {
        "model": "resnet-tiny",
        "dtype": "float32",
        "fresh_median_s": 0.010,
        "repeated_median_s": 0.010,
        "fresh_ci_s": [0.0099, 0.0101],
        "repeated_ci_s": [0.0099, 0.0101],
        "verdict": "pass",
    }
    under = {**even, "host_frames": {**frames, "fresh_ratio": 0.1, "refused": 1}}
    refused = judge.caching_verdict(item=under, thresholds=thresholds)
    assert not refused.passed
    code, values = parse(str(refused.detail))
    assert code == "test04.host_frames_outside", refused.detail
    assert values["label"] == "resnet-tiny float32" and values["least"] == "0.100"
    # A call reported longer than its own frame is refused too (the upper bound).
    over = {**even, "host_frames": {**frames, "max_call_ratio": 1.3}}
    assert parse(str(judge.caching_verdict(item=over, thresholds=thresholds).detail))[0] == (
        "test04.host_frames_outside"
    )
    fits = judge.caching_verdict(item={**even, "host_frames": frames}, thresholds=thresholds)
    assert fits.passed and "within the bound" in fits.detail
    broken = {**even, "host_frames": {**frames, "fresh_ratio": None, "refused": 1}}
    verdict = judge.caching_verdict(item=broken, thresholds=thresholds)
    assert not verdict.passed and parse(str(verdict.detail))[0] == "test04.host_frames_broken"
    # Without bounds in the spec (a library run) the ratios are reported and nothing is refused here.
    unbounded = {**even, "host_frames": {**frames, "bounds": None, "fresh_ratio": 0.1}}
    assert judge.caching_verdict(item=unbounded, thresholds=thresholds).passed
    # A side none of whose frames lasted the policy's block_min_s is not judged on the lower bound
    # (runners/probe_frames.py); the other side and the per-call upper bound still are.
    short = {**frames, "fresh_ratio": None, "fresh_frames_judged": 0, "repeated_frames_judged": 30}
    assert judge.caching_verdict(item={**even, "host_frames": short}, thresholds=thresholds).passed
    short_under = {**even, "host_frames": {**short, "repeated_ratio": 0.2}}
    verdict = judge.caching_verdict(item=short_under, thresholds=thresholds)
    assert not verdict.passed and parse(str(verdict.detail))[1]["least"] == "0.200"
    short_over = {**even, "host_frames": {**short, "max_call_ratio": 1.3}}
    assert not judge.caching_verdict(item=short_over, thresholds=thresholds).passed


def test_load_programs_loads_1_2_beside_the_published_versions(db):
    from io import StringIO

    from django.core.management import call_command

    from apps.runs.models import Program

    out = StringIO()
    call_command("load_programs", stdout=out)
    assert "AIA 1.2 (aia-1.2.json, applies from 2027-04-01)" in out.getvalue()
    assert set(Program.objects.filter(code="AIA").values_list("version", flat=True)) >= {"1.0", "1.1", "1.2"}


def test_a_legacy_level_timed_with_the_quick_policy_publishes_no_timed_figure(cast, evaluated, aia11):
    campaign = evaluated(program=aia11)  # AIA 1.1 baseline: performance with the quick policy
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
    campaign.refresh_from_db()
    headline = json.loads(campaign.certificate.payload_json)["headline"]
    assert headline["best_gemm_tflops"] == {}
    assert {e["reason"] for e in headline["excluded"] if e["kind"] == "gemm"} == {
        "timed with the quick policy (not certification-grade)"
    }
