"""Appending to the audit log and verifying its chain."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from apps.audit.models import AuditEvent, AuditHead

GENESIS_HASH = "0" * 64


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder, ensure_ascii=False)


def event_hash(*, sequence: int, occurred_at: str, actor_label: str, action: str, object_type: str,
               object_id: str, payload: dict, previous_hash: str) -> str:
    body = _canonical(
        {
            "sequence": sequence, "occurred_at": occurred_at, "actor": actor_label, "action": action,
            "object_type": object_type, "object_id": object_id, "payload": payload, "previous": previous_hash,
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()


def audit_record(*, action: str, obj: models.Model | None = None, actor=None, actor_label: str = "",
                 payload: dict | None = None, object_type: str = "", object_id: str = "") -> AuditEvent:
    """Append one event. Call it inside the transaction of the change it records."""
    payload = json.loads(_canonical(payload or {}))
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
    label = actor_label or (actor.get_username() if actor is not None and actor.is_authenticated else "system")
    with transaction.atomic():
        head, _ = AuditHead.objects.get_or_create(id=1)
        head = AuditHead.objects.select_for_update().get(id=1)
        sequence = head.sequence + 1
        occurred_at = timezone.now()
        digest = event_hash(
            sequence=sequence, occurred_at=occurred_at.isoformat(), actor_label=label, action=action,
            object_type=object_type, object_id=object_id, payload=payload, previous_hash=head.hash,
        )
        event = AuditEvent(
            sequence=sequence, occurred_at=occurred_at, actor=actor if actor is not None and actor.is_authenticated else None,
            actor_label=label, action=action, object_type=object_type, object_id=object_id, payload=payload,
            previous_hash=head.hash, hash=digest,
        )
        event.save()
        AuditHead.objects.filter(id=1).update(sequence=sequence, hash=digest)
    return event


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    checked: int
    broken_sequence: int | None = None
    reason: str = ""


def audit_chain_verify() -> ChainVerdict:
    """Recompute every event's hash in order; name the first broken link."""
    previous = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    for event in AuditEvent.objects.order_by("sequence").iterator(chunk_size=2000):
        if event.sequence != expected_sequence:
            return ChainVerdict(False, checked, expected_sequence, f"event #{expected_sequence} is missing")
        if event.previous_hash != previous:
            return ChainVerdict(False, checked, event.sequence, "its previous-hash does not match the event before")
        recomputed = event_hash(
            sequence=event.sequence, occurred_at=event.occurred_at.isoformat(), actor_label=event.actor_label,
            action=event.action, object_type=event.object_type, object_id=event.object_id,
            payload=event.payload, previous_hash=event.previous_hash,
        )
        if recomputed != event.hash:
            return ChainVerdict(False, checked, event.sequence, "its content was changed after it was written")
        previous = event.hash
        expected_sequence += 1
        checked += 1
    head = AuditHead.objects.filter(id=1).first()
    if head is not None and head.sequence != checked:
        return ChainVerdict(False, checked, checked + 1, "events at the end of the chain were deleted")
    return ChainVerdict(True, checked)
