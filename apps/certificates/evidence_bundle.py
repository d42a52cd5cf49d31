"""A certificate's evidence as one archive (issue 17, item 4), for programs that make evidence
public (`"evidence_public": true` in the program's definition; off unless the program says so).

The zip holds the signed certificate document, the authority's public keys, every result document
the certificate cites by sha256 (each checked against that digest as it is read) with its runner's
signature and key id, and a MANIFEST.json with the sha256 of every file. Anyone can then re-check
the certificate's signature and each document's digest offline.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any

from django.utils import timezone

from apps.certificates.models import Certificate, SigningKey
from apps.certificates.services import certificate_document
from apps.runs.models import ResultDocument


class EvidenceNotPublic(LookupError):
    """The certificate's program does not publish its evidence."""


class EvidenceAltered(RuntimeError):
    """A stored result document no longer matches the digest the certificate signed."""


def evidence_is_public(certificate: Certificate) -> bool:
    return bool((certificate.program.definition or {}).get("evidence_public", False))


def _keys_document() -> dict[str, Any]:
    return {
        "published_at": timezone.now().isoformat(),
        "keys": [
            {
                "key_id": key.key_id,
                "algorithm": key.algorithm,
                "public_key": key.public_key_pem,
                "status": key.status,
                "created_at": key.created_at.isoformat(),
                "retired_at": key.retired_at.isoformat() if key.retired_at else None,
                "compromised_at": key.compromised_at.isoformat() if key.compromised_at else None,
            }
            for key in SigningKey.objects.order_by("created_at")
        ],
    }


def certificate_evidence_bundle(*, certificate: Certificate) -> bytes:
    """The zip's bytes; EvidenceNotPublic when the program keeps evidence private."""
    if not evidence_is_public(certificate):
        raise EvidenceNotPublic(certificate.serial)
    payload = json.loads(certificate.payload_json)
    cited = {entry["sha256"]: entry for entry in payload.get("evidence", [])}
    documents = {d.sha256: d for d in ResultDocument.objects.filter(sha256__in=list(cited))}
    files: dict[str, bytes] = {
        f"certificate/{certificate.serial}.json": certificate_document(certificate=certificate).encode(),
        "certificate/certification-keys.json": json.dumps(_keys_document(), indent=2).encode(),
    }
    runners = []
    for sha256, entry in sorted(cited.items(), key=lambda item: (item[1].get("job", 0), item[0])):
        document = documents.get(sha256)
        if document is None or not document.content.storage.exists(document.content.name or ""):
            continue  # cited but no longer held here: the manifest lists it as missing
        with document.content.open("rb") as handle:
            content = handle.read()
        if hashlib.sha256(content).hexdigest() != sha256:
            raise EvidenceAltered(f"result document of job {entry.get('job')} does not match {sha256}")
        name = f"results/job-{entry.get('job')}-{entry.get('suite')}"
        files[f"{name}.json"] = content
        files[f"{name}.sig"] = document.signature.encode()
        runners.append({"file": f"{name}.json", "sha256": sha256, "key_id": document.key_id})
    manifest = {
        "certificate": certificate.serial,
        "payload_sha256": certificate.payload_sha256,
        "result_documents": runners,
        "missing": sorted(set(cited) - {entry["sha256"] for entry in runners}),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
        archive.writestr("MANIFEST.json", json.dumps(manifest, indent=2))
    return buffer.getvalue()
