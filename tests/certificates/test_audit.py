"""The audit log: append-only through the ORM and the admin, and `audit_verify` finds any edit."""

from __future__ import annotations

import base64
import hashlib
import json
from io import StringIO

import pytest
from django.contrib.admin.sites import site
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import RequestFactory

from apps.audit.models import AuditEvent, AuditHead
from apps.audit.services import audit_record


@pytest.fixture
def chain(db):
    """Five events, as the platform writes them."""
    return [
        audit_record(
            action="test.step",
            actor_label="tester",
            object_type="thing",
            object_id=str(i),
            payload={"step": i, "note": "é"},
        )
        for i in range(1, 6)
    ]


def verify() -> str:
    from io import StringIO

    out = StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def test_an_intact_chain_verifies(chain):
    assert "intact: 5 events" in verify()


def test_the_chain_of_a_real_certification_verifies(certified):
    certified()
    assert (
        AuditEvent.objects.filter(
            action__in=["campaign.evaluated", "review.approved", "certificate.issued"]
        ).count()
        == 3
    )
    assert "intact" in verify()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("payload", json.dumps({"step": 3, "note": "edited"})),
        ("action", "test.other"),
        ("actor_label", "someone-else"),
        ("object_id", "99"),
        ("occurred_at", "2020-01-01 00:00:00"),
    ],
)
def test_an_edited_row_is_found_and_named(chain, column, value):
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE audit_auditevent SET {column} = %s WHERE sequence = 3", [value])  # noqa: S608
    with pytest.raises(CommandError, match=r"broken at event #3"):
        verify()


def test_an_edit_that_recomputes_its_own_hash_breaks_the_next_link(chain):
    from apps.audit.services import event_hash

    third = AuditEvent.objects.get(sequence=3)
    forged = event_hash(
        sequence=3,
        occurred_at=third.occurred_at.isoformat(),
        actor_id=third.actor_id,
        actor_label=third.actor_label,
        action="test.forged",
        object_type=third.object_type,
        object_id=third.object_id,
        payload=third.payload,
        previous_hash=third.previous_hash,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET action = %s, hash = %s WHERE sequence = 3", ["test.forged", forged]
        )
    with pytest.raises(CommandError, match=r"broken at event #4"):
        verify()


def test_a_deleted_row_is_found_and_named(chain):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE sequence = 2")
    with pytest.raises(CommandError, match=r"broken at event #2.*missing"):
        verify()


def test_deleting_the_last_rows_is_found(chain):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE sequence >= 4")
    with pytest.raises(CommandError, match=r"broken at event #4"):
        verify()


def test_events_appended_together_chain_exactly_as_events_appended_one_by_one(chain):
    from apps.audit.services import AuditEntry, audit_record_many

    batch = audit_record_many(
        entries=[
            AuditEntry(action="test.batch", actor_label="tester", object_type="thing", object_id=str(i))
            for i in (6, 7, 8)
        ]
    )
    audit_record(action="test.step", actor_label="tester", object_type="thing", object_id="9")
    events = list(AuditEvent.objects.order_by("sequence"))
    assert [e.sequence for e in events] == list(range(1, 10))
    assert [e.sequence for e in batch] == [6, 7, 8] and all(e.pk for e in batch)
    for before, after in zip(events, events[1:], strict=False):
        assert after.previous_hash == before.hash
    head = AuditHead.objects.get(id=1)
    assert (head.sequence, head.hash) == (9, events[-1].hash)
    assert "intact: 9 events" in verify()
    # An edit inside a batch is found like any other.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET object_id = '70' WHERE sequence = 7")
    with pytest.raises(CommandError, match=r"broken at event #7"):
        verify()


def test_events_cannot_be_changed_or_deleted_through_the_orm(chain):
    event = chain[0]
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    event.action = "x"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    assert "intact" in verify()


def test_the_admin_cannot_add_change_or_delete_events(chain, cast):
    admin = site._registry[AuditEvent]
    request = RequestFactory().get("/admin/audit/auditevent/")
    request.user = cast.platform_admin
    assert admin.has_view_permission(request, chain[0])
    assert not admin.has_add_permission(request)
    assert not admin.has_change_permission(request, chain[0])
    assert not admin.has_delete_permission(request, chain[0])


