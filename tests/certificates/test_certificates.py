"""Certificates: content, serials, signing keys on disk, statuses, supersession and expiry."""

from __future__ import annotations

import json
import stat
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.certificates.models import Certificate, CertificateStatus, SigningKey, SigningKeyStatus
from apps.certificates.services import (
    certificate_check,
    certificate_reinstate,
    certificate_revoke,
    certificate_suspend,
    certificates_expire,
    review_approve,
    signing_key_rotate,
)
from apps.certificates.services.certificates import serial_next
from apps.runs.models import ResultDocument
from tests.certificates.evidence import campaign_with_evidence


def test_the_certificate_says_what_was_certified(certified):
    certificate = certified(level="standard", accuracy=[0.99999, 0.99995])
    payload = json.loads(certificate.payload_json)
    assert payload["serial"] == certificate.serial
    assert payload["program"]["code"] == "AIA" and payload["program"]["version"] == "1.0"
    assert payload["program"]["level"] == "standard"
    subject = payload["subject"]
    assert subject["vendor"]["name"] == "Acme Silicon"
    assert subject["chip"]["declared_peak_tflops"] == {"fp32": 67.0, "bf16": 989.4}
    assert subject["target"]["torch_version"] == "2.4.0"
    assert subject["measured_fingerprint"]["device_name"] == "Accelerator X"
    assert payload["scope"]["dtypes"] == ["bfloat16", "float16", "float32", "int8"]
    assert len(payload["scope"]["models"]) == 2
    assert set(payload["headline"]["best_gemm_tflops"]) == {"float32", "bfloat16"}
    shas = set(
        ResultDocument.objects.filter(job__campaign=certificate.campaign).values_list("sha256", flat=True)
    )
    assert {item["sha256"] for item in payload["evidence"]} == shas and len(shas) == 4
    assert payload["issuer"]["key_id"] == certificate.signing_key.key_id
    assert certificate.valid_until - certificate.issued_at == timedelta(days=365)
    assert payload["valid_until"] == certificate.valid_until.isoformat().replace("+00:00", "Z")


def test_the_payload_is_stored_exactly_as_signed_in_canonical_form(certified):
    from runners.canonical import canonical_text as canonical_json

    certificate = certified()
    assert canonical_json(json.loads(certificate.payload_json)) == certificate.payload_json
    assert certificate_check(certificate=certificate).signature_valid


def test_serials_count_up_per_program_and_year(db):
    assert serial_next(prefix="AIA", year=2026) == "AIA-2026-000001"
    assert serial_next(prefix="AIA", year=2026) == "AIA-2026-000002"
    assert serial_next(prefix="AIA", year=2027) == "AIA-2027-000001"
    assert serial_next(prefix="XYZ", year=2026) == "XYZ-2026-000001"


def test_serials_are_unique_across_certificates(certified):
    serials = [certified().serial for _ in range(3)]
    assert len(set(serials)) == 3 and sorted(serials) == serials


def test_the_private_key_lives_in_a_0600_file_and_never_in_the_database(certified, signing_key_dir):
    certificate = certified()
    key = certificate.signing_key
    path = signing_key_dir / f"{key.key_id}.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes()
    stored = json.dumps([list(row) for row in SigningKey.objects.values_list()], default=str)
    assert "PRIVATE" not in stored and "PRIVATE" not in certificate.payload_json


def test_a_private_key_file_readable_by_others_is_refused(certified, signing_key_dir):
    from django.core.exceptions import ImproperlyConfigured

    key = certified().signing_key
    (signing_key_dir / f"{key.key_id}.pem").chmod(0o644)
    with pytest.raises(ImproperlyConfigured, match="chmod 600"):
        certified()


def test_rotation_retires_the_old_key_and_old_certificates_still_verify(certified, client):
    old = certified()
    call_command("signing_key_rotate", stdout=open("/dev/null", "w"))  # noqa: SIM115
    new = certified()
    old.refresh_from_db()
    assert old.signing_key.status == SigningKeyStatus.RETIRED
    assert new.signing_key.status == SigningKeyStatus.ACTIVE and new.signing_key != old.signing_key
    assert (
        certificate_check(certificate=old).signature_valid
        and certificate_check(certificate=new).signature_valid
    )
    assert AuditEvent.objects.filter(action="signing_key.rotated").exists()
    assert AuditEvent.objects.filter(action="signing_key.retired").exists()
    keys = client.get("/.well-known/certification-keys.json").json()["keys"]
    assert {(k["key_id"], k["status"]) for k in keys} == {
        (old.signing_key.key_id, "retired"),
        (new.signing_key.key_id, "active"),
    }


