"""Surveillance: certified targets are re-tested on the program's cadence. A surveillance campaign
that fails, is cancelled, or has a failed blocker suspends the certificate; one that is approved
issues a new certificate that supersedes it (see certificate_issue)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone, translation

from apps.audit.services import audit_record
from apps.certificates.models import Certificate, CertificateStatus, SurveillanceRun
from apps.certificates.services.certificates import certificate_status_change
from apps.runs.models import Campaign, ProgramStatus
from apps.runs.transitions import ENDED_WITHOUT_VERDICT_STATES, OPEN_STATES
from certification.recorded_text import say

logger = logging.getLogger(__name__)


def surveillance_due(*, now: datetime | None = None) -> list[Certificate]:
    """Active certificates whose last re-test (or issue) is older than the program's surveillance_days
    and that have no surveillance campaign still open."""
    now = now or timezone.now()
    due = []
    certificates = (
        Certificate.objects.filter(status=CertificateStatus.ACTIVE, valid_until__gt=now)
        .select_related("program")
        .annotate(last_run=Max("surveillance_runs__created_at"))
    )
    for certificate in certificates:
        if certificate.program.surveillance_days <= 0:
            continue
        last = max(filter(None, [certificate.issued_at, certificate.last_run]))
        if last + timedelta(days=certificate.program.surveillance_days) > now:
            continue
        if SurveillanceRun.objects.filter(certificate=certificate, campaign__state__in=OPEN_STATES).exists():
            continue
        due.append(certificate)
    return due


def surveillance_submit(*, certificate: Certificate) -> SurveillanceRun | None:
    """Submit a surveillance campaign with the certificate's level and models. If the program can no
    longer run it (retired, models gone), the failure is audited and nothing is submitted."""
    from apps.runs.services.campaigns import campaign_submit

    original = certificate.campaign
    with transaction.atomic():
        if certificate.program.status != ProgramStatus.ACTIVE:
            audit_record(
                action="surveillance.skipped",
                obj=certificate,
                payload={"reason": f"program {certificate.program} is {certificate.program.status}"},
            )
            return None
        try:
            # A refusal is audited: in the record's words, whatever the request's language.
            with translation.override("en"), transaction.atomic():
                campaign = campaign_submit(
                    vendor=certificate.vendor,
                    target=certificate.target,
                    program=certificate.program,
                    level=certificate.level,
                    model_artifacts=list(original.model_artifacts.all()),
                    submitted_by=None,
                    purpose="surveillance",
                )
        except ValidationError as exc:
            logger.warning("surveillance of %s not submitted: %s", certificate.serial, exc)
            audit_record(
                action="surveillance.not_submitted",
                obj=certificate,
                payload={"reason": "; ".join(exc.messages)},
            )
            return None
        run = SurveillanceRun.objects.create(certificate=certificate, campaign=campaign)
        audit_record(
            action="surveillance.submitted",
            obj=certificate,
            payload={"serial": certificate.serial, "campaign": campaign.pk},
        )
    return run


def surveillance_schedule(*, now: datetime | None = None) -> int:
    """Submit every due surveillance campaign; returns how many were submitted."""
    return sum(1 for certificate in surveillance_due(now=now) if surveillance_submit(certificate=certificate))


def surveillance_conclude(*, campaign: Campaign, failure: str) -> Certificate | None:
    """A surveillance campaign failed: suspend the certificate it re-tests (if still active). Idempotent."""
    with transaction.atomic():
        run = SurveillanceRun.objects.select_for_update().filter(campaign=campaign).first()
        if run is None or run.concluded_at is not None:
            return None
        run.concluded_at, run.outcome = timezone.now(), f"failed: {failure}"[:200]
        run.save(update_fields=["concluded_at", "outcome"])
        certificate = Certificate.objects.select_for_update().get(pk=run.certificate_id)
        if certificate.status != CertificateStatus.ACTIVE:
            return certificate
        reason = say("certificate.surveillance_failed", campaign=campaign.pk, failure=failure)
        return certificate_status_change(certificate, CertificateStatus.SUSPENDED, actor=None, reason=reason)


def surveillance_sweep() -> int:
    """Suspend the certificates whose surveillance campaign ended failed or cancelled (the runs app ends
    those without an evaluation); returns how many runs were concluded."""
    runs = SurveillanceRun.objects.filter(
        concluded_at__isnull=True, campaign__state__in=ENDED_WITHOUT_VERDICT_STATES
    ).select_related("campaign")
    concluded = 0
    for run in runs:
        campaign = run.campaign
        failure = (
            say("surveillance.ended_because", state=campaign.state, reason=campaign.state_reason)
            if campaign.state_reason
            else say("surveillance.ended", state=campaign.state)
        )
        surveillance_conclude(campaign=campaign, failure=failure)
        concluded += 1
    return concluded
