"""Verification, online and offline: a genuine certificate passes; any changed byte fails."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache

from apps.certificates.models import Certificate
from apps.certificates.services import certificate_check, certificate_document
from certification.verify import load_public_key, verify_document_bytes

REPO = Path(__file__).resolve().parents[2]
MUTATIONS = 300


def document_bytes(certificate) -> bytes:
    return certificate_document(certificate=certificate).encode("utf-8")


def public_key(certificate):
    return load_public_key(certificate.signing_key.public_key_pem)


def test_the_verify_endpoint_accepts_a_genuine_certificate(certified, client):
    certificate = certified()
    body = client.get(f"/api/v1/certificates/{certificate.serial}/verify/").json()
    assert body["serial"] == certificate.serial
    assert body["status"] == "active" and body["signature_valid"] is True
    assert body["key_id"] == certificate.signing_key.key_id
    assert body["checked_at"] and "Authentic" in body["reason"]


def test_the_verify_endpoint_reports_revocation(cast, certified, client):
    from apps.certificates.services import certificate_revoke

    certificate = certified()
    certificate_revoke(certificate=certificate, reason="Falsified declaration.", actor=cast.reviewer)
    body = client.get(f"/api/v1/certificates/{certificate.serial}/verify/").json()
    assert body["status"] == "revoked" and body["signature_valid"] is True
    assert "Falsified declaration." in body["reason"]


def test_every_single_character_change_of_the_stored_certificate_fails_the_api_check(certified, client):
    certificate = certified()
    rng = random.Random(20261201)
    original_text, original_signature = certificate.payload_json, certificate.signature
    alphabet = [chr(c) for c in range(32, 127)] + ["é", "\u00a0"]
    for _ in range(MUTATIONS):
        field = rng.choice(["payload_json", "payload_json", "signature"])
        text = original_text if field == "payload_json" else original_signature
        position = rng.randrange(len(text))
        replacement = rng.choice([c for c in alphabet if c != text[position]])
        mutated = text[:position] + replacement + text[position + 1 :]
        Certificate.objects.filter(pk=certificate.pk).update(**{field: mutated})
        cache.clear()  # the anonymous throttle would stop the test, not an attacker with many addresses
        body = client.get(f"/api/v1/certificates/{certificate.serial}/verify/").json()
        assert body["signature_valid"] is False, (field, position, replacement)
    Certificate.objects.filter(pk=certificate.pk).update(
        payload_json=original_text, signature=original_signature
    )
    assert client.get(f"/api/v1/certificates/{certificate.serial}/verify/").json()["signature_valid"] is True


def test_every_single_byte_change_of_the_document_fails_offline_verification(certified):
    certificate = certified()
    raw, key = document_bytes(certificate), public_key(certificate)
    assert verify_document_bytes(raw, key).ok
    rng = random.Random(7)
    positions = list(range(len(raw)))  # every position once, then random extra bytes
    positions += [rng.randrange(len(raw)) for _ in range(MUTATIONS)]
    for position in positions:
        value = rng.choice([b for b in range(256) if b != raw[position]])
        mutated = raw[:position] + bytes([value]) + raw[position + 1 :]
        assert not verify_document_bytes(mutated, key).ok, (
            position,
            value,
            raw[position - 20 : position + 20],
        )


def test_lenient_forms_of_the_same_content_are_refused(certified):
    """Re-serialised JSON (spaces, upper-case exponent, non-canonical base64 tail) is not the signed text."""
    import json

    certificate = certified()
    raw, key = document_bytes(certificate), public_key(certificate)
    document = json.loads(raw)
    assert not verify_document_bytes(json.dumps(document, indent=1).encode(), key).ok
    assert not verify_document_bytes(raw.replace(b"e-", b"E-", 1), key).ok or b"e-" not in raw
    signature = document["signature"]
    tail = signature.rstrip("=")[-1]
    sibling = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    index = sibling.index(tail)
    lenient = (
        signature.rstrip("=")[:-1] + sibling[index ^ 1] + "=" * (len(signature) - len(signature.rstrip("=")))
    )
    document["signature"] = lenient
    assert not verify_document_bytes(
        json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(), key
    ).ok


def test_a_certificate_verified_with_another_key_fails(certified):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    certificate = certified()
    verdict = verify_document_bytes(document_bytes(certificate), Ed25519PrivateKey.generate().public_key())
    assert not verdict.ok and "different key" in verdict.message


def _run_verifier(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": "", "HOME": str(cwd)}
    return subprocess.run(  # noqa: S603 - our own interpreter on a fixed command
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_offline_verifier_needs_only_its_own_file_and_cryptography(certified, client, tmp_path):
    certificate = certified()
    document = client.get(f"/api/v1/certificates/{certificate.serial}/document/")
    assert document.status_code == 200 and document["Content-Type"].startswith("application/json")
    keys = client.get("/.well-known/certification-keys.json").json()["keys"]
    pem = next(k["public_key"] for k in keys if k["key_id"] == certificate.signing_key.key_id)
    workdir = tmp_path / "buyer"
    workdir.mkdir()
    (workdir / "cert.json").write_bytes(document.content)
    (workdir / "public.pem").write_text(pem)
    shutil.copy(REPO / "certification" / "verify.py", workdir / "verify.py")
    # A guard that fails the run if anything tries to import Django.
    (workdir / "django.py").write_text("raise ImportError('the offline verifier must not import Django')\n")

    ok = _run_verifier(["verify.py", "cert.json", "--key", "public.pem"], workdir)
    assert ok.returncode == 0, ok.stderr
    assert certificate.serial in ok.stdout and ok.stdout.startswith("VALID")

    raw = bytearray(document.content)
    position = raw.index(b'"level":"') + len('"level":"')
    raw[position] ^= 0x01
    (workdir / "cert.json").write_bytes(bytes(raw))
    bad = _run_verifier(["verify.py", "cert.json", "--key", "public.pem"], workdir)
    assert bad.returncode == 1 and bad.stderr.startswith("INVALID")


def test_the_offline_verifier_runs_as_a_module_of_the_project(certified, tmp_path):
    certificate = certified()
    (tmp_path / "cert.json").write_bytes(document_bytes(certificate))
    (tmp_path / "public.pem").write_text(certificate.signing_key.public_key_pem)
    # Decoys that fail the run if the module path pulls in Django or Celery.
    guards = tmp_path / "guards"
    guards.mkdir()
    for name in ("django", "celery", "kombu"):
        (guards / f"{name}.py").write_text(f"raise ImportError('the offline verifier must not import {name}')\n")
    env = {**os.environ, "PYTHONPATH": f"{guards}{os.pathsep}{REPO}"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    args = [
        sys.executable,
        "-m",
        "certification.verify",
        str(tmp_path / "cert.json"),
        "--key",
        str(tmp_path / "public.pem"),
    ]
    run = {"env": env, "capture_output": True, "text": True, "timeout": 120, "cwd": tmp_path}
    ok = subprocess.run(args, **run)  # noqa: S603 - our own interpreter on a fixed command
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "cert.json").write_bytes(
        document_bytes(certificate).replace(b'"level":"baseline"', b'"level":"advanced"')
    )
    bad = subprocess.run(args, **run)  # noqa: S603
    assert bad.returncode == 1 and "INVALID" in bad.stderr


def test_an_expired_certificate_fails_offline_even_with_a_valid_signature(certified):
    from datetime import UTC, datetime, timedelta

    certificate = certified()
    later = datetime.now(UTC) + timedelta(days=400)
    verdict = verify_document_bytes(document_bytes(certificate), public_key(certificate), now=later)
    assert not verdict.ok and "expired" in verdict.message


@pytest.mark.parametrize("garbage", [b"", b"not json", b"[]", b'{"certificate":{}}', b"\xff\xfe"])
def test_the_offline_verifier_refuses_garbage(certified, garbage):
    assert not verify_document_bytes(garbage, public_key(certified())).ok


def test_a_stored_signature_over_another_serial_is_refused(certified):
    first, second = certified(), certified()
    Certificate.objects.filter(pk=second.pk).update(
        payload_json=first.payload_json, signature=first.signature
    )
    check = certificate_check(certificate=Certificate.objects.get(pk=second.pk))
    assert check.signature_valid is False
