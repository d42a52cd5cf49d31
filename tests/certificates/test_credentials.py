"""Certificates as W3C Verifiable Credentials 2.0, checked by an implementation written here from the
specifications, not with the platform's code:

- W3C Data Integrity EdDSA Cryptosuites v1.0, eddsa-jcs-2022 (3.3): hashData = SHA-256(JCS(proof
  configuration with the document's @context)) || SHA-256(JCS(document without proof)); the
  proofValue is the base58btc multibase ("z") Ed25519 signature over hashData.
- did:web: did:web:<host> resolves to https://<host>/.well-known/did.json; a Multikey's
  publicKeyMultibase is "z" + base58btc(0xed 0x01 + 32-byte Ed25519 key).
- Bitstring Status List v1.0: encodedList is multibase base64url ("u", no padding) of the GZIP of the
  bitstring; index 0 is the leftmost (highest) bit of the first byte.

Only hashlib, gzip, base64, rfc8785 and cryptography's Ed25519 are used for the checks.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import random
import time
from urllib.parse import unquote, urlsplit

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class NotVerified(Exception):
    pass


def b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        number = number * 58 + ALPHABET.index(char)
    leading = len(text) - len(text.lstrip("1"))
    return b"\0" * leading + (number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b"")


def path_of(url: str) -> str:
    return urlsplit(url).path


def resolve_key(client, verification_method: str) -> Ed25519PublicKey:
    """did:web resolution of a verification method to its Ed25519 key (assertionMethod only)."""
    did, _, _ = verification_method.partition("#")
    if not did.startswith("did:web:"):
        raise NotVerified(f"not a did:web key: {verification_method}")
    host = unquote(did[len("did:web:") :].split(":")[0])
    response = client.get("/.well-known/did.json", HTTP_HOST=host)
    assert response.status_code == 200
    document = json.loads(response.content)
    if document["id"] != did or verification_method not in document.get("assertionMethod", []):
        raise NotVerified("the key is not an assertion method of the issuer's DID document")
    method = next(m for m in document["verificationMethod"] if m["id"] == verification_method)
    assert method["type"] == "Multikey" and method["publicKeyMultibase"].startswith("z")
    raw = b58decode(method["publicKeyMultibase"][1:])
    if raw[:2] != b"\xed\x01" or len(raw) != 34:
        raise NotVerified("not an Ed25519 Multikey")
    return Ed25519PublicKey.from_public_bytes(raw[2:])


def verify_proof(client, secured: dict) -> None:
    proof = secured["proof"]
    if proof.get("type") != "DataIntegrityProof" or proof.get("cryptosuite") != "eddsa-jcs-2022":
        raise NotVerified("not an eddsa-jcs-2022 DataIntegrityProof")
    if proof.get("proofPurpose") != "assertionMethod":
        raise NotVerified("wrong proof purpose")
    issuer = secured["issuer"]["id"] if isinstance(secured["issuer"], dict) else secured["issuer"]
    if not proof["verificationMethod"].startswith(issuer + "#"):
        raise NotVerified("the proof's key is not the issuer's")
    unsecured = {k: v for k, v in secured.items() if k != "proof"}
    config = {k: v for k, v in proof.items() if k != "proofValue"}
    config["@context"] = unsecured["@context"]
    hash_data = (
        hashlib.sha256(rfc8785.dumps(config)).digest() + hashlib.sha256(rfc8785.dumps(unsecured)).digest()
    )
    if not proof["proofValue"].startswith("z"):
        raise NotVerified("proofValue is not base58btc")
    try:
        resolve_key(client, proof["verificationMethod"]).verify(b58decode(proof["proofValue"][1:]), hash_data)
    except (InvalidSignature, ValueError) as exc:
        raise NotVerified(f"bad signature: {exc!r}") from None


def status_bit(client, entry: dict) -> int:
    assert entry["type"] == "BitstringStatusListEntry"
    response = client.get(path_of(entry["statusListCredential"]))
    assert response.status_code == 200
    status_list = json.loads(response.content)
    verify_proof(client, status_list)
    assert "BitstringStatusListCredential" in status_list["type"]
    subject = status_list["credentialSubject"]
    assert subject["statusPurpose"] == entry["statusPurpose"]
    encoded = subject["encodedList"]
    assert encoded.startswith("u")
    bits = gzip.decompress(base64.urlsafe_b64decode(encoded[1:] + "=" * (-len(encoded[1:]) % 4)))
    assert len(bits) * 8 >= 131_072
    index = int(entry["statusListIndex"])
    return (bits[index // 8] >> (7 - index % 8)) & 1


def verify_credential(client, credential: dict) -> None:
    """Everything a relying party checks; raises NotVerified."""
    if credential.get("@context", [None])[0] != "https://www.w3.org/ns/credentials/v2":
        raise NotVerified("not a VC 2.0 context")
    if "VerifiableCredential" not in credential.get("type", []):
        raise NotVerified("not a VerifiableCredential")
    verify_proof(client, credential)
    for entry in credential["credentialStatus"]:
        if status_bit(client, entry):
            raise NotVerified(f"status {entry['statusPurpose']} is set")


def fetch(client, serial: str) -> tuple[bytes, dict]:
    response = client.get(f"/api/v1/certificates/{serial}/credential/")
    assert response.status_code == 200, response.content
    return response.content, json.loads(response.content)


def test_a_credential_from_the_api_verifies_with_the_independent_implementation(certified, client):
    certificate = certified()
    raw, credential = fetch(client, certificate.serial)
    started = time.perf_counter()
    verify_credential(client, credential)
    elapsed = time.perf_counter() - started
    print(f"credential verification (proof, did:web, two status lists): {elapsed * 1000:.1f} ms")
    assert credential["validFrom"] == json.loads(certificate.payload_json)["issued_at"]
    assert credential["validUntil"] == json.loads(certificate.payload_json)["valid_until"]
    assert credential["credentialSubject"]["certificate"]["serial"] == certificate.serial
    assert {e["statusPurpose"] for e in credential["credentialStatus"]} == {"revocation", "suspension"}
    # Served as its RFC 8785 form; the same certificate always gives the same bytes.
    assert raw == rfc8785.dumps(credential)
    assert fetch(client, certificate.serial)[0] == raw


def test_any_changed_byte_of_the_credential_fails(certified, client):
    certificate = certified()
    raw, credential = fetch(client, certificate.serial)
    text = raw.decode()
    rng = random.Random(18)
    failed = 0
    for _ in range(120):
        position = rng.randrange(len(text))
        replacement = rng.choice([c for c in 'abcXYZ019:{}",' if c != text[position]])
        mutated = text[:position] + replacement + text[position + 1 :]
        try:
            document = json.loads(mutated)
            if document == credential:
                continue  # an equivalent JSON text (cannot happen with these characters, but be fair)
            verify_credential(client, document)
        except (NotVerified, ValueError, KeyError, TypeError, AttributeError, IndexError, StopIteration):
            failed += 1
            continue
        pytest.fail(f"a credential changed at byte {position} still verified")
    assert failed > 100
    for edit in (
        lambda c: c["credentialSubject"]["certificate"].update(level="advanced"),
        lambda c: c.update(validUntil="2099-01-01T00:00:00Z"),
        lambda c: c["credentialStatus"][0].update(statusListIndex="0"),
        lambda c: c["proof"].update(created="2020-01-01T00:00:00Z"),
    ):
        tampered = json.loads(raw)
        edit(tampered)
        with pytest.raises(NotVerified):
            verify_credential(client, tampered)


def test_suspension_and_revocation_show_in_the_status_lists(cast, certified, client):
    from apps.certificates.services import certificate_reinstate, certificate_revoke, certificate_suspend

    certificate = certified()
    _, credential = fetch(client, certificate.serial)
    entries = {e["statusPurpose"]: e for e in credential["credentialStatus"]}
    verify_credential(client, credential)

    certificate_suspend(certificate=certificate, reason="Failed surveillance.", actor=cast.reviewer)
    assert status_bit(client, entries["suspension"]) == 1
    with pytest.raises(NotVerified, match="suspension"):
        verify_credential(client, credential)
    # The credential itself is unchanged: only the status list moved.
    assert fetch(client, certificate.serial)[1] == credential

    certificate_reinstate(certificate=certificate, reason="Re-test passed.", actor=cast.reviewer)
    verify_credential(client, credential)

    certificate_revoke(certificate=certificate, reason="Falsified declaration.", actor=cast.reviewer)
    assert status_bit(client, entries["revocation"]) == 1
    with pytest.raises(NotVerified, match="revocation"):
        verify_credential(client, credential)


def test_a_compromised_key_no_longer_resolves(certified, client):
    from apps.certificates.services.keys import signing_key_compromise

    certificate = certified()
    _, credential = fetch(client, certificate.serial)
    signing_key_compromise(key=certificate.signing_key, reason="Key file leaked.")
    with pytest.raises((NotVerified, StopIteration)):
        verify_credential(client, credential)
    # The live certificate was re-signed with the new key: its credential verifies again.
    _, fresh = fetch(client, certificate.serial)
    verify_credential(client, fresh)
    assert fresh["proof"]["verificationMethod"] != credential["proof"]["verificationMethod"]


def test_the_offline_verifier_accepts_the_credential_and_refuses_a_tampered_one(certified, client, tmp_path):
    from certification.verify import main

    certificate = certified()
    raw, credential = fetch(client, certificate.serial)
    (tmp_path / "keys.json").write_bytes(client.get("/.well-known/certification-keys.json").content)
    (tmp_path / "credential.json").write_bytes(raw)
    keys = str(tmp_path / "keys.json")
    assert main([str(tmp_path / "credential.json"), "--keys", keys]) == 0
    credential["credentialSubject"]["certificate"]["level"] = "advanced"
    (tmp_path / "credential.json").write_text(json.dumps(credential, indent=2))
    assert main([str(tmp_path / "credential.json"), "--keys", keys]) == 1
    # The plain certificate document still verifies with the same command.
    (tmp_path / "cert.json").write_bytes(
        client.get(f"/api/v1/certificates/{certificate.serial}/document/").content
    )
    assert main([str(tmp_path / "cert.json"), "--keys", keys]) == 0


def test_the_credential_answers_the_media_types_it_has(certified, client):
    certificate = certified()
    url = f"/api/v1/certificates/{certificate.serial}/credential/"
    assert client.get(url)["Content-Type"].startswith("application/vc")
    assert client.get(url, HTTP_ACCEPT="application/json")["Content-Type"].startswith("application/json")
    assert client.get(url, HTTP_ACCEPT="text/csv").status_code == 406
    assert client.get("/api/v1/certificates/NOPE-1/credential/").status_code == 404
    assert client.get("/api/v1/credentials/status/other/").status_code == 404