def test_one_active_key_at_a_time(db):
    first = signing_key_rotate()
    second = signing_key_rotate()
    first.refresh_from_db()
    assert SigningKey.objects.filter(status="active").get() == second and first.status == "retired"


def test_revoking_needs_a_reason_and_a_reviewer(cast, certified):
    certificate = certified()
    for reason in ["", "  "]:
        with pytest.raises(ValidationError):
            certificate_revoke(certificate=certificate, reason=reason, actor=cast.reviewer)
    with pytest.raises(PermissionDenied):
        certificate_revoke(certificate=certificate, reason="Fraud.", actor=cast.owner)
    certificate.refresh_from_db()
    assert certificate.status == CertificateStatus.ACTIVE
    certificate_revoke(certificate=certificate, reason="Declared peaks were falsified.", actor=cast.reviewer)
    certificate.refresh_from_db()
    assert certificate.status == CertificateStatus.REVOKED
    assert certificate.status_reason == "Declared peaks were falsified."
    event = AuditEvent.objects.get(action="certificate.revoked")
    assert event.actor == cast.reviewer and event.payload["reason"] == "Declared peaks were falsified."


def test_suspend_reinstate_and_revoke_move_only_from_allowed_states(cast, certified):
    certificate = certified()
    certificate_suspend(certificate=certificate, reason="Under investigation.", actor=cast.reviewer)
    with pytest.raises(ValidationError):
        certificate_suspend(certificate=certificate, reason="Again.", actor=cast.reviewer)
    certificate_reinstate(certificate=certificate, reason="Cleared.", actor=cast.reviewer)
    certificate.refresh_from_db()
    assert certificate.status == CertificateStatus.ACTIVE
    certificate_revoke(certificate=certificate, reason="Withdrawn by the vendor.", actor=cast.reviewer)
    with pytest.raises(ValidationError):
        certificate_reinstate(certificate=certificate, reason="Oops.", actor=cast.reviewer)


def test_expiry_sweep_expires_certificates_past_validity(certified):
    certificate = certified()
    assert certificates_expire() == 0
    Certificate.objects.filter(pk=certificate.pk).update(valid_until=timezone.now() - timedelta(seconds=1))
    assert certificate_check(certificate=Certificate.objects.get(pk=certificate.pk)).status == "expired"
    assert certificates_expire() == 1
    certificate.refresh_from_db()
    assert certificate.status == CertificateStatus.EXPIRED
    assert AuditEvent.objects.filter(action="certificate.expired", actor=None).exists()
    assert certificates_expire() == 0


def test_a_recertification_of_the_same_target_supersedes_the_previous_certificate(cast, certified, evaluated):
    first = certified()
    second = certified(target=first.target)
    first.refresh_from_db()
    assert first.status == CertificateStatus.SUPERSEDED and first.superseded_by == second
    assert json.loads(second.payload_json)["supersedes"] == first.serial
    other_target = certified()
    assert other_target.status == CertificateStatus.ACTIVE and second.status == CertificateStatus.ACTIVE


def test_certificate_issue_refuses_without_enough_approvals(cast, evaluated):
    from apps.certificates.services import certificate_issue

    campaign = evaluated()
    with pytest.raises(ValidationError, match="approving reviewers"):
        certificate_issue(campaign=campaign)
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason="Fine.")
    with pytest.raises(ValidationError):  # already approved: a second issue is refused
        certificate_issue(campaign=campaign)
    assert Certificate.objects.count() == 1


def test_issuing_works_on_a_fresh_installation_without_any_key(cast, program):
    from apps.certificates.services import campaign_evaluate

    assert not SigningKey.objects.exists()
    campaign = campaign_with_evidence(vendor=cast.vendor, program=program)
    campaign_evaluate(campaign_id=campaign.pk)
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason="Fine.")
    assert SigningKey.objects.filter(status="active").count() == 1
    assert AuditEvent.objects.filter(action="signing_key.created").exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_serials_never_collide():
    """Threads drawing serials at once (on PostgreSQL the counter row lock serializes them)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection as default_connection
    from django.db import connections

    if default_connection.vendor == "sqlite":
        pytest.skip("SQLite serializes every writer; the row lock matters on PostgreSQL")

    def draw(_):
        try:
            return serial_next(prefix="RACE", year=2026)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=8) as pool:
        serials = list(pool.map(draw, range(40)))
    assert len(set(serials)) == 40
    assert sorted(serials)[-1] == "RACE-2026-000040"