def test_the_admin_change_page_refuses_a_post(chain, cast, client):
    client.force_login(cast.platform_admin)
    url = f"/admin/audit/auditevent/{chain[0].pk}/change/"
    response = client.post(url, {"action": "x"})
    assert response.status_code == 403
    assert client.post(f"/admin/audit/auditevent/{chain[0].pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.get(pk=chain[0].pk).action == "test.step"


# --- Issue 12.5: a database writer cannot rewrite, extend or cut the chain unseen -----------------


def public_formula(event: dict, previous: str) -> str:
    """The unkeyed hash a database writer can compute (the formula before the chain was keyed)."""
    body = {k: event[k] for k in ("sequence", "action", "object_type", "object_id", "payload")}
    body.update(occurred_at=event["occurred_at"].isoformat(), actor=event["actor_label"], previous=previous)
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def stolen_key_formula(event: dict, previous: str) -> str:
    """The keyed hash, for a writer who also stole the chain key file (only a checkpoint catches this one)."""
    from apps.audit.services import event_hash

    return event_hash(
        sequence=event["sequence"],
        occurred_at=event["occurred_at"].isoformat(),
        actor_id=event["actor_id"],
        actor_label=event["actor_label"],
        action=event["action"],
        object_type=event["object_type"],
        object_id=event["object_id"],
        payload=event["payload"],
        previous_hash=previous,
    )


def rewrite(from_sequence: int, hasher, **edits) -> None:
    """Edit one event with SQL and recompute its hash and every later one, head included."""
    fields = [
        "sequence",
        "occurred_at",
        "actor_id",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "payload",
        "previous_hash",
    ]
    events = list(AuditEvent.objects.order_by("sequence").values(*fields))
    previous = next(e for e in reversed(events) if e["sequence"] < from_sequence)
    previous_hash = AuditEvent.objects.get(sequence=previous["sequence"]).hash
    with connection.cursor() as cursor:
        for event in events:
            if event["sequence"] < from_sequence:
                continue
            if event["sequence"] == from_sequence:
                event.update(edits)
            digest = hasher(event, previous_hash)
            cursor.execute(
                "UPDATE audit_auditevent SET action = %s, payload = %s, actor_id = %s, previous_hash = %s, "
                "hash = %s WHERE sequence = %s",
                [
                    event["action"],
                    json.dumps(event["payload"]),
                    event["actor_id"],
                    previous_hash,
                    digest,
                    event["sequence"],
                ],
            )
            previous_hash = digest
        cursor.execute("UPDATE audit_audithead SET hash = %s WHERE id = 1", [previous_hash])


def test_an_edit_with_every_later_hash_recomputed_is_found(chain):
    rewrite(3, public_formula, payload={"step": 3, "note": "rewritten"})
    with pytest.raises(CommandError, match=r"broken at event #3: its keyed hash does not match"):
        verify()


def test_a_forged_event_appended_with_a_recomputed_hash_is_found(chain):
    from django.utils import timezone

    last = AuditEvent.objects.order_by("-sequence").values().first()
    forged = {
        **last,
        "sequence": 6,
        "occurred_at": timezone.now(),
        "action": "certificate.revoked",
        "payload": {"forged": True},
    }
    digest = public_formula(forged, last["hash"])
    AuditEvent(
        sequence=6,
        occurred_at=forged["occurred_at"],
        actor_label=forged["actor_label"],
        action=forged["action"],
        object_type=forged["object_type"],
        object_id=forged["object_id"],
        payload=forged["payload"],
        previous_hash=last["hash"],
        hash=digest,
    ).save()  # an INSERT: the ORM allows it, as SQL would
    AuditHead.objects.filter(id=1).update(sequence=6, hash=digest)
    with pytest.raises(CommandError, match=r"broken at event #6: its keyed hash does not match"):
        verify()


def test_changing_the_actor_of_an_event_is_found(cast, db):
    for step in range(3):
        audit_record(action="test.step", actor=cast.reviewer, object_type="thing", object_id=str(step))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET actor_id = %s WHERE sequence = 2", [cast.platform_admin.pk]
        )
    with pytest.raises(CommandError, match=r"broken at event #2"):
        verify()


