"""Appending to the audit log and verifying its chain.

Each event's hash is an HMAC-SHA256, under a key kept in a file outside the database, of the
canonical JSON of the event (its hash version, sequence, time, actor id and label, action, object,
payload) and the hash of the event before it. A database writer without the key file can neither
edit an event nor forge a new one without breaking its hash. Someone who also holds the key file
could rewrite the chain consistently, so the chain head is also signed into checkpoints with the
authority's Ed25519 key (apps.audit.checkpoints); `audit_chain_verify` compares the chain with every
trusted checkpoint and names a rewrite (a hash differs at a checkpoint's position) or a truncated
tail (the chain is shorter than the newest checkpoint).

Hash versions: 1 was an unkeyed sha256 without the actor id (before migration
0002_audit_keyed_chain, which checked every version-1 event and re-hashed the chain as version 2).
Version 2 hashes Python's sorted compact JSON of the event (the legacy form of runners.canonical);
version 3, written since, hashes its RFC 8785 (JCS) form. Both verify; the verifier refuses a lower
version after a higher one, so nobody can downgrade an event to an older formula.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.audit.models import AuditEvent, AuditHead
from certification.secret_files import secret_file
from runners.canonical import canonical_text, legacy_canonical_text

GENESIS_HASH = "0" * 64
HASH_VERSION = 3
HASH_VERSIONS = (2, 3)
KEY_BYTES = 32
_keys: dict[str, bytes] = {}
logger = logging.getLogger(__name__)


def _json_value(value: Any) -> Any:
    """Plain JSON types (datetimes, decimals and UUIDs as Django's encoder writes them): what is stored."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _event_text(body: dict[str, Any], version: int) -> str:
    if version == 3:
        return canonical_text(_json_value(body))
    return legacy_canonical_text(body, encoder=DjangoJSONEncoder, allow_nan=True)  # version 2


def audit_key_dir() -> Path:
    """Beside the signing keys (<CERT_SIGNING_KEY_DIR>/..): the chain key file and the checkpoints."""
    return Path(settings.CERT_SIGNING_KEY_DIR).parent


def audit_chain_key_path() -> Path:
    return audit_key_dir() / "audit-chain.key"


def audit_chain_key() -> bytes:
    """The chain's HMAC key: 32 random bytes in a 0600 file, made on first use (atomically, once)."""
    path = audit_chain_key_path()
    cached = _keys.get(str(path))
    if cached is not None:
        return cached
    key = secret_file(path, lambda: secrets.token_bytes(KEY_BYTES))
    if len(key) != KEY_BYTES:
        raise ImproperlyConfigured(f"{path} does not hold a {KEY_BYTES}-byte audit chain key.")
    _keys[str(path)] = key
    return key


def event_hash(
    *,
    version: int = HASH_VERSION,
    sequence: int,
    occurred_at: str,
    actor_id: int | None,
    actor_label: str,
    action: str,
    object_type: str,
    object_id: str,
    payload: dict[str, Any],
    previous_hash: str,
    key: bytes | None = None,
) -> str:
    """The keyed hash of one event (version 3, or 2 to verify older events); `key` defaults to the
    chain key file."""
    if version not in HASH_VERSIONS:
        raise ValueError(f"unknown audit hash version {version}")
    body = _event_text(
        {
            "v": version,
            "sequence": sequence,
            "occurred_at": occurred_at,
            "actor_id": actor_id,
            "actor": actor_label,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "payload": payload,
            "previous": previous_hash,
        },
        version,
    )
    return hmac.new(key if key is not None else audit_chain_key(), body.encode(), hashlib.sha256).hexdigest()


def _stored_hash(event: AuditEvent, key: bytes) -> str:
    return event_hash(
        version=event.hash_version,
        sequence=event.sequence,
        occurred_at=event.occurred_at.isoformat(),
        actor_id=event.actor_id,
        actor_label=event.actor_label,
        action=event.action,
        object_type=event.object_type,
        object_id=event.object_id,
        payload=event.payload,
        previous_hash=event.previous_hash,
        key=key,
    )


@dataclass(frozen=True)
class AuditEntry:
    """One event to append (the arguments of `audit_record`), for `audit_record_many`."""

    action: str
    obj: models.Model | None = None
    actor: Any = None
    actor_label: str = ""
    payload: dict[str, Any] | None = None
    object_type: str = ""
    object_id: str = ""


def audit_record(
    *,
    action: str,
    obj: models.Model | None = None,
    actor=None,
    actor_label: str = "",
    payload: dict[str, Any] | None = None,
    object_type: str = "",
    object_id: str = "",
) -> AuditEvent:
    """Append one event. Call it inside the transaction of the change it records."""
    entry = AuditEntry(action, obj, actor, actor_label, payload, object_type, object_id)
    return audit_record_many(entries=[entry])[0]


def audit_record_many(*, entries: list[AuditEntry]) -> list[AuditEvent]:
    """Append several events of one change, in order, each chained to the one before exactly as
    `audit_record` chains them one by one (the verifier cannot tell the difference): the chain head is
    locked and moved once and the events are inserted together. Call it inside the transaction of the
    change they record."""
    if not entries:
        return []
    key = audit_chain_key()
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        events = _append_in_one_statement(entries, key=key, connection=connection)
        if events is not None:
            for event in events:
                _offer_to_listeners(event)
            return events
    # No savepoint of its own: an event that cannot be appended must undo the change it records, so the
    # caller's transaction fails with it (outside one, this block is the transaction).
    with transaction.atomic(savepoint=False):
        head = AuditHead.objects.select_for_update().filter(id=1).first()
        if head is None:  # the first event ever
            AuditHead.objects.get_or_create(id=1)
            head = AuditHead.objects.select_for_update().get(id=1)
        sequence, previous = head.sequence, head.hash
        events = []
        for entry in entries:
            event = _chained_event(entry, sequence=sequence + 1, previous_hash=previous, key=key)
            events.append(event)
            sequence, previous = event.sequence, event.hash
        AuditEvent.objects.bulk_create(events)
        AuditHead.objects.filter(id=1).update(sequence=sequence, hash=previous)
    _heads_seen[connection.alias] = (sequence, previous)
    for event in events:
        _offer_to_listeners(event)
    return events


# The chain head this process last moved or read, per database: a guess that `_append_in_one_statement`
# checks against the locked head row, never trusted on its own.
_heads_seen: dict[str, tuple[int, str]] = {}
_EVENT_COLUMNS = (
    "sequence",
    "occurred_at",
    "actor_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "payload",
    "previous_hash",
    "hash",
    "hash_version",
)


def _append_in_one_statement(
    entries: list[AuditEntry], *, key: bytes, connection: BaseDatabaseWrapper
) -> list[AuditEvent] | None:
    """PostgreSQL: append the events in one statement that locks the chain head, checks it is the head
    the events were chained to, inserts them and moves the head (the three statements of the portable
    path, in one round trip; issue 13). The events are chained to the head this process last saw; when
    another writer has moved it since, the statement inserts nothing, returns the head it locked (the
    lock is held to the end of the transaction, so nobody moves it meanwhile) and the events are chained
    again to that head and appended by the same statement (two statements). None without a head row
    (the chain's first event: the portable path creates it)."""
    guess = _heads_seen.get(connection.alias)
    if guess is None:
        with connection.cursor() as cursor:  # a process's first event: read the head (not locked)
            # The table's name is the model's own; nothing of any input is in the text.
            cursor.execute(f"SELECT sequence, hash FROM {AuditHead._meta.db_table} WHERE id = 1")  # noqa: S608
            row = cursor.fetchone()
        if row is None:
            return None
        guess = (int(row[0]), str(row[1]))
    with transaction.atomic(savepoint=False):  # the lock is held until the caller's transaction ends
        for _ in range(2):
            events, head = _try_append(entries, head=guess, key=key, connection=connection)
            if head is None:
                return None
            if events:
                _heads_seen[connection.alias] = (events[-1].sequence, events[-1].hash)
                return events
            guess = head  # locked by the statement: the second try matches it
    raise RuntimeError("the audit chain head moved while this transaction held its lock")


def _cast_type(field: models.Field[Any, Any], connection: BaseDatabaseWrapper) -> str:
    """The column's type, for a cast."""
    if isinstance(field, models.ForeignKey):
        field = field.target_field
    return str(field.db_type(connection))


def _try_append(
    entries: list[AuditEntry], *, head: tuple[int, str], key: bytes, connection: BaseDatabaseWrapper
) -> tuple[list[AuditEvent], tuple[int, str] | None]:
    """One statement: the events chained to `head`, inserted (and the head moved) only if the locked head
    row is `head`. Returns the events inserted (none when the head differs) and the head row as locked
    (None when there is no head row)."""
    sequence, previous = head
    events = []
    for entry in entries:
        event = _chained_event(entry, sequence=sequence + 1, previous_hash=previous, key=key)
        events.append(event)
        sequence, previous = event.sequence, event.hash
    # Each value cast to its column's type (a NULL actor would otherwise be text in VALUES).
    fields = {f.column: f for f in AuditEvent._meta.concrete_fields}
    row = "(" + ", ".join(f"%s::{_cast_type(fields[c], connection)}" for c in _EVENT_COLUMNS) + ")"
    columns = ", ".join(_EVENT_COLUMNS)
    head_table, event_table = AuditHead._meta.db_table, AuditEvent._meta.db_table
    # Table and column names are the models' own; every value is a parameter.
    sql = (
        f"WITH head AS (SELECT sequence, hash FROM {head_table} WHERE id = 1 FOR UPDATE), "  # noqa: S608
        f"inserted AS (INSERT INTO {event_table} ({columns}) "
        f"SELECT v.* FROM (VALUES {', '.join([row] * len(events))}) AS v ({columns}) "
        "WHERE EXISTS (SELECT 1 FROM head WHERE head.sequence = %s AND head.hash = %s) "
        "RETURNING id, sequence), "
        f"moved AS (UPDATE {head_table} SET sequence = %s, hash = %s "
        "WHERE id = 1 AND EXISTS (SELECT 1 FROM inserted)) "
        "SELECT head.sequence, head.hash, "
        "(SELECT array_agg(inserted.id ORDER BY inserted.sequence) FROM inserted) FROM head"
    )
    params: list[Any] = []
    for event in events:
        params += [
            event.sequence,
            event.occurred_at,
            event.actor_id,
            event.actor_label,
            event.action,
            event.object_type,
            event.object_id,
            json.dumps(event.payload),
            event.previous_hash,
            event.hash,
            event.hash_version,
        ]
    params += [head[0], head[1], sequence, previous]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchone()
    if found is None:
        return [], None
    ids = found[2] or []
    if not ids:
        return [], (int(found[0]), str(found[1]))
    for event, pk in zip(events, ids, strict=True):
        event.pk = pk
        event._state.adding = False
        event._state.db = connection.alias
    return events, head


def _chained_event(entry: AuditEntry, *, sequence: int, previous_hash: str, key: bytes) -> AuditEvent:
    payload = _json_value(entry.payload or {})
    object_type, object_id = entry.object_type, entry.object_id
    if entry.obj is not None:
        object_type = object_type or entry.obj._meta.label_lower
        object_id = object_id or str(entry.obj.pk)
    actor = entry.actor
    user = actor if actor is not None and actor.is_authenticated else None
    label = entry.actor_label or (user.get_username() if user is not None else "system")
    occurred_at = timezone.now()
    digest = event_hash(
        sequence=sequence,
        occurred_at=occurred_at.isoformat(),
        actor_id=user.pk if user else None,
        actor_label=label,
        action=entry.action,
        object_type=object_type,
        object_id=object_id,
        payload=payload,
        previous_hash=previous_hash,
        key=key,
    )
    return AuditEvent(
        sequence=sequence,
        occurred_at=occurred_at,
        actor=user,
        actor_label=label,
        action=entry.action,
        object_type=object_type,
        object_id=object_id,
        payload=payload,
        previous_hash=previous_hash,
        hash=digest,
        hash_version=HASH_VERSION,
    )


def _offer_to_listeners(event: AuditEvent) -> None:
    """Offer the event to settings.AUDIT_LISTENERS (notifications) inside the caller's transaction, so
    what they record commits with the change. A listener's failure is logged and rolled back to its
    savepoint: it never undoes the change the event records. A listener with an `actions` attribute
    hears only those actions (no savepoint is opened for the others, which are most events)."""
    for path in getattr(settings, "AUDIT_LISTENERS", ()):
        try:
            listener = import_string(path)
            actions = getattr(listener, "actions", None)
            if actions is not None and event.action not in actions:
                continue
            with transaction.atomic():
                listener(event)
        except Exception:
            logger.exception("audit listener %s failed on event %s (%s)", path, event.sequence, event.action)


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    checked: int
    broken_sequence: int | None = None
    reason: str = ""
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Anchor:
    """A position of the chain that a signed checkpoint vouches for."""

    sequence: int
    hash: str
    label: str


def _walk(*, start_sequence: int, start_hash: str, anchors: dict[int, Anchor]) -> ChainVerdict:
    """Recompute every event after `start_sequence` in order; name the first broken link."""
    key = audit_chain_key()
    previous, expected, checked = start_hash, start_sequence + 1, start_sequence
    matched: Anchor | None = None
    version = 0
    events = AuditEvent.objects.filter(sequence__gt=start_sequence).order_by("sequence")
    for event in events.iterator(chunk_size=2000):
        if event.sequence != expected:
            return ChainVerdict(False, checked, expected, f"event #{expected} is missing")
        if event.previous_hash != previous:
            return ChainVerdict(
                False, checked, event.sequence, "its previous-hash does not match the event before"
            )
        if event.hash_version < version:
            return ChainVerdict(
                False,
                checked,
                event.sequence,
                f"its hash version {event.hash_version} is older than the events before it",
            )
        version = event.hash_version
        try:
            recomputed = _stored_hash(event, key)
        except ValueError as exc:
            return ChainVerdict(False, checked, event.sequence, str(exc))
        if not hmac.compare_digest(recomputed, event.hash):
            return ChainVerdict(
                False,
                checked,
                event.sequence,
                "its keyed hash does not match: it was changed after it was written, or forged",
            )
        anchor = anchors.get(event.sequence)
        if anchor is not None:
            if anchor.hash != event.hash:
                first = (matched.sequence if matched else start_sequence) + 1
                return ChainVerdict(
                    False,
                    checked,
                    first,
                    f"the chain was rewritten between event #{first} and #{event.sequence}: the hash of "
                    f"#{event.sequence} differs from the one signed in {anchor.label}",
                )
            matched = anchor
        previous = event.hash
        expected += 1
        checked += 1
    return ChainVerdict(True, checked)


def audit_chain_verify(*, since_newest_checkpoint: bool = False) -> ChainVerdict:
    """Recompute the chain and compare it with the signed checkpoints (apps.audit.checkpoints).

    Names the first broken link, a rewrite between two checkpoints, or a tail shorter than the
    newest checkpoint. `since_newest_checkpoint` checks only the events after the newest trusted
    checkpoint (and that the event at its position still has its signed hash).
    """
    from apps.audit.checkpoints import checkpoints_load

    loaded = checkpoints_load(newest_only=since_newest_checkpoint)
    notes = list(loaded.notes)
    if loaded.problems:
        return ChainVerdict(False, 0, None, "; ".join(loaded.problems), tuple(notes))
    anchors = {c.chain_length: Anchor(c.chain_length, c.head_hash, c.label) for c in loaded.trusted}
    newest = loaded.newest
    start_sequence, start_hash = 0, GENESIS_HASH
    if since_newest_checkpoint and newest is not None:
        at = AuditEvent.objects.filter(sequence=newest.chain_length).first()
        if at is None:
            last = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
            return _truncated(last, newest, notes)
        if at.hash != newest.head_hash:
            return ChainVerdict(
                False,
                0,
                newest.chain_length,
                f"the hash of #{newest.chain_length} differs from the one signed in {newest.label}",
                tuple(notes),
            )
        start_sequence, start_hash = newest.chain_length, newest.head_hash
    verdict = _walk(start_sequence=start_sequence, start_hash=start_hash, anchors=anchors)
    if not verdict.ok:
        return ChainVerdict(False, verdict.checked, verdict.broken_sequence, verdict.reason, tuple(notes))
    if newest is not None and verdict.checked < newest.chain_length:
        return _truncated(verdict.checked, newest, notes)
    head = AuditHead.objects.filter(id=1).first()
    if head is not None and head.sequence != verdict.checked:
        return ChainVerdict(
            False,
            verdict.checked,
            verdict.checked + 1,
            "events at the end of the chain were deleted",
            tuple(notes),
        )
    if newest is None:
        notes.append("no signed checkpoint yet: a truncated tail could not be detected")
    elif verdict.checked > newest.chain_length:
        notes.append(
            f"{verdict.checked - newest.chain_length} events after the newest checkpoint "
            f"({newest.label}) are covered by their keyed hashes only"
        )
    else:
        notes.append(f"matches the newest checkpoint ({newest.label})")
    return ChainVerdict(True, verdict.checked, notes=tuple(notes))


def _truncated(last: int, newest, notes: list[str]) -> ChainVerdict:
    return ChainVerdict(
        False,
        last,
        last + 1,
        f"events #{last + 1} to #{newest.chain_length} are missing: {newest.label} covers "
        f"{newest.chain_length} events, the chain ends at #{last} (its tail was truncated)",
        tuple(notes),
    )
