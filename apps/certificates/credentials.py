"""Certificates as W3C Verifiable Credentials 2.0, the authority's did:web document and its Bitstring
Status Lists.

- The credential wraps the signed certificate payload (`credentialSubject.certificate`) with the
  issuer `did:web:<host>` (resolving to /.well-known/did.json, which lists the authority's keys as
  Multikeys), `validFrom`/`validUntil`, and two `credentialStatus` entries (revocation, suspension)
  pointing into the status lists; it is secured by a Data Integrity proof with the eddsa-jcs-2022
  cryptosuite, made by the key that signed the certificate, `created` at the time it signed it. The
  same certificate therefore always yields the same credential bytes (Ed25519 is deterministic).
- Each status list is a BitstringStatusListCredential made on request from the certificates' current
  statuses, so a suspension, reinstatement or revocation shows at once. A certificate's index in the
  lists is its primary key. Revoked and superseded certificates have their revocation bit set;
  suspended ones their suspension bit; an expired one is out of its validUntil.
- The host comes from CERT_PUBLIC_URL (the platform's public https URL); without it, from the
  request, which suits the embedded set-up only (the issuer id then depends on the host name used).
"""

from __future__ import annotations

import base64
import gzip
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from rest_framework.request import Request

from apps.certificates.models import Certificate, CertificateStatus, SigningKey, SigningKeyStatus
from apps.certificates.payload import iso
from apps.certificates.services.keys import signing_key_active, signing_private_key
from certification.verify import (
    CRYPTOSUITE,
    base58btc_encode,
    canonicalization_of,
    eddsa_jcs_2022_hash_data,
    load_public_key,
    multikey_of,
    strict_loads,
)
from runners.canonical import canonical_text_as

VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
DID_CONTEXTS = ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"]
STATUS_PURPOSES = ("revocation", "suspension")
STATUS_LIST_MIN_BITS = 131_072  # 16 KiB, the spec's minimum (group privacy)
CREDENTIAL_MEDIA_TYPE = "application/vc"


def public_base_url(request: HttpRequest | Request | None = None) -> str:
    """The platform's public URL without a trailing slash: CERT_PUBLIC_URL, else the request's."""
    configured = (settings.CERT_PUBLIC_URL or "").rstrip("/")
    if configured:
        return configured
    if request is None:
        raise ImproperlyConfigured("CERT_PUBLIC_URL is not set and there is no request to take it from")
    return request.build_absolute_uri("/").rstrip("/")


def issuer_did(base_url: str) -> str:
    """did:web of the platform: the host (a port's colon percent-encoded), then path segments."""
    parts = urlsplit(base_url)
    segments = [quote(parts.netloc, safe="")] + [quote(p, safe="") for p in parts.path.split("/") if p]
    return "did:web:" + ":".join(segments)


def verification_method(base_url: str, key: SigningKey) -> str:
    return f"{issuer_did(base_url)}#{key.key_id}"


def did_document(*, base_url: str) -> dict[str, Any]:
    """/.well-known/did.json: every key that may have made a credential still trusted (active and
    retired); a compromised key is left out, so nothing it signed resolves."""
    did = issuer_did(base_url)
    keys = SigningKey.objects.exclude(status=SigningKeyStatus.COMPROMISED).order_by("created_at", "pk")
    methods = [
        {
            "id": f"{did}#{key.key_id}",
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": multikey_of(load_public_key(key.public_key_pem)),
        }
        for key in keys
    ]
    return {
        "@context": DID_CONTEXTS,
        "id": did,
        "verificationMethod": methods,
        "assertionMethod": [method["id"] for method in methods],
    }


def _prove(document: dict[str, Any], *, key: SigningKey, base_url: str, created: datetime) -> dict[str, Any]:
    """`document` with an eddsa-jcs-2022 DataIntegrityProof by `key`."""
    options = {
        "type": "DataIntegrityProof",
        "cryptosuite": CRYPTOSUITE,
        "created": iso(created),
        "verificationMethod": verification_method(base_url, key),
        "proofPurpose": "assertionMethod",
    }
    signature = signing_private_key(key).sign(eddsa_jcs_2022_hash_data(document, options))
    return {**document, "proof": {**options, "proofValue": "z" + base58btc_encode(signature)}}


def _signer(certificate: Certificate, signed_at: datetime) -> tuple[SigningKey, datetime]:
    """The key that signed the certificate, at that time; the active key now when that one can no
    longer sign (compromised, or its private file gone)."""
    key = certificate.signing_key
    if key.status != SigningKeyStatus.COMPROMISED:
        try:
            signing_private_key(key)
            return key, signed_at
        except ImproperlyConfigured:
            pass
    return signing_key_active(), timezone.now().replace(microsecond=0)


