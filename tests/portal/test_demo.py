"""`make run`'s promise, end to end: the demo certifies this machine's CPU through the real pipeline."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from apps.audit.models import AuditEvent
from apps.audit.services import audit_chain_verify
from apps.certificates.models import Certificate, CertificateStatus
from apps.runs.models import Campaign, CampaignState, JobState

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def test_seed_demo_ends_with_a_real_certificate_of_the_local_cpu(
    transactional_db, settings, tmp_path, client
):
    settings.VAR_DIR = tmp_path
    settings.EMBEDDED_RUNNER_KEY_FILE = tmp_path / "keys" / "local-runner.pem"
    settings.CERT_SIGNING_KEY_DIR = tmp_path / "signing"
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the embedded default, whatever broker CI exports
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    out = StringIO()
    call_command("seed_demo", stdout=out)

    campaign = Campaign.objects.get(target__slug="local-cpu")
    assert campaign.state == CampaignState.APPROVED, out.getvalue()
    assert sorted(campaign.jobs.values_list("suite", flat=True)) == ["conformance", "model", "performance"]
    assert all(job.state == JobState.SUCCEEDED and job.document for job in campaign.jobs.all())
    certificate = Certificate.objects.get(campaign=campaign)
    assert certificate.status == CertificateStatus.ACTIVE
    # Approved by the demo reviewer through the normal review service, and audited as such.
    approval = AuditEvent.objects.get(action="review.approved", object_id=str(campaign.pk))
    assert approval.actor_label == "reviewer"
    assert audit_chain_verify().ok
    verdict = client.get(f"/api/v1/certificates/{certificate.serial}/verify/").json()
    assert verdict["signature_valid"] and verdict["status"] == "active"

    call_command("seed_demo", stdout=StringIO())
    assert Certificate.objects.count() == 1, "running it again certifies nothing twice"
