"""Scheduled work: surveillance re-runs on the program's cadence, suspension on failure, expiry rows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.audit.models import AuditEvent
from apps.certificates.models import CertificateStatus, SurveillanceRun
from apps.certificates.services import (
    campaign_evaluate,
    review_approve,
    surveillance_schedule,
    surveillance_sweep,
)
from apps.runs.models import Campaign, CampaignPurpose, CampaignState
from tests.certificates.evidence import campaign_with_evidence


def test_nothing_is_due_before_the_surveillance_cadence(certified):
    certificate = certified()
    assert surveillance_schedule(now=certificate.issued_at + timedelta(days=89)) == 0


def test_a_due_certificate_gets_a_surveillance_campaign_with_its_level_and_models(certified):
    certificate = certified(level="standard")
    later = certificate.issued_at + timedelta(days=91)
    assert surveillance_schedule(now=later) == 1
    run = SurveillanceRun.objects.get(certificate=certificate)
    campaign = run.campaign
    assert campaign.purpose == CampaignPurpose.SURVEILLANCE and campaign.level == "standard"
    assert campaign.target == certificate.target and campaign.state == CampaignState.QUEUED
    assert set(campaign.model_artifacts.all()) == set(certificate.campaign.model_artifacts.all())
    assert AuditEvent.objects.filter(action="surveillance.submitted").exists()
    assert surveillance_schedule(now=later) == 0, "one open surveillance campaign at a time"


def _surveillance(certificate, **evidence) -> Campaign:
    campaign = campaign_with_evidence(
        vendor=certificate.vendor,
        program=certificate.program,
        level=certificate.level,
        target=certificate.target,
        purpose=CampaignPurpose.SURVEILLANCE,
        **evidence,
    )
    SurveillanceRun.objects.create(certificate=certificate, campaign=campaign)
    return campaign


@pytest.mark.parametrize("ending", [CampaignState.FAILED, CampaignState.CANCELLED])
def test_a_surveillance_campaign_that_ends_failed_suspends_the_certificate(certified, ending):
    certificate = certified()
    campaign = _surveillance(certificate, state=ending)
    Campaign.objects.filter(pk=campaign.pk).update(state_reason="runner offline")
    assert surveillance_sweep() == 1
    certificate.refresh_from_db()
    assert certificate.status == CertificateStatus.SUSPENDED
    assert f"Surveillance campaign {campaign.pk} failed" in certificate.status_reason
    assert "runner offline" in certificate.status_reason
    event = AuditEvent.objects.get(action="certificate.suspended")
    assert event.actor is None and event.payload["reason"] == certificate.status_reason
    assert surveillance_sweep() == 0


def test_a_surveillance_evaluation_with_a_failed_blocker_suspends_the_certificate(certified):
    certificate = certified()
    campaign = _surveillance(
        certificate, conformance={"float32": {"pass": 10, "fail": 10}, "bfloat16": {"pass": 5}}
    )
    campaign_evaluate(campaign_id=campaign.pk)
    certificate.refresh_from_db()
    assert certificate.status == CertificateStatus.SUSPENDED and "B1" in certificate.status_reason


def test_a_passing_surveillance_approved_by_a_reviewer_supersedes_the_certificate(cast, certified):
    certificate = certified()
    campaign = _surveillance(certificate)
    campaign_evaluate(campaign_id=campaign.pk)
    certificate.refresh_from_db()
    assert certificate.status == CertificateStatus.ACTIVE
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason="Surveillance re-run passes.")
    certificate.refresh_from_db()
    campaign.refresh_from_db()
    assert certificate.status == CertificateStatus.SUPERSEDED
    assert certificate.superseded_by == campaign.certificate
    assert SurveillanceRun.objects.get(campaign=campaign).outcome.startswith("passed")


def test_a_rejected_surveillance_campaign_suspends_the_certificate(cast, certified):
    from apps.certificates.services import review_reject

    certificate = certified()
    campaign = _surveillance(certificate)
    campaign_evaluate(campaign_id=campaign.pk)
    review_reject(campaign=campaign, reviewer=cast.reviewer, reason="Output logs show stale results.")
    certificate.refresh_from_db()
    assert certificate.status == CertificateStatus.SUSPENDED and "stale results" in certificate.status_reason


def test_beat_schedules_exist_as_editable_rows_for_registered_tasks(db):
    from django_celery_beat.models import PeriodicTask

    from certification.celery import app

    rows = {row.task: row for row in PeriodicTask.objects.filter(task__startswith="certificates.")}
    assert set(rows) == {
        "certificates.expire",
        "certificates.surveillance_schedule",
        "certificates.surveillance_sweep",
    }
    assert all(row.enabled and row.interval is not None for row in rows.values())
    app.loader.import_default_modules()
    assert set(rows) <= set(app.tasks)


def test_the_expire_task_runs_the_service(certified):
    from django.utils import timezone

    from apps.certificates.models import Certificate
    from apps.certificates.tasks import expire

    certificate = certified()
    Certificate.objects.filter(pk=certificate.pk).update(valid_until=timezone.now() - timedelta(days=1))
    assert expire.apply().get() == 1