def test_a_user_who_acted_cannot_be_deleted_from_under_the_chain(cast, db):
    from django.db.models import ProtectedError

    audit_record(action="test.step", actor=cast.reviewer, object_type="thing", object_id="1")
    with pytest.raises(ProtectedError):
        cast.reviewer.delete()


def test_a_truncated_tail_is_found_against_the_newest_checkpoint(chain):
    from apps.audit.checkpoints import audit_checkpoint_take

    audit_checkpoint_take()
    third = AuditEvent.objects.get(sequence=3)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE sequence > 3")
    AuditHead.objects.filter(id=1).update(sequence=3, hash=third.hash)  # the writer fixes the head too
    with pytest.raises(CommandError, match=r"broken at event #4: events #4 to #6 are missing.*truncated"):
        verify()


def test_a_rewrite_with_the_stolen_chain_key_is_caught_by_the_checkpoints(chain):
    from apps.audit.checkpoints import audit_checkpoint_take

    audit_checkpoint_take()
    rewrite(3, stolen_key_formula, action="test.forged")
    from apps.audit.services import audit_chain_verify

    verdict = audit_chain_verify()
    assert not verdict.ok
    assert "rewritten between event #1 and #6" in verdict.reason  # #6: the key made for the checkpoint
    with pytest.raises(CommandError, match=r"rewritten between event #1 and #6"):
        verify()


def test_two_checkpoints_narrow_down_where_the_rewrite_happened(db):
    from apps.audit.checkpoints import audit_checkpoint_take
    from apps.certificates.services.keys import signing_key_active

    signing_key_active()  # event #1: the authority's first key
    for step in range(1):
        audit_record(action="test.step", actor_label="tester", object_type="thing", object_id=str(step))
    audit_checkpoint_take()
    for step in range(2, 5):
        audit_record(action="test.step", actor_label="tester", object_type="thing", object_id=str(step))
    audit_checkpoint_take()
    rewrite(3, stolen_key_formula, payload={"edited": True})
    with pytest.raises(CommandError, match=r"rewritten between event #3 and #5"):
        verify()


def test_an_intact_chain_names_the_checkpoint_it_matches(chain):
    from apps.audit.checkpoints import audit_checkpoint_take

    assert "no signed checkpoint yet" in verify()
    checkpoint = audit_checkpoint_take()
    out = verify()
    assert "intact: 6 events" in out and "matches the newest checkpoint" in out and checkpoint.name in out
    audit_record(action="test.later", actor_label="tester", object_type="thing", object_id="7")
    assert "1 events after the newest checkpoint" in verify()


def test_a_checkpoint_is_never_signed_over_a_broken_chain(chain):
    from apps.audit.checkpoints import AuditChainBroken, audit_checkpoint_dir, audit_checkpoint_take

    rewrite(4, public_formula, action="test.forged")
    with pytest.raises(AuditChainBroken, match="#4"):
        audit_checkpoint_take()
    assert not list(audit_checkpoint_dir().glob("*.json"))
    with pytest.raises(CommandError, match="No checkpoint taken"):
        call_command("audit_checkpoint", stdout=StringIO())


def test_a_forged_or_altered_checkpoint_file_fails_verification(chain):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from apps.audit.checkpoints import audit_checkpoint_dir, audit_checkpoint_take
    from certification.verify import public_key_id
    from runners.canonical import canonical_text as canonical_json

    checkpoint = audit_checkpoint_take()
    path = audit_checkpoint_dir() / checkpoint.name
    document = json.loads(path.read_text())
    document["checkpoint"]["chain_length"] = 3  # "blessing" a truncation
    path.write_text(canonical_json(document))
    with pytest.raises(CommandError, match="invalid signature"):
        verify()
    path.unlink()
    stranger = Ed25519PrivateKey.generate()
    body = {**document["checkpoint"], "key_id": public_key_id(stranger.public_key())}
    forged = {
        "checkpoint": body,
        "key_id": body["key_id"],
        "signature": base64.b64encode(stranger.sign(canonical_json(body).encode())).decode(),
    }
    (audit_checkpoint_dir() / "000000000003-20990101T000000000000Z.json").write_text(canonical_json(forged))
    with pytest.raises(CommandError, match="key table no longer lists"):
        verify()


