"""A signing key reported compromised: nothing it signed is trusted, live certificates are re-signed."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from apps.audit.services import audit_chain_verify
from apps.certificates.models import Certificate, CertificateStatus, SigningKeyStatus
from apps.certificates.services import certificate_revoke
from apps.certificates.services.certificates import certificate_check, certificate_document
from apps.certificates.services.keys import signing_key_compromise, signing_key_path
from certification.verify import load_public_key, strict_loads, verify_document_bytes


def test_compromising_the_active_key_re_signs_live_certificates_with_a_new_key(
    cast, certified, client, django_capture_on_commit_callbacks
):
    live = certified()
    revoked = certified()
    certificate_revoke(certificate=revoked, reason="Vendor withdrew the product.", actor=cast.reviewer)
    old_key = live.signing_key
    old_payload = live.payload_json

    with django_capture_on_commit_callbacks(execute=True):
        resigned = signing_key_compromise(key=old_key, reason="HSM backup found on a public share.")
    assert [c.serial for c in resigned] == [live.serial]
    old_key.refresh_from_db()
    assert old_key.status == SigningKeyStatus.COMPROMISED and old_key.compromised_at is not None
    assert not signing_key_path(old_key.key_id).exists(), "the leaked private key is destroyed"

    live.refresh_from_db()
    new_key = live.signing_key
    assert new_key.status == SigningKeyStatus.ACTIVE and new_key != old_key
    payload = strict_loads(live.payload_json)
    assert payload["serial"] == live.serial and payload["issuer"]["key_id"] == new_key.key_id
    assert payload["resigned"]["previous_payload_sha256"]
    before = strict_loads(old_payload)
    assert {k: v for k, v in payload.items() if k not in {"issuer", "resigned"}} == {
        k: v for k, v in before.items() if k != "issuer"
    }, "re-signing changes nothing but the issuer key and the note"
    assert certificate_check(certificate=live).signature_valid
    offline = verify_document_bytes(
        certificate_document(certificate=live).encode(), load_public_key(new_key.public_key_pem)
    )
    assert offline.ok, offline.message

    verdict = client.get(f"/api/v1/certificates/{revoked.serial}/verify/").json()
    assert verdict["signature_valid"] is False and "compromised" in verdict["reason"]
    keys = {k["key_id"]: k for k in client.get("/.well-known/certification-keys.json").json()["keys"]}
    assert keys[old_key.key_id]["status"] == "compromised" and keys[old_key.key_id]["compromised_at"]
    assert audit_chain_verify().ok


def test_a_retired_key_compromise_re_signs_with_the_current_active_key(certified):
    old = certified()
    call_command("signing_key_rotate", stdout=StringIO())
    current = certified()
    call_command(
        "signing_key_compromise", old.signing_key.key_id[:12], "--reason", "leaked", stdout=StringIO()
    )
    old.refresh_from_db()
    assert old.signing_key == current.signing_key
    assert certificate_check(certificate=old).signature_valid


def test_a_compromise_needs_a_reason_and_happens_once(certified):
    certificate = certified()
    with pytest.raises(ValidationError):
        signing_key_compromise(key=certificate.signing_key, reason="  ")
    leaked = certificate.signing_key
    signing_key_compromise(key=leaked, reason="leaked")
    with pytest.raises(ValidationError):
        signing_key_compromise(key=leaked, reason="again")
    assert Certificate.objects.get(pk=certificate.pk).status == CertificateStatus.ACTIVE
