"""Evaluation: when a campaign's jobs are done, judge every criterion of its level."""

from __future__ import annotations

from django.db import transaction

from apps.audit.services import audit_record
from apps.certificates.criteria import criterion_judge
from apps.certificates.judge import campaign_thresholds
from apps.certificates.models import CriterionOutcome, CriterionResult
from apps.runs.models import Campaign, CampaignPurpose, CampaignState
from apps.runs.services.campaigns import campaign_transition
from certification.recorded_text import recorded_fields, say


def evaluation_summary(results: list[CriterionResult]) -> str:
    """The campaign's state reason: why it cannot reach its level, or what a reviewer should note."""
    blockers = [r for r in results if r.is_failed_blocker]
    notes = [r for r in results if not r.blocker and r.outcome == CriterionOutcome.FAIL]
    failures = "; ".join(
        say("evaluation.failure", id=r.criterion_id, title=r.title, explanation=r.explanation)
        for r in blockers
    )
    noted = "; ".join(say("evaluation.note", id=r.criterion_id, explanation=r.explanation) for r in notes)
    if blockers:
        return say(
            "evaluation.blocked_with_notes" if notes else "evaluation.blocked", failures=failures, notes=noted
        )
    return say("evaluation.ready_with_notes", notes=noted) if notes else say("evaluation.ready")


def campaign_evaluate(*, campaign_id: int) -> None:
    """Judge each criterion of the campaign's level, store the results and move the campaign from
    evaluating to awaiting_review. A campaign in any other state is left alone (re-delivery is harmless).

    A surveillance campaign with a failed blocker suspends the certificate it re-tests.
    """
    with transaction.atomic():
        campaign = (
            Campaign.objects.select_for_update(of=("self",))
            .select_related("program", "target__chip")
            .filter(pk=campaign_id, state=CampaignState.EVALUATING)
            .first()
        )
        if campaign is None:
            return
        level = campaign.program.level(campaign.level) or {"criteria": []}
        CriterionResult.objects.filter(campaign=campaign).delete()
        try:
            thresholds = campaign_thresholds(campaign=campaign)
        except (KeyError, TypeError, ValueError):
            thresholds = None  # each criterion then fails with the reason
        results = []
        for criterion in level["criteria"]:
            judgement = criterion_judge(campaign=campaign, criterion=criterion, thresholds=thresholds)
            results.append(
                CriterionResult(
                    campaign=campaign,
                    criterion_id=criterion["id"],
                    title=criterion.get("title", "")[:300],
                    kind=criterion.get("kind", ""),
                    blocker=bool(criterion.get("blocker")),
                    params=criterion.get("params") or {},
                    outcome=judgement.outcome,
                    measured_value=judgement.measured,
                    threshold=judgement.threshold,
                    explanation=judgement.explanation,
                    # The explanation's phrase and params next to its English text (recorded_text.localize).
                    evidence={**judgement.evidence, **recorded_fields(judgement.explanation)},
                )
            )
        CriterionResult.objects.bulk_create(results)
        campaign_transition(campaign, CampaignState.AWAITING_REVIEW, reason=evaluation_summary(results))
        audit_record(
            action="campaign.evaluated",
            obj=campaign,
            payload={
                "level": campaign.level,
                "criteria": {r.criterion_id: r.outcome for r in results},
                "failed_blockers": [r.criterion_id for r in results if r.is_failed_blocker],
            },
        )
        if campaign.purpose == CampaignPurpose.SURVEILLANCE and any(r.is_failed_blocker for r in results):
            from apps.certificates.services.surveillance import surveillance_conclude

            surveillance_conclude(campaign=campaign, failure=campaign.state_reason)