def status_list_url(base_url: str, purpose: str) -> str:
    return base_url + reverse("credential-status-list", kwargs={"purpose": purpose})


def certificate_credential(*, certificate: Certificate, base_url: str) -> dict[str, Any]:
    """The certificate as a Verifiable Credential 2.0 with an eddsa-jcs-2022 proof."""
    payload = strict_loads(certificate.payload_json)
    resigned = payload.get("resigned")
    signed_at = (
        datetime.fromisoformat(str(resigned["at"]).replace("Z", "+00:00"))
        if isinstance(resigned, dict)
        else certificate.issued_at
    )
    key, created = _signer(certificate, signed_at)
    subject = payload.get("subject") or {}
    chip, target = subject.get("chip") or {}, subject.get("target") or {}
    program = payload.get("program") or {}
    credential = {
        "@context": [VC_CONTEXT],
        "id": base_url + reverse("certificate-credential", kwargs={"serial": certificate.serial}),
        "type": ["VerifiableCredential", "AcceleratorCertificateCredential"],
        "issuer": {"id": issuer_did(base_url), "name": (payload.get("issuer") or {}).get("name") or ""},
        "name": f"{program.get('code', certificate.program.code)} {program.get('version', '')} "
        f"{certificate.level} certificate {certificate.serial}",
        # The certificate's own validity, as signed in it (the columns are copies of the signed values).
        "validFrom": iso(certificate.issued_at),
        "validUntil": iso(certificate.valid_until),
        "credentialSubject": {
            "type": "CertifiedAccelerator",
            "chip": f"{chip.get('sku')} {chip.get('name')}",
            "target": target.get("slug"),
            "backend": target.get("backend"),
            # The signed certificate itself, with what it was signed as: its own signature still holds.
            "certificate": payload,
            "certificateSignature": {
                "keyId": certificate.signing_key.key_id,
                "signature": certificate.signature,
                "canonicalization": canonicalization_of(payload),
                "sha256": certificate.payload_sha256,
            },
        },
        "credentialStatus": [
            {
                "id": f"{status_list_url(base_url, purpose)}#{certificate.pk}",
                "type": "BitstringStatusListEntry",
                "statusPurpose": purpose,
                "statusListIndex": str(certificate.pk),
                "statusListCredential": status_list_url(base_url, purpose),
            }
            for purpose in STATUS_PURPOSES
        ],
    }
    return _prove(credential, key=key, base_url=base_url, created=created)


def credential_text(credential: dict[str, Any]) -> str:
    """The credential as served: its RFC 8785 form (any JSON form of it verifies the same)."""
    return canonical_text_as(credential, "RFC8785")


def _flagged(purpose: str) -> list[int]:
    statuses = (
        [CertificateStatus.REVOKED, CertificateStatus.SUPERSEDED]
        if purpose == "revocation"
        else [CertificateStatus.SUSPENDED]
    )
    return list(Certificate.objects.filter(status__in=statuses).values_list("pk", flat=True))


def encoded_list(indices: list[int], *, size: int) -> str:
    """Multibase base64url (no padding) of the GZIP of the bitstring; bit 0 is the first byte's
    highest bit, as the Bitstring Status List spec numbers them."""
    bits = bytearray(size // 8)
    for index in indices:
        bits[index // 8] |= 0x80 >> (index % 8)
    # mtime=0: the same statuses give the same bytes.
    compressed = gzip.compress(bytes(bits), mtime=0)
    return "u" + base64.urlsafe_b64encode(compressed).decode("ascii").rstrip("=")


def status_list_credential(*, purpose: str, base_url: str) -> dict[str, Any]:
    """The BitstringStatusListCredential of `purpose`, as of now, signed by the active key."""
    if purpose not in STATUS_PURPOSES:
        raise ValueError(f"unknown status purpose {purpose!r}")
    highest = Certificate.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    size = max(STATUS_LIST_MIN_BITS, -(-(highest + 1) // STATUS_LIST_MIN_BITS) * STATUS_LIST_MIN_BITS)
    now = timezone.now().astimezone(UTC).replace(microsecond=0)
    url = status_list_url(base_url, purpose)
    credential = {
        "@context": [VC_CONTEXT],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer_did(base_url),
        "validFrom": iso(now),
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": purpose,
            "encodedList": encoded_list(_flagged(purpose), size=size),
        },
    }
    return _prove(credential, key=signing_key_active(), base_url=base_url, created=now)