def test_checkpoints_are_taken_at_certificate_issue_and_published(
    certified, client, django_capture_on_commit_callbacks
):
    from certification.verify import decode_signature, load_public_key
    from runners.canonical import canonical_text as canonical_json

    with django_capture_on_commit_callbacks(execute=True):
        certificate = certified()
    head = AuditEvent.objects.order_by("-sequence").first()
    published = client.get("/.well-known/audit-checkpoints.json")
    assert published.status_code == 200 and published["Access-Control-Allow-Origin"] == "*"
    newest = published.json()["checkpoints"][0]
    body = newest["checkpoint"]
    assert body["chain_length"] == head.sequence and body["head_hash"] == head.hash
    assert newest["key_id"] == certificate.signing_key.key_id
    keys = {k["key_id"]: k for k in client.get("/.well-known/certification-keys.json").json()["keys"]}
    public_key = load_public_key(keys[newest["key_id"]]["public_key"])
    # Raises if forged:
    public_key.verify(decode_signature(newest["signature"]), canonical_json(body).encode())
    assert "matches the newest checkpoint" in verify()


def test_after_a_key_compromise_its_checkpoints_are_ignored_and_a_new_one_is_signed(
    certified, django_capture_on_commit_callbacks
):
    from apps.audit.checkpoints import checkpoints_load
    from apps.certificates.services.keys import signing_key_compromise

    with django_capture_on_commit_callbacks(execute=True):
        leaked = certified().signing_key
    with django_capture_on_commit_callbacks(execute=True):
        signing_key_compromise(key=leaked, reason="HSM backup found on a public share.")
    loaded = checkpoints_load()
    assert [c.key_id != leaked.key_id for c in loaded.trusted] == [True]
    assert any("reported compromised" in note for note in loaded.notes)
    out = verify()
    assert "intact" in out and "ignored: signed by key" in out


def test_the_scheduled_checkpoint_is_a_beat_row_and_skips_an_unchanged_chain(chain):
    from django_celery_beat.models import PeriodicTask

    from apps.audit.checkpoints import audit_checkpoint_dir
    from apps.audit.tasks import checkpoint
    from certification.celery import app

    row = PeriodicTask.objects.get(task="audit.checkpoint")
    assert row.enabled and row.interval is not None and row.queue == "platform"
    app.loader.import_default_modules()
    assert "audit.checkpoint" in app.tasks
    assert checkpoint.apply().get() == 6  # the five and the authority's first key
    assert checkpoint.apply().get() == 6
    assert len(list(audit_checkpoint_dir().glob("*.json"))) == 1, "an unchanged chain is not signed again"
    audit_record(action="test.later", actor_label="tester", object_type="thing", object_id="7")
    assert checkpoint.apply().get() == 7


def as_version_2() -> None:
    """Re-hash the whole chain with hash version 2 (the legacy canonical form), as written before 0004."""
    from apps.audit.services import event_hash

    previous = "0" * 64
    with connection.cursor() as cursor:
        for event in AuditEvent.objects.order_by("sequence"):
            digest = event_hash(
                version=2,
                sequence=event.sequence,
                occurred_at=event.occurred_at.isoformat(),
                actor_id=event.actor_id,
                actor_label=event.actor_label,
                action=event.action,
                object_type=event.object_type,
                object_id=event.object_id,
                payload=event.payload,
                previous_hash=previous,
            )
            cursor.execute(
                "UPDATE audit_auditevent SET hash = %s, previous_hash = %s, hash_version = 2 WHERE id = %s",
                [digest, previous, event.pk],
            )
            previous = digest
        cursor.execute("UPDATE audit_audithead SET hash = %s WHERE id = 1", [previous])


