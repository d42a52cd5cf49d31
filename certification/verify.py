"""Offline verification of a certificate document; needs only the Python standard library and `cryptography`.

    python -m certification.verify cert.json --key public.pem
    python verify.py cert.json --key public.pem          (this file copied on its own)

The document is what GET /api/v1/certificates/{serial}/document/ returns:
{"certificate": <payload>, "key_id": <hex>, "signature": <base64>}, in canonical JSON (sorted keys,
no whitespace, UTF-8). The check is strict on purpose, so that every changed byte is caught:
the file must be exactly the canonical form of what it parses to, the signature exactly
canonical base64, the key id that of the given public key, and the Ed25519 signature valid over
the canonical bytes of the payload. Exit status 0 when the certificate is authentic and within
its validity, 1 otherwise (the message says why). Revocation and suspension are only known to
the authority: ask /api/v1/certificates/{serial}/verify/ for the current status.

Nothing here imports Django; the platform uses the same functions to sign and verify.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DOCUMENT_KEYS = {"certificate", "key_id", "signature"}


def canonical_json(value) -> str:
    """Sorted keys, no whitespace, non-ASCII kept, no NaN: the text that is signed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


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
    if canonical_json(payload) != payload_text:
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
    canonical = canonical_json(document)
    if text not in (canonical, canonical + "\n"):
        return Verdict(False, "the file is not in canonical form (it was altered)")
    if not isinstance(document["certificate"], dict):
        return Verdict(False, "the certificate is not a JSON object")
    if document["key_id"] != public_key_id(public_key):
        return Verdict(False, "the document was signed with a different key than the one given")
    verdict = verify_payload_text(canonical_json(document["certificate"]), document["signature"], public_key)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m certification.verify", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("document", help="the certificate document (JSON) as downloaded")
    parser.add_argument("--key", required=True, help="the authority's Ed25519 public key (PEM)")
    args = parser.parse_args(argv)
    try:
        with open(args.key, "rb") as handle:
            public_key = load_public_key(handle.read())
        with open(args.document, "rb") as handle:
            raw = handle.read()
    except (OSError, ValueError) as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return 1
    verdict = verify_document_bytes(raw, public_key)
    if verdict.ok:
        print(f"VALID: {verdict.message}")
        return 0
    print(f"INVALID: {verdict.message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
