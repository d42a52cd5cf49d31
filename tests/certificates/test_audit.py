"""The audit log: append-only through the ORM and the admin, and `audit_verify` finds any edit."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.sites import site
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import RequestFactory

from apps.audit.models import AuditEvent
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
