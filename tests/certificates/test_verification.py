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


@pytest.mark.slow
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


def test_the_offline_verifier_needs_only_its_file_the_canonical_module_and_cryptography(
    certified, client, tmp_path
):
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
    shutil.copy(REPO / "runners" / "canonical.py", workdir / "canonical.py")
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
        (guards / f"{name}.py").write_text(
            f"raise ImportError('the offline verifier must not import {name}')\n"
        )
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


# --- Issue 12.6: the offline verifier reads the published key list and knows compromised keys ----


def _buyer_dir(tmp_path: Path) -> Path:
    """A buyer's folder: the verifier copied on its own, and a decoy that fails any Django import."""
    workdir = tmp_path / "buyer"
    workdir.mkdir(exist_ok=True)
    shutil.copy(REPO / "certification" / "verify.py", workdir / "verify.py")
    shutil.copy(REPO / "runners" / "canonical.py", workdir / "canonical.py")
    (workdir / "django.py").write_text("raise ImportError('the offline verifier must not import Django')\n")
    return workdir


def _fetch(client, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200
    return response.content


def _document(client, serial: str) -> bytes:
    return _fetch(client, f"/api/v1/certificates/{serial}/document/")


def test_the_key_list_verifies_a_good_certificate_and_says_how_old_it_is(certified, client, tmp_path):
    certificate = certified()
    workdir = _buyer_dir(tmp_path)
    (workdir / "cert.json").write_bytes(_document(client, certificate.serial))
    (workdir / "certification-keys.json").write_bytes(_fetch(client, "/.well-known/certification-keys.json"))
    ok = _run_verifier(["verify.py", "cert.json", "--keys", "certification-keys.json"], workdir)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("VALID") and certificate.serial in ok.stdout
    assert "key list: published" in ok.stdout and "0 days 0 hours old" in ok.stdout


def test_the_key_list_refuses_a_certificate_signed_with_a_compromised_key(certified, client, tmp_path):
    """The stolen key still makes a valid signature: only the published compromise can refuse it."""
    from apps.certificates.services.keys import signing_key_compromise

    certificate = certified()
    workdir = _buyer_dir(tmp_path)
    # A copy made with the key before (or by the thief after) the compromise: the signature is valid.
    (workdir / "cert.json").write_bytes(_document(client, certificate.serial))
    signing_key_compromise(key=certificate.signing_key, reason="HSM backup found on a public share.")
    (workdir / "certification-keys.json").write_bytes(_fetch(client, "/.well-known/certification-keys.json"))
    (workdir / "public.pem").write_text(certificate.signing_key.public_key_pem)

    refused = _run_verifier(["verify.py", "cert.json", "--keys", "certification-keys.json"], workdir)
    assert refused.returncode == 1 and refused.stderr.startswith("INVALID")
    assert "reported compromised" in refused.stderr and "key list: published" in refused.stderr
    # The same key as a bare PEM cannot know it, and the verifier says so.
    pem = _run_verifier(["verify.py", "cert.json", "--keys", "public.pem"], workdir)
    assert pem.returncode == 0 and "no compromise status" in pem.stdout
    # The re-signed certificate verifies with the same list.
    (workdir / "cert.json").write_bytes(_document(client, certificate.serial))
    again = _run_verifier(["verify.py", "cert.json", "--keys", "certification-keys.json"], workdir)
    assert again.returncode == 0, again.stderr


def test_the_key_list_refuses_a_certificate_signed_by_an_unknown_key(certified, client, tmp_path):
    from io import StringIO

    from django.core.management import call_command

    workdir = _buyer_dir(tmp_path)
    certified()
    (workdir / "certification-keys.json").write_bytes(_fetch(client, "/.well-known/certification-keys.json"))
    call_command("signing_key_rotate", stdout=StringIO())  # a key the buyer's list has never seen
    newer = certified()
    (workdir / "cert.json").write_bytes(_fetch(client, f"/api/v1/certificates/{newer.serial}/document/"))
    refused = _run_verifier(["verify.py", "cert.json", "--keys", "certification-keys.json"], workdir)
    assert refused.returncode == 1 and "not in the key list" in refused.stderr


def test_an_old_key_list_is_named_stale(certified):
    import json
    from datetime import UTC, datetime, timedelta

    from certification.verify import key_list_age, load_key_list, verify_document_with_key_list

    certificate = certified()
    key = certificate.signing_key
    listing = {
        "published_at": "2026-01-01T00:00:00Z",
        "keys": [{"key_id": key.key_id, "public_key": key.public_key_pem, "status": "active"}],
    }
    key_list = load_key_list(json.dumps(listing).encode())
    assert verify_document_with_key_list(document_bytes(certificate), key_list).ok
    line = key_list_age(key_list, now=datetime(2026, 1, 11, 5, tzinfo=UTC))
    assert "10 days 5 hours old" in line and "fetch a fresh copy" in line
    unpublished = load_key_list(json.dumps({"keys": listing["keys"]}).encode())
    assert "age is unknown" in key_list_age(unpublished)
    retired = {
        **listing["keys"][0],
        "status": "retired",
        "retired_at": (datetime.now(UTC) - timedelta(days=30)).isoformat(),
    }
    verdict = verify_document_with_key_list(
        document_bytes(certificate), load_key_list(json.dumps({"keys": [retired]}).encode())
    )
    assert not verdict.ok and "after that key was retired" in verdict.message


@pytest.mark.parametrize(
    "listing",
    [
        b"not json",
        b'{"keys": "all"}',
        b'{"keys": [{"key_id": "00", "public_key": "-----BEGIN PUBLIC KEY-----"}]}',
    ],
)
def test_a_bad_key_list_is_refused_before_anything_is_verified(listing, tmp_path):
    workdir = _buyer_dir(tmp_path)
    (workdir / "keys.json").write_bytes(listing)
    (workdir / "cert.json").write_text("{}")
    run = _run_verifier(["verify.py", "cert.json", "--keys", "keys.json"], workdir)
    assert run.returncode == 1 and run.stderr.startswith("INVALID")


def test_a_key_list_entry_whose_id_is_not_its_key_is_refused(certified):
    import json

    from certification.verify import load_key_list

    key = certified().signing_key
    forged = {"keys": [{"key_id": "ab" * 32, "public_key": key.public_key_pem, "status": "active"}]}
    with pytest.raises(ValueError, match="does not match its public key"):
        load_key_list(json.dumps(forged).encode())
