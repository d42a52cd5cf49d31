"""One canonical JSON (RFC 8785) for everything signed or hashed; what was signed before it still verifies."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import rfc8785
from django.db import connection

from apps.audit.services import audit_chain_verify, audit_record, event_hash
from apps.certificates.services import certificate_check, certificate_document
from apps.certificates.services.certificates import certificate_resign
from apps.certificates.services.keys import signing_key_active, signing_private_key
from certification.verify import load_public_key, verify_document_bytes
from runners.canonical import JCS, canonical_text, legacy_canonical_text


def test_a_new_certificate_is_signed_over_its_rfc8785_form(certified):
    certificate = certified()
    payload = json.loads(certificate.payload_json)
    assert payload["canonicalization"] == JCS
    # The maintained JCS implementation writes exactly the stored (signed) text.
    assert rfc8785.dumps(payload).decode("utf-8") == certificate.payload_json
    assert certificate_check(certificate=certificate).signature_valid


def _legacy_signed(certificate) -> str:
    """Re-sign the certificate as the platform did before RFC 8785: no canonicalization field, Python's
    sorted compact JSON, where a float keeps its `.0`."""
    payload = json.loads(certificate.payload_json)
    del payload["canonicalization"]
    payload["subject"]["chip"]["declared_peak_tflops"]["fp32"] = 67.0
    text = legacy_canonical_text(payload)
    assert '"fp32":67.0' in text and text != canonical_text(payload)  # the two forms really differ
    key = certificate.signing_key
    certificate.payload_json = text
    certificate.payload_sha256 = hashlib.sha256(text.encode()).hexdigest()
    certificate.signature = base64.b64encode(signing_private_key(key).sign(text.encode())).decode()
    certificate.save(update_fields=["payload_json", "payload_sha256", "signature"])
    return text


def test_a_certificate_signed_in_the_legacy_form_still_verifies_online_and_offline(certified):
    certificate = certified()
    _legacy_signed(certificate)
    assert certificate_check(certificate=certificate).signature_valid
    document = certificate_document(certificate=certificate).encode()
    assert b'"fp32":67.0' in document
    public_key = load_public_key(certificate.signing_key.public_key_pem)
    assert verify_document_bytes(document, public_key).ok
    # Its JCS rewriting carries the same values but is not what was signed.
    assert not verify_document_bytes(document.replace(b'"fp32":67.0', b'"fp32":67'), public_key).ok


def test_a_legacy_text_claiming_rfc8785_is_refused(certified):
    certificate = certified()
    payload = json.loads(certificate.payload_json)
    payload["subject"]["chip"]["declared_peak_tflops"]["fp32"] = 67.0
    text = legacy_canonical_text(payload)  # says RFC8785, written the old way
    certificate.payload_json = text
    certificate.signature = base64.b64encode(
        signing_private_key(certificate.signing_key).sign(text.encode())
    ).decode()
    certificate.save(update_fields=["payload_json", "signature"])
    check = certificate_check(certificate=certificate)
    assert not check.signature_valid and "canonical form" in check.reason


def test_an_unknown_canonicalization_is_refused(certified):
    certificate = certified()
    payload = json.loads(certificate.payload_json)
    payload["canonicalization"] = "whatever"
    text = rfc8785.dumps(payload).decode()
    certificate.payload_json = text
    certificate.signature = base64.b64encode(
        signing_private_key(certificate.signing_key).sign(text.encode())
    ).decode()
    certificate.save(update_fields=["payload_json", "signature"])
    check = certificate_check(certificate=certificate)
    assert not check.signature_valid and "unknown canonicalization" in check.reason


def test_re_signing_a_legacy_certificate_moves_it_to_rfc8785(certified):
    certificate = certified()
    _legacy_signed(certificate)
    resigned = certificate_resign(certificate=certificate, key=signing_key_active(), reason="test")
    payload = json.loads(resigned.payload_json)
    assert payload["canonicalization"] == JCS and '"fp32":67.0' not in resigned.payload_json
    assert certificate_check(certificate=resigned).signature_valid


def test_audit_events_hash_rfc8785_and_a_legacy_version_2_prefix_still_verifies(db):
    first = audit_record(
        action="test.step", actor_label="tester", object_type="t", object_id="1", payload={"ratio": 2.0}
    )
    assert first.hash_version == 3
    # Rewrite the first event as the platform wrote it before (version 2, the legacy form).
    v2 = event_hash(
        version=2,
        sequence=1,
        occurred_at=first.occurred_at.isoformat(),
        actor_id=None,
        actor_label="tester",
        action="test.step",
        object_type="t",
        object_id="1",
        payload={"ratio": 2.0},
        previous_hash="0" * 64,
    )
    assert v2 != first.hash
    with connection.cursor() as cursor:  # events refuse ORM updates
        cursor.execute(
            "UPDATE audit_auditevent SET hash = %s, hash_version = 2 WHERE id = %s", [v2, first.pk]
        )
        cursor.execute("UPDATE audit_audithead SET hash = %s WHERE id = 1", [v2])
    second = audit_record(action="test.step", actor_label="tester", object_type="t", object_id="2")
    assert second.hash_version == 3 and second.previous_hash == v2
    assert audit_chain_verify().ok
    # A version-3 event may not be downgraded to the older formula after it.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET hash_version = 3 WHERE id = %s", [first.pk])
    assert not audit_chain_verify().ok


def test_a_program_loaded_before_rfc8785_reloads_unchanged(db):
    from apps.runs.models import Program
    from apps.runs.services.programs import program_load
    from tests.certificates.evidence import aia_program

    program = aia_program()
    legacy = hashlib.sha256(legacy_canonical_text(program.definition).encode()).hexdigest()
    Program.objects.filter(pk=program.pk).update(definition_sha256=legacy)
    again, created = program_load(definition=program.definition)
    assert again.pk == program.pk and not created


@pytest.mark.parametrize("value", [float("nan"), 2**53, {1: "x"}])
def test_the_canonical_form_refuses_what_rfc8785_cannot_carry(value):
    with pytest.raises(ValueError):
        canonical_text({"v": value})
