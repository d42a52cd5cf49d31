"""Reviews: who may decide, what a decision needs, and when a certificate is issued."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.accounts.models import Role
from apps.audit.models import AuditEvent
from apps.certificates.models import Certificate, Review
from apps.certificates.services import criterion_waive, review_approve, review_reject
from apps.runs.models import CampaignState
from tests.certificates.evidence import aia_program, campaign_with_evidence
from tests.factories import member

REASON = "Evidence complete; every blocker passes."


@pytest.mark.slow
def test_a_reviewer_approves_and_the_certificate_is_issued(cast, evaluated):
    campaign = evaluated()
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.APPROVED
    assert campaign.certificate.serial.startswith("AIA-")
    assert AuditEvent.objects.filter(action="review.approved", actor=cast.reviewer).exists()
    assert AuditEvent.objects.filter(action="certificate.issued", actor=cast.reviewer).exists()


def test_a_reviewer_rejects_with_a_reason(cast, evaluated):
    campaign = evaluated()
    review_reject(campaign=campaign, reviewer=cast.reviewer, reason="Conformance logs incomplete.")
    campaign.refresh_from_db()
    assert (
        campaign.state == CampaignState.REJECTED and "Conformance logs incomplete." in campaign.state_reason
    )
    assert not Certificate.objects.exists()


@pytest.mark.parametrize("decide", [review_approve, review_reject])
@pytest.mark.parametrize("reason", ["", "   "])
def test_a_decision_without_a_written_reason_is_refused(cast, evaluated, decide, reason):
    campaign = evaluated()
    with pytest.raises(ValidationError):
        decide(campaign=campaign, reviewer=cast.reviewer, reason=reason)
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.AWAITING_REVIEW


def test_a_reviewer_of_the_campaigns_own_organization_is_refused(cast, program):
    from apps.certificates.services import campaign_evaluate

    # The authority certifying a target of its own (e.g. a reference host): its reviewers may not decide.
    campaign = campaign_with_evidence(
        vendor=cast.authority, program=program, submitted_by=cast.platform_admin
    )
    campaign_evaluate(campaign_id=campaign.pk)
    with pytest.raises(PermissionDenied):
        review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
    assert not Review.objects.exists()


def test_a_reviewer_who_submitted_the_campaign_is_refused(cast, evaluated):
    campaign = evaluated(submitted_by=cast.reviewer)
    with pytest.raises(PermissionDenied):
        review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
    with pytest.raises(PermissionDenied):
        review_reject(campaign=campaign, reviewer=cast.reviewer, reason=REASON)


@pytest.mark.parametrize("who", ["owner", "vendor_admin", "foreign", "buyer", "platform_admin"])
def test_only_reviewers_of_the_authority_decide(cast, evaluated, who):
    campaign = evaluated()
    with pytest.raises(PermissionDenied):
        review_approve(campaign=campaign, reviewer=getattr(cast, who), reason=REASON)


def test_a_vendor_organization_member_with_a_reviewer_role_is_refused(cast, evaluated):
    from apps.accounts.models import Membership

    impostor = member(cast.vendor, Role.VENDOR_ENGINEER, username="impostor")
    Membership.objects.filter(user=impostor).update(role=Role.REVIEWER)  # a role its kind may not give
    impostor.refresh_from_db()
    with pytest.raises(PermissionDenied):
        review_approve(campaign=evaluated(), reviewer=impostor, reason=REASON)


def test_approving_with_a_failed_blocker_is_refused(cast, evaluated):
    campaign = evaluated(conformance={"float32": {"pass": 50, "fail": 50}, "bfloat16": {"pass": 100}})
    with pytest.raises(ValidationError, match="B1"):
        review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.AWAITING_REVIEW and not Certificate.objects.exists()


def test_waiving_a_blocker_is_refused(cast, evaluated):
    campaign = evaluated(conformance={"float32": {"pass": 50, "fail": 50}, "bfloat16": {"pass": 100}})
    with pytest.raises(ValidationError, match="blocker cannot be waived"):
        criterion_waive(campaign=campaign, criterion_id="B1", reviewer=cast.reviewer, reason="Close enough.")


def test_a_waiver_needs_a_reason_and_becomes_a_note(cast, evaluated):
    import json

    campaign = evaluated(gemm={"float32": 0.3, "bfloat16": 0.3})
    with pytest.raises(ValidationError):
        criterion_waive(campaign=campaign, criterion_id="B4", reviewer=cast.reviewer, reason="")
    criterion_waive(
        campaign=campaign,
        criterion_id="B4",
        reviewer=cast.reviewer,
        reason="Thermal limits of the test host; re-measured on site.",
    )
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
    campaign.refresh_from_db()
    payload = json.loads(campaign.certificate.payload_json)
    assert any("B4" in note and "re-measured on site" in note for note in payload["notes"])
    assert AuditEvent.objects.filter(action="criterion.waived").exists()


def test_a_failed_non_blocker_is_noted_even_without_a_waiver(cast, evaluated):
    import json

    campaign = evaluated(gemm={"float32": 0.3, "bfloat16": 0.3})
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
    campaign.refresh_from_db()
    assert json.loads(campaign.certificate.payload_json)["notes"][0].startswith("B4 ")


def test_waiving_a_passed_criterion_is_refused(cast, evaluated):
    with pytest.raises(ValidationError):
        criterion_waive(campaign=evaluated(), criterion_id="B4", reviewer=cast.reviewer, reason="Why not.")


def test_a_campaign_not_awaiting_review_cannot_be_decided(cast, program):
    campaign = campaign_with_evidence(vendor=cast.vendor, program=program, state=CampaignState.RUNNING)
    with pytest.raises(ValidationError):
        review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)


def test_a_two_reviewer_program_needs_two_distinct_reviewers(cast, second_reviewer):
    from apps.certificates.services import campaign_evaluate

    program = aia_program(version="1.0-2r", required_approvals=2)
    assert program.required_approvals == 2
    campaign = campaign_with_evidence(vendor=cast.vendor, program=program, submitted_by=cast.owner)
    campaign_evaluate(campaign_id=campaign.pk)

    review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.AWAITING_REVIEW and not Certificate.objects.exists()
    with pytest.raises(ValidationError, match="already reviewed"):
        review_approve(campaign=campaign, reviewer=cast.reviewer, reason="Approving again.")
    assert not Certificate.objects.exists()

    review_approve(campaign=campaign, reviewer=second_reviewer, reason="Second look: agreed.")
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.APPROVED
    assert '"approvals":2' in campaign.certificate.payload_json


def test_one_rejection_ends_a_two_reviewer_campaign(cast, second_reviewer):
    from apps.certificates.services import campaign_evaluate

    program = aia_program(version="1.0-2r", required_approvals=2)
    campaign = campaign_with_evidence(vendor=cast.vendor, program=program, submitted_by=cast.owner)
    campaign_evaluate(campaign_id=campaign.pk)
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
    review_reject(campaign=campaign, reviewer=second_reviewer, reason="Spot check logs missing.")
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.REJECTED and not Certificate.objects.exists()