def test_the_migration_rehashes_a_version_1_chain_and_refuses_a_broken_one(chain):
    """Migration 0002 checks the unkeyed version-1 chain, then re-hashes it as version 2 (and back)."""
    import importlib

    from django.db.migrations.executor import MigrationExecutor

    migration = importlib.import_module("apps.audit.migrations.0002_audit_keyed_chain")
    as_version_2()  # the chain as it was when 0002 was the newest migration
    historical = MigrationExecutor(connection).loader.project_state(("audit", "0002_audit_keyed_chain")).apps
    migration.backward(historical, None)
    first = AuditEvent.objects.get(sequence=1)
    assert first.hash_version == 1
    assert first.hash == public_formula(AuditEvent.objects.filter(sequence=1).values().get(), "0" * 64)
    migration.forward(historical, None)
    assert set(AuditEvent.objects.values_list("hash_version", flat=True)) == {2}
    assert "intact: 5 events" in verify()

    migration.backward(historical, None)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET action = 'x' WHERE sequence = 2")
    with pytest.raises(RuntimeError, match="already broken at event #2"):
        migration.forward(historical, None)


def _sent(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement append is PostgreSQL's")
def test_an_event_is_appended_in_one_statement_and_chains_as_before(chain, cast):
    """Issue 13: lock the head, insert, move the head were three statements an event; PostgreSQL does
    them in one (the head row is still locked and checked, the events hashed exactly as before)."""
    from django.test.utils import CaptureQueriesContext

    from apps.audit.services import AuditEntry, audit_record_many

    with CaptureQueriesContext(connection) as one:
        event = audit_record(action="test.one", actor=cast.owner, obj=cast.owner, payload={"n": 1})
    with CaptureQueriesContext(connection) as batch:
        events = audit_record_many(
            entries=[AuditEntry(action="test.batch", actor_label="tester", payload={"i": i}) for i in (1, 2)]
        )
    assert len(_sent(one)) == 1 and len(_sent(batch)) == 1, (_sent(one), _sent(batch))
    assert "FOR UPDATE" in _sent(one)[0]
    stored = list(AuditEvent.objects.order_by("sequence"))
    assert [e.pk for e in stored[-3:]] == [event.pk, *(e.pk for e in events)]
    assert stored[-3].actor_id == cast.owner.pk and stored[-3].payload == {"n": 1}
    assert stored[-3].occurred_at == event.occurred_at  # the time the hash covers, with its zone
    assert (AuditHead.objects.get(id=1).sequence, AuditHead.objects.get(id=1).hash) == (8, stored[-1].hash)
    assert "intact: 8 events" in verify()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement append is PostgreSQL's")
def test_an_event_after_another_writer_moved_the_head_chains_to_that_writers_event(chain):
    """The head this process last saw is only a guess: when another writer (another process) has moved
    the head since, nothing is inserted on the stale guess; the events are chained to the head the
    statement locked (two statements, never a fork or a gap in the chain)."""
    from django.test.utils import CaptureQueriesContext

    from apps.audit import services

    services._heads_seen[connection.alias] = (chain[2].sequence, chain[2].hash)  # stale: #3, head is #5
    with CaptureQueriesContext(connection) as queries:
        event = audit_record(action="test.after", actor_label="tester")
    assert len(_sent(queries)) == 2
    assert (event.sequence, event.previous_hash) == (6, chain[-1].hash)
    assert not AuditEvent.objects.filter(previous_hash=chain[2].hash).exclude(sequence=4).exists()
    # A guess that names a head which never was (a rolled-back writer's event) is refused the same way.
    services._heads_seen[connection.alias] = (7, "f" * 64)
    audit_record(action="test.after", actor_label="tester")
    assert [e.sequence for e in AuditEvent.objects.order_by("sequence")] == list(range(1, 8))
    assert "intact: 7 events" in verify()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement append is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_writers_appending_at_once_keep_one_chain():
    """Writers on their own connections append at the same time, each from the head it last saw: the
    locked head row still makes them take turns, and the chain has neither a fork nor a gap."""
    import threading

    from django.db import connections, transaction

    audit_record(action="test.first", actor_label="tester")  # the head row exists
    failures: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for index in range(15):
                with transaction.atomic():
                    audit_record(action="test.concurrent", actor_label=name, payload={"i": index})
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(f"writer-{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    events = list(AuditEvent.objects.order_by("sequence"))
    assert [e.sequence for e in events] == list(range(1, 47))
    assert all(after.previous_hash == before.hash for before, after in zip(events, events[1:], strict=False))
    assert "intact: 46 events" in verify()
