"""Reviewers' decisions on an evaluated campaign: approve, reject, waive a failed non-blocker."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from apps.audit.services import audit_record
from apps.certificates.judge import required_approvals
from apps.certificates.models import CriterionOutcome, CriterionResult, Review, ReviewDecision
from apps.certificates.services.authority import separation_of_duties_check
from apps.certificates.services.certificates import certificate_issue
from apps.certificates.services.surveillance import surveillance_conclude
from apps.runs.models import Campaign, CampaignPurpose, CampaignState
from apps.runs.services.campaigns import campaign_transition
from apps.runs.transitions import campaign_awaits_review
from certification.recorded_text import say


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": gettext("A decision needs a written reason.")})
    return reason


def _campaign_locked(campaign: Campaign, reviewer) -> Campaign:
    """The campaign, locked, once the reviewer may act on it and it awaits review."""
    campaign = Campaign.objects.select_for_update(of=("self",)).select_related("program").get(pk=campaign.pk)
    separation_of_duties_check(user=reviewer, campaign=campaign)
    if not campaign_awaits_review(campaign):
        raise ValidationError(
            gettext("The campaign is %(state)s, not awaiting review.")
            % {"state": campaign.get_state_display().lower()}
        )
    return campaign


def _campaign_for_review(campaign: Campaign, reviewer) -> Campaign:
    campaign = _campaign_locked(campaign, reviewer)
    if Review.objects.filter(campaign=campaign, reviewer=reviewer).exists():
        raise ValidationError(
            gettext("You have already reviewed this campaign; a second reviewer must decide.")
        )
    return campaign


@transaction.atomic
def review_approve(*, campaign: Campaign, reviewer, reason: str) -> Review:
    """Record an approval. The approval that completes the level's required approvals (distinct
    reviewers; judge.required_approvals) issues the certificate. Refused while any blocker criterion has failed."""
    reason = _reason(reason)
    campaign = _campaign_for_review(campaign, reviewer)
    failed = list(
        CriterionResult.objects.filter(
            campaign=campaign, blocker=True, outcome=CriterionOutcome.FAIL
        ).values_list("criterion_id", flat=True)
    )
    if failed:
        raise ValidationError(
            gettext("Failed blocker criteria cannot be approved: %(criteria)s. Reject the campaign.")
            % {"criteria": ", ".join(failed)}
        )
    if not CriterionResult.objects.filter(campaign=campaign).exists():
        raise ValidationError(gettext("The campaign has no evaluation to approve."))
    review = Review.objects.create(
        campaign=campaign, reviewer=reviewer, decision=ReviewDecision.APPROVE, reason=reason
    )
    audit_record(
        action="review.approved",
        obj=campaign,
        actor=reviewer,
        payload={"review": review.pk, "reason": reason},
    )
    approvals = Review.objects.filter(campaign=campaign, decision=ReviewDecision.APPROVE).count()
    if approvals >= required_approvals(program=campaign.program, level=campaign.level):
        certificate_issue(campaign=campaign, actor=reviewer)
    return review


@transaction.atomic
def review_reject(*, campaign: Campaign, reviewer, reason: str) -> Review:
    """One reviewer's rejection ends the campaign: awaiting_review -> rejected."""
    reason = _reason(reason)
    campaign = _campaign_for_review(campaign, reviewer)
    review = Review.objects.create(
        campaign=campaign, reviewer=reviewer, decision=ReviewDecision.REJECT, reason=reason
    )
    campaign_transition(
        campaign, CampaignState.REJECTED, actor=reviewer, reason=say("campaign.rejected", reason=reason)
    )
    audit_record(
        action="review.rejected",
        obj=campaign,
        actor=reviewer,
        payload={"review": review.pk, "reason": reason},
    )
    if campaign.purpose == CampaignPurpose.SURVEILLANCE:
        surveillance_conclude(campaign=campaign, failure=say("surveillance.rejected", reason=reason))
    return review


@transaction.atomic
def criterion_waive(*, campaign: Campaign, criterion_id: str, reviewer, reason: str) -> CriterionResult:
    """Waive a failed non-blocker criterion with a reason (it stays a note on the certificate).
    A blocker cannot be waived."""
    reason = _reason(reason)
    campaign = _campaign_locked(campaign, reviewer)
    result = (
        CriterionResult.objects.select_for_update()
        .filter(campaign=campaign, criterion_id=criterion_id)
        .first()
    )
    if result is None:
        raise ValidationError(
            {"criterion": gettext("The campaign has no criterion %(id)s.") % {"id": repr(criterion_id)}}
        )
    if result.blocker:
        raise ValidationError(
            {"criterion": gettext("%(id)s is a blocker; a blocker cannot be waived.") % {"id": criterion_id}}
        )
    if result.outcome != CriterionOutcome.FAIL:
        raise ValidationError(
            {"criterion": gettext("%(id)s did not fail; there is nothing to waive.") % {"id": criterion_id}}
        )
    if result.waived:
        raise ValidationError({"criterion": gettext("%(id)s is already waived.") % {"id": criterion_id}})
    result.waived_by, result.waiver_reason, result.waived_at = reviewer, reason, timezone.now()
    result.save(update_fields=["waived_by", "waiver_reason", "waived_at"])
    audit_record(
        action="criterion.waived",
        obj=campaign,
        actor=reviewer,
        payload={"criterion": criterion_id, "reason": reason},
    )
    return result
