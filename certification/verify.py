"""Offline verification of a certificate document; needs only the Python standard library and `cryptography`.

    python -m certification.verify cert.json --keys certification-keys.json
    python verify.py cert.json --keys certification-keys.json     (this file copied on its own)
    python verify.py cert.json --keys public.pem                   (one key: no compromise status)

The document is what GET /api/v1/certificates/{serial}/document/ returns:
{"certificate": <payload>, "key_id": <hex>, "signature": <base64>}, in canonical JSON: RFC 8785 (JCS)
for a certificate whose payload says "canonicalization": "RFC8785", Python's sorted compact JSON for
one signed before that (it has no such field). The W3C Verifiable Credential form of a certificate
(GET /api/v1/certificates/{serial}/credential/, a Data Integrity proof with the eddsa-jcs-2022
cryptosuite) is accepted as well. The key list is what /.well-known/certification-keys.json returns: every
key of the authority with its status (active, retired, compromised) and the time the list was
published. A certificate signed by a key that the list marks compromised, or by a key that is not
in the list, is refused; the verifier says how old the list is, since a key may have been reported
compromised after it was fetched. The check is strict on purpose, so that every changed byte is
caught: the file must be exactly the canonical form of what it parses to, the signature exactly
canonical base64, the key id that of the given public key, and the Ed25519 signature valid over
the canonical bytes of the payload. Exit status 0 when the certificate is authentic and within
its validity, 1 otherwise (the message says why). Revocation and suspension are only known to
the authority: ask /api/v1/certificates/{serial}/verify/ for the current status.

Nothing here imports Django; the platform uses the same functions to sign and verify. It needs
`cryptography` and `rfc8785`, and the canonical-JSON module runners/canonical.py: copied on its own,
put canonical.py beside it.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

try:
    from runners.canonical import CANONICALIZATIONS, JCS, LEGACY, canonical_text_as
except ImportError:  # this file copied on its own, with canonical.py beside it
    from canonical import CANONICALIZATIONS, JCS, LEGACY, canonical_text_as  # type: ignore

DOCUMENT_KEYS = {"certificate", "key_id", "signature"}


def canonicalization_of(payload: dict[str, Any]) -> str:
    """The canonical form a certificate payload was signed in: its `canonicalization` field, or the
    legacy form for a payload signed before the field existed. ValueError for an unknown name."""
    name = payload.get("canonicalization", LEGACY)
    if name not in CANONICALIZATIONS or (name == LEGACY and "canonicalization" in payload):
        raise ValueError(f"unknown canonicalization {name!r}")
    return str(name)


def public_key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the public key is not an Ed25519 key")
    return key


def _reject_duplicates(pairs):
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in JSON object")
    return dict(pairs)


def _reject_constant(name):
    raise ValueError(f"{name} is not allowed in a certificate")


def strict_loads(text: str):
    return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)


def decode_signature(signature: str) -> bytes:
    """Strict base64: a signature that only decodes leniently (stray bits, whitespace) is refused."""
    if not isinstance(signature, str):
        raise ValueError("the signature is not a string")
    try:
        raw = base64.b64decode(signature.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("the signature is not base64") from None
    if base64.b64encode(raw).decode("ascii") != signature or len(raw) != 64:
        raise ValueError("the signature is not a canonical base64 Ed25519 signature")
    return raw


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str
    serial: str = ""


def verify_payload_text(payload_text: str, signature: str, public_key: Ed25519PublicKey) -> Verdict:
    """The signature check on the exact signed text; also insists that the text is canonical."""
    try:
        payload = strict_loads(payload_text)
    except ValueError as exc:
        return Verdict(False, f"the certificate is not valid JSON: {exc}")
    if not isinstance(payload, dict):
        return Verdict(False, "the certificate is not a JSON object")
    serial = str(payload.get("serial", ""))
    try:
        canonical = canonical_text_as(payload, canonicalization_of(payload))
    except ValueError as exc:
        return Verdict(False, f"the certificate cannot be canonicalized: {exc}", serial)
    if canonical != payload_text:
        return Verdict(False, "the certificate is not in canonical form (it was altered)", serial)
    try:
        raw_signature = decode_signature(signature)
    except ValueError as exc:
        return Verdict(False, str(exc), serial)
    try:
        public_key.verify(raw_signature, payload_text.encode("utf-8"))
    except InvalidSignature:
        return Verdict(
            False, "the signature does not match the certificate (it was altered or forged)", serial
        )
    issuer_key = (
        (payload.get("issuer") or {}).get("key_id") if isinstance(payload.get("issuer"), dict) else None
    )
    if issuer_key != public_key_id(public_key):
        return Verdict(False, "the certificate names a different issuer key", serial)
    return Verdict(True, "signature valid", serial)


def verify_document_bytes(
    raw: bytes, public_key: Ed25519PublicKey, *, now: datetime | None = None
) -> Verdict:
    """Verify a downloaded certificate document (the file's bytes) against the authority's public key."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Verdict(False, "the file is not UTF-8 text")
    try:
        document = strict_loads(text)
    except ValueError as exc:
        return Verdict(False, f"the file is not valid JSON: {exc}")
    if not isinstance(document, dict) or set(document) != DOCUMENT_KEYS:
        return Verdict(
            False, f"the file is not a certificate document (expected keys {sorted(DOCUMENT_KEYS)})"
        )
    if not isinstance(document["certificate"], dict):
        return Verdict(False, "the certificate is not a JSON object")
    try:
        form = canonicalization_of(document["certificate"])
        canonical = canonical_text_as(document, form)
    except ValueError as exc:
        return Verdict(False, f"the file cannot be canonicalized: {exc}")
    if text not in (canonical, canonical + "\n"):
        return Verdict(False, "the file is not in canonical form (it was altered)")
    if document["key_id"] != public_key_id(public_key):
        return Verdict(False, "the document was signed with a different key than the one given")
    verdict = verify_payload_text(
        canonical_text_as(document["certificate"], form), document["signature"], public_key
    )
    if not verdict.ok:
        return verdict
    valid_until = document["certificate"].get("valid_until")
    try:
        expiry = datetime.fromisoformat(str(valid_until).replace("Z", "+00:00"))
    except ValueError:
        return Verdict(False, "the certificate has no readable valid_until", verdict.serial)
    if expiry.tzinfo is None:
        return Verdict(False, "the certificate's valid_until has no time zone", verdict.serial)
    if (now or datetime.now(UTC)) > expiry:
        return Verdict(
            False, f"the signature is valid but the certificate expired on {valid_until}", verdict.serial
        )
    return Verdict(
        True, f"certificate {verdict.serial} is authentic and valid until {valid_until}", verdict.serial
    )


KEY_STATUSES = {"active", "retired", "compromised"}
STALE_AFTER_DAYS = 7


@dataclass(frozen=True)
class ListedKey:
    key_id: str
    public_key: Ed25519PublicKey
    status: str  # active, retired, compromised; "unknown" for a key given as a bare PEM
    retired_at: datetime | None = None
    compromised_at: datetime | None = None


@dataclass(frozen=True)
class KeyList:
    keys: dict[str, ListedKey]
    published_at: datetime | None
    from_pem: bool = False


def _moment(value, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"the key list's {what} is not a time: {value!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"the key list's {what} has no time zone")
    return moment


def load_key_list(raw: bytes) -> KeyList:
    """The authority's key list (certification-keys.json) or one PEM public key; ValueError if neither."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the key file is not UTF-8 text") from None
    if text.lstrip().startswith("-----BEGIN"):
        key = load_public_key(text)
        key_id = public_key_id(key)
        return KeyList({key_id: ListedKey(key_id, key, "unknown")}, None, from_pem=True)
    document = strict_loads(text)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('the key file is neither a PEM key nor a key list {"keys": [...]}')
    keys = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("public_key"), str):
            raise ValueError("a key list entry has no public_key")
        key = load_public_key(entry["public_key"])
        key_id = public_key_id(key)
        if entry.get("key_id") != key_id:
            listed_id = str(entry.get("key_id"))[:16]
            raise ValueError(f"the key list entry {listed_id} does not match its public key")
        status = entry.get("status")
        if status not in KEY_STATUSES:
            raise ValueError(f"the key list entry {key_id[:16]} has an unknown status {status!r}")
        keys[key_id] = ListedKey(
            key_id,
            key,
            status,
            _moment(entry.get("retired_at"), "retired_at"),
            _moment(entry.get("compromised_at"), "compromised_at"),
        )
    return KeyList(keys, _moment(document.get("published_at"), "published_at"))


def key_list_age(key_list: KeyList, *, now: datetime | None = None) -> str:
    """One line on how far the key list can be trusted: its age, or why it cannot tell."""
    if key_list.from_pem:
        return (
            "key: a single PEM key carries no compromise status; verify with --keys "
            "certification-keys.json (from /.well-known/certification-keys.json) "
            "to refuse compromised keys"
        )
    if key_list.published_at is None:
        return "key list: it carries no published_at, so its age is unknown; fetch a fresh copy"
    age = max((now or datetime.now(UTC)) - key_list.published_at, timedelta(0))
    days, hours = age.days, age.seconds // 3600
    line = (
        f"key list: published {key_list.published_at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}, "
        f"{days} days {hours} hours old"
    )
    if days >= STALE_AFTER_DAYS:
        line += "; fetch a fresh copy, a key may have been reported compromised since"
    return line


def _signed_at(certificate: dict[str, Any]) -> datetime | None:
    resigned = certificate.get("resigned")
    value = resigned.get("at") if isinstance(resigned, dict) else certificate.get("issued_at")
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def verify_document_with_key_list(raw: bytes, key_list: KeyList, *, now: datetime | None = None) -> Verdict:
    """Verify a certificate document with the key the list names for it; refuse compromised, unknown keys."""
    try:
        document = strict_loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        document = None
    key_id = document.get("key_id") if isinstance(document, dict) else None
    listed = key_list.keys.get(key_id) if isinstance(key_id, str) else None
    if listed is None:
        if key_list.from_pem or not isinstance(key_id, str):
            any_key = next(iter(key_list.keys.values()), None)
            if any_key is None:
                return Verdict(False, "the key list has no keys")
            return verify_document_bytes(raw, any_key.public_key, now=now)
        return Verdict(
            False,
            f"the certificate is signed by key {key_id[:16]}, which is not in the key "
            "list: an unknown key (or the list is older than the key)",
        )
    if listed.status == "compromised":
        when = f" on {listed.compromised_at.astimezone(UTC):%Y-%m-%d}" if listed.compromised_at else ""
        return Verdict(
            False,
            f"the certificate is signed by key {key_id[:16]}, reported compromised{when}: "
            "anyone holding that key could have made it; ask the authority for the "
            "re-signed copy",
        )
    verdict = verify_document_bytes(raw, listed.public_key, now=now)
    if verdict.ok and listed.status == "retired" and listed.retired_at is not None:
        signed_at = _signed_at(document["certificate"])
        if signed_at is None or signed_at.tzinfo is None or signed_at > listed.retired_at:
            message = f"the certificate is signed by key {key_id[:16]} after that key was retired"
            return Verdict(False, message, verdict.serial)
    return verdict


# --- W3C Verifiable Credentials 2.0 with a Data Integrity proof, cryptosuite eddsa-jcs-2022 ---------
# (W3C "Data Integrity EdDSA Cryptosuites v1.0", section 3.3: Ed25519 over the SHA-256 of the JCS proof
# configuration followed by the SHA-256 of the JCS document without its proof.)

CRYPTOSUITE = "eddsa-jcs-2022"
ED25519_MULTICODEC = b"\xed\x01"
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58btc_encode(raw: bytes) -> str:
    number = int.from_bytes(raw, "big")
    digits = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(_BASE58[remainder])
    zeros = len(raw) - len(raw.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(digits))


def base58btc_decode(text: str) -> bytes:
    number = 0
    for char in text:
        index = _BASE58.find(char)
        if index < 0:
            raise ValueError(f"{char!r} is not a base58btc digit")
        number = number * 58 + index
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def multikey_of(public_key: Ed25519PublicKey) -> str:
    """The Multikey publicKeyMultibase of an Ed25519 key: "z" + base58btc(0xed01 + the 32 raw bytes)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "z" + base58btc_encode(ED25519_MULTICODEC + raw)


def public_key_of_multikey(multibase: str) -> Ed25519PublicKey:
    if not isinstance(multibase, str) or not multibase.startswith("z"):
        raise ValueError("publicKeyMultibase is not base58btc multibase")
    raw = base58btc_decode(multibase[1:])
    if len(raw) != 34 or raw[:2] != ED25519_MULTICODEC:
        raise ValueError("publicKeyMultibase is not an Ed25519 Multikey")
    return Ed25519PublicKey.from_public_bytes(raw[2:])


def eddsa_jcs_2022_hash_data(unsecured_document: dict[str, Any], proof_options: dict[str, Any]) -> bytes:
    """What eddsa-jcs-2022 signs: SHA-256(JCS(proof configuration)) || SHA-256(JCS(document)).

    The proof configuration is the proof without proofValue, with the document's @context."""
    config = {key: value for key, value in proof_options.items() if key != "proofValue"}
    if "@context" in unsecured_document:
        config["@context"] = unsecured_document["@context"]
    return (
        hashlib.sha256(canonical_text_as(config, JCS).encode("utf-8")).digest()
        + hashlib.sha256(canonical_text_as(unsecured_document, JCS).encode("utf-8")).digest()
    )


def eddsa_jcs_2022_proof_verify(secured_document: dict[str, Any], public_key: Ed25519PublicKey) -> None:
    """Raises ValueError unless `secured_document.proof` is a valid eddsa-jcs-2022 proof by the key."""
    proof = secured_document.get("proof")
    if not isinstance(proof, dict):
        raise ValueError("the credential has no proof (or more than one)")
    if proof.get("type") != "DataIntegrityProof" or proof.get("cryptosuite") != CRYPTOSUITE:
        raise ValueError(f"the proof is not a DataIntegrityProof with the {CRYPTOSUITE} cryptosuite")
    value = proof.get("proofValue")
    if not isinstance(value, str) or not value.startswith("z"):
        raise ValueError("the proofValue is not base58btc multibase")
    signature = base58btc_decode(value[1:])
    if len(signature) != 64:
        raise ValueError("the proofValue is not an Ed25519 signature")
    unsecured = {key: item for key, item in secured_document.items() if key != "proof"}
    options = {key: item for key, item in proof.items() if key != "proofValue"}
    if "@context" in options:
        context = unsecured.get("@context")
        if not isinstance(context, list) or context[: len(options["@context"])] != options["@context"]:
            raise ValueError("the proof's @context does not start the credential's")
        unsecured["@context"] = options["@context"]
    try:
        public_key.verify(signature, eddsa_jcs_2022_hash_data(unsecured, options))
    except InvalidSignature:
        raise ValueError("the proof does not verify: the credential was altered or forged") from None


def _credential_time(credential: dict[str, Any], name: str) -> datetime | None:
    value = credential.get(name)
    if value is None:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{name} has no time zone")
    return moment


def is_credential(document) -> bool:
    return isinstance(document, dict) and "@context" in document and "proof" in document


def verify_credential_with_key_list(
    credential: dict[str, Any], key_list: KeyList, *, now: datetime | None = None
) -> Verdict:
    """Verify a certificate credential: its eddsa-jcs-2022 proof by a listed key of the issuer (not
    compromised, not used after retirement) and its validity window. Its status (suspension,
    revocation) is in the status list its credentialStatus names, published by the authority."""
    types = credential.get("type")
    subject = credential.get("credentialSubject")
    certificate = subject.get("certificate") if isinstance(subject, dict) else None
    serial = str(certificate.get("serial", "")) if isinstance(certificate, dict) else ""
    if not isinstance(types, list) or "VerifiableCredential" not in types:
        return Verdict(False, "the file is not a VerifiableCredential", serial)
    proof = credential.get("proof")
    method = proof.get("verificationMethod") if isinstance(proof, dict) else None
    issuer = credential.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
    if (
        not isinstance(proof, dict)
        or not isinstance(method, str)
        or not isinstance(issuer_id, str)
        or not method.startswith(issuer_id + "#")
    ):
        return Verdict(False, "the proof's verificationMethod is not a key of the issuer", serial)
    if proof.get("proofPurpose") != "assertionMethod":
        return Verdict(False, "the proof's purpose is not assertionMethod", serial)
    key_id = method.split("#", 1)[1]
    listed = key_list.keys.get(key_id)
    if listed is None and key_list.from_pem:
        listed = next(iter(key_list.keys.values()), None)
    if listed is None:
        return Verdict(
            False, f"the credential is signed by key {key_id[:16]}, which is not in the key list", serial
        )
    if listed.status == "compromised":
        return Verdict(False, f"the credential is signed by key {key_id[:16]}, reported compromised", serial)
    try:
        eddsa_jcs_2022_proof_verify(credential, listed.public_key)
        created = _credential_time(proof, "created")
        valid_from = _credential_time(credential, "validFrom")
        valid_until = _credential_time(credential, "validUntil")
    except ValueError as exc:
        return Verdict(False, str(exc), serial)
    if listed.status == "retired" and listed.retired_at is not None:
        if created is None or created > listed.retired_at:
            return Verdict(
                False, f"the credential is signed by key {key_id[:16]} after that key was retired", serial
            )
    moment = now or datetime.now(UTC)
    if valid_from is not None and moment < valid_from:
        return Verdict(False, f"the credential is not valid before {credential['validFrom']}", serial)
    if valid_until is not None and moment > valid_until:
        return Verdict(
            False, f"the proof is valid but the credential expired on {credential['validUntil']}", serial
        )
    return Verdict(
        True,
        f"credential of certificate {serial} is authentic ({CRYPTOSUITE}) and valid until "
        f"{credential.get('validUntil')}; its status is in {_status_lists(credential)}",
        serial,
    )


def _status_lists(credential: dict[str, Any]) -> str:
    entries = credential.get("credentialStatus")
    entries = entries if isinstance(entries, list) else [entries]
    urls = [e.get("statusListCredential") for e in entries if isinstance(e, dict)]
    return ", ".join(str(url) for url in urls if url) or "no status list"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m certification.verify", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "document", help="the certificate document or its verifiable credential (JSON) as downloaded"
    )
    keys = parser.add_mutually_exclusive_group(required=True)
    keys.add_argument(
        "--keys", help="the authority's key list (certification-keys.json), or one public key (PEM)"
    )
    keys.add_argument("--key", help="the same as --keys (kept for existing scripts)")
    args = parser.parse_args(argv)
    try:
        with open(args.keys or args.key, "rb") as handle:
            key_list = load_key_list(handle.read())
        with open(args.document, "rb") as handle:
            raw = handle.read()
    except (OSError, ValueError) as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return 1
    try:
        parsed = strict_loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        parsed = None
    if is_credential(parsed):
        verdict = verify_credential_with_key_list(parsed, key_list)
    else:
        verdict = verify_document_with_key_list(raw, key_list)
    age = key_list_age(key_list)
    if verdict.ok:
        print(f"VALID: {verdict.message}")
        print(age)
        return 0
    print(f"INVALID: {verdict.message}", file=sys.stderr)
    print(age, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
