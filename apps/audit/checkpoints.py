"""Signed checkpoints of the audit chain, kept outside the database.

A checkpoint is {chain length, head hash, time} signed with the authority's active Ed25519 key
(the same keys that sign certificates, apps.certificates.services.keys). Each is a file
<CERT_SIGNING_KEY_DIR>/../audit-checkpoints/<length>-<time>.json, written once and never
changed, and the newest are published at /.well-known/audit-checkpoints.json so that others can
keep copies. One is taken after every certificate issue, after a key compromise (with the new
key) and on a Celery beat schedule (task `audit.checkpoint`). A database writer cannot make a
checkpoint, so `audit_chain_verify` uses them to see a rewritten chain or a truncated tail.

Checkpoints signed by a key reported compromised are ignored (anyone holding it could have made
them); a checkpoint whose signature fails, or whose key the database no longer lists correctly,
fails verification: either the files or the key table were tampered with.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import GENESIS_HASH, ChainVerdict, audit_chain_verify, audit_key_dir
from certification.verify import decode_signature, load_public_key, public_key_id, strict_loads
from runners.canonical import canonical_text

logger = logging.getLogger(__name__)

CHECKPOINT_TYPE = "audit-checkpoint"
DOCUMENT_KEYS = {"checkpoint", "key_id", "signature"}
PUBLISHED = 100
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class AuditChainBroken(RuntimeError):
    """The chain does not verify, so no checkpoint may vouch for it."""

    def __init__(self, verdict: ChainVerdict):
        super().__init__(f"audit chain broken at event #{verdict.broken_sequence}: {verdict.reason}")
        self.verdict = verdict


@dataclass(frozen=True)
class Checkpoint:
    chain_length: int
    head_hash: str
    signed_at: datetime
    key_id: str
    name: str

    @property
    def label(self) -> str:
        return f"the checkpoint of {self.signed_at:%Y-%m-%d %H:%M:%S} UTC ({self.name})"


@dataclass
class LoadedCheckpoints:
    trusted: list[Checkpoint] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def newest(self) -> Checkpoint | None:
        return max(self.trusted, key=lambda c: (c.chain_length, c.signed_at), default=None)


def audit_checkpoint_dir() -> Path:
    return audit_key_dir() / "audit-checkpoints"


def _files_newest_first() -> list[Path]:
    directory = audit_checkpoint_dir()
    if not directory.is_dir():
        return []
    # Names are <12-digit length>-<UTC time>.json, so name order is (length, time) order.
    return sorted(directory.glob("*.json"), reverse=True)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _check(document, name: str, keys: dict) -> tuple[Checkpoint | None, str, str]:
    """(checkpoint, problem, note): a trusted checkpoint, or why the file fails, or why it is ignored."""
    if not isinstance(document, dict) or set(document) != DOCUMENT_KEYS:
        return None, f"checkpoint {name} is not a checkpoint document", ""
    body, key_id = document["checkpoint"], document["key_id"]
    if (
        not isinstance(body, dict)
        or body.get("type") != CHECKPOINT_TYPE
        or body.get("key_id") != key_id
        or not isinstance(body.get("chain_length"), int)
        or body["chain_length"] < 0
        or not isinstance(body.get("head_hash"), str)
        or not _HEX64.match(body["head_hash"])
    ):
        return None, f"checkpoint {name} is malformed", ""
    try:
        signed_at = datetime.fromisoformat(str(body.get("signed_at")).replace("Z", "+00:00"))
    except ValueError:
        return None, f"checkpoint {name} has no readable time", ""
    key = keys.get(key_id)
    if key is None:
        return (
            None,
            f"checkpoint {name} is signed by key {str(key_id)[:16]}, which the key table no longer lists",
            "",
        )
    try:
        public_key = load_public_key(key.public_key_pem)
        if public_key_id(public_key) != key_id:
            return (
                None,
                f"the key table's public key {key_id[:16]} does not match its id (it was altered)",
                "",
            )
        public_key.verify(decode_signature(document["signature"]), canonical_text(body).encode("utf-8"))
    except (ValueError, InvalidSignature):
        return None, f"checkpoint {name} has an invalid signature (forged or altered)", ""
    if key.status == "compromised":
        return None, "", f"checkpoint {name} ignored: signed by key {key_id[:16]}, reported compromised"
    return Checkpoint(body["chain_length"], body["head_hash"], signed_at, key_id, name), "", ""


def checkpoints_load(*, newest_only: bool = False) -> LoadedCheckpoints:
    """Every checkpoint file, checked; `newest_only` stops at the newest trusted one."""
    from apps.certificates.models import SigningKey

    keys = {key.key_id: key for key in SigningKey.objects.all()}
    loaded = LoadedCheckpoints()
    for path in _files_newest_first():
        try:
            document = strict_loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            loaded.problems.append(f"checkpoint {path.name} is not readable JSON")
            continue
        checkpoint, problem, note = _check(document, path.name, keys)
        if problem:
            loaded.problems.append(problem)
        if note:
            loaded.notes.append(note)
        if checkpoint is not None:
            loaded.trusted.append(checkpoint)
            if newest_only:
                break
    return loaded


def audit_checkpoint_take(*, skip_unchanged: bool = False) -> Checkpoint:
    """Verify the chain since the newest checkpoint, then sign its head with the active key.

    Refuses (AuditChainBroken) when the chain does not verify: a checkpoint must never vouch for a
    tampered chain. `skip_unchanged` (the schedule) returns the newest checkpoint when the chain
    has not moved and the active key already signed it.
    """
    from apps.certificates.services.keys import signing_key_active, signing_private_key

    key = signing_key_active()  # first: making the first key is itself an event the checkpoint covers
    last = AuditEvent.objects.order_by("-sequence").first()
    verdict = audit_chain_verify(since_newest_checkpoint=True)
    if not verdict.ok:
        raise AuditChainBroken(verdict)
    length, head = (last.sequence, last.hash) if last is not None else (0, GENESIS_HASH)
    newest = checkpoints_load(newest_only=True).newest
    if (
        skip_unchanged
        and newest is not None
        and newest.chain_length == length
        and newest.head_hash == head
        and newest.key_id == key.key_id
    ):
        return newest
    signed_at = timezone.now().astimezone(UTC)
    body = {
        "type": CHECKPOINT_TYPE,
        "chain_length": length,
        "head_hash": head,
        "signed_at": _iso(signed_at),
        "key_id": key.key_id,
        "issuer": settings.CERT_ISSUER_NAME or "",
    }
    signature = base64.b64encode(signing_private_key(key).sign(canonical_text(body).encode("utf-8"))).decode()
    document = {"checkpoint": body, "key_id": key.key_id, "signature": signature}
    name = f"{length:012d}-{signed_at:%Y%m%dT%H%M%S%fZ}.json"
    directory = audit_checkpoint_dir()
    directory.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(canonical_text(document) + "\n")
    return Checkpoint(length, head, signed_at, key.key_id, name)


def audit_checkpoint_after_commit(reason: str) -> None:
    """Take a checkpoint once the current transaction commits; a failure is logged, never raised,
    because what committed (a certificate) stands, and `audit_verify` will name the break."""

    def take() -> None:
        try:
            audit_checkpoint_take()
        except Exception:
            logger.exception("audit checkpoint after %s not taken", reason)

    transaction.on_commit(take)


def checkpoints_published(*, limit: int = PUBLISHED) -> list[dict]:
    """The newest checkpoint documents as written (newest first), for the public list."""
    documents = []
    for path in _files_newest_first()[:limit]:
        try:
            documents.append(strict_loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
    return documents
