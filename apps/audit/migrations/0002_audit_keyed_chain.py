"""The audit chain becomes keyed, with the actor id in the hash (hash version 2).

Existing events were hashed with version 1 (unkeyed sha256, no actor id). This migration first
checks the whole version-1 chain and stops, naming the event, if it is already broken (a broken
chain must be looked into, not blessed by a new formula); then it recomputes every event's hash
with version 2 in order, under the chain key file (made here when missing). The formulas are
copied here so that later changes to apps.audit.services do not change what this migration did.
Reversing recomputes version 1.
"""

import hashlib
import hmac

import django.db.models.deletion
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import migrations, models

from runners.canonical import legacy_canonical_text

GENESIS = "0" * 64


def _canonical(value) -> str:
    # The form version 1 and 2 hashes were made with, frozen here (runners.canonical keeps it).
    return legacy_canonical_text(value, encoder=DjangoJSONEncoder, allow_nan=True)


def _body(event, previous: str, version: int) -> str:
    body = {
        "sequence": event.sequence,
        "occurred_at": event.occurred_at.isoformat(),
        "actor": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "payload": event.payload,
        "previous": previous,
    }
    if version == 2:
        body.update({"v": 2, "actor_id": event.actor_id})
    return _canonical(body)


def _v1(event, previous: str) -> str:
    return hashlib.sha256(_body(event, previous, 1).encode()).hexdigest()


def _v2(event, previous: str, key: bytes) -> str:
    return hmac.new(key, _body(event, previous, 2).encode(), hashlib.sha256).hexdigest()


def _rehash(apps, *, to_version: int) -> None:
    AuditEvent = apps.get_model("audit", "AuditEvent")
    AuditHead = apps.get_model("audit", "AuditHead")
    events = list(AuditEvent.objects.order_by("sequence"))
    if not events:
        return
    from apps.audit.services import audit_chain_key

    key = audit_chain_key()
    previous = GENESIS
    for expected, event in enumerate(events, start=1):
        stored = _v1(event, event.previous_hash) if to_version == 2 else _v2(event, event.previous_hash, key)
        if event.sequence != expected or event.previous_hash != previous or stored != event.hash:
            raise RuntimeError(
                f"The audit chain is already broken at event #{expected}; run `manage.py audit_verify` "
                "on the previous release and investigate before migrating."
            )
        previous = event.hash
    previous = GENESIS
    for event in events:
        event.previous_hash = previous
        event.hash = _v2(event, previous, key) if to_version == 2 else _v1(event, previous)
        event.hash_version = to_version
        previous = event.hash
    AuditEvent.objects.bulk_update(events, ["previous_hash", "hash", "hash_version"], batch_size=500)
    AuditHead.objects.update_or_create(id=1, defaults={"sequence": events[-1].sequence, "hash": previous})


def forward(apps, schema_editor):
    _rehash(apps, to_version=2)


def backward(apps, schema_editor):
    _rehash(apps, to_version=1)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="hash_version",
            field=models.PositiveSmallIntegerField(default=1, help_text="Which formula made `hash`"),
        ),
        migrations.RunPython(forward, backward),
        migrations.AlterField(
            model_name="auditevent",
            name="hash_version",
            field=models.PositiveSmallIntegerField(default=2, help_text="Which formula made `hash`"),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
