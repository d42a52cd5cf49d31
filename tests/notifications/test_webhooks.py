"""Notifications (issue 17, item 3): events of a vendor's campaigns and certificates reach its
webhook endpoints signed per Standard Webhooks (checked here from the specification's formula, and
with the `standardwebhooks` package where installed), retried with exponential backoff, logged with
their response codes, and e-mailed to the vendor's members. Secrets are stored only encrypted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from apps.notifications.models import DeliveryStatus, Event, EventType, WebhookDelivery, WebhookEndpoint
from apps.notifications.services import (
    certificates_expiring_notify,
    webhook_deliver,
    webhook_endpoint_create,
    webhook_test_send,
)

pytestmark = pytest.mark.django_db


def spec_verify(secret: str, headers: dict, body: bytes) -> bool:
    """Standard Webhooks v1, written from the specification: HMAC-SHA256 over id.timestamp.body."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    return any(sig.split(",", 1) == ["v1", expected] for sig in headers["webhook-signature"].split(" "))


def deliver_all() -> None:
    for pk in (
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)
    ):
        webhook_deliver(delivery_id=pk)


def run_enqueued() -> None:
    """What the platform workers do with the enqueued tasks (called directly: the test does not
    depend on which Celery app is current)."""
    from apps.notifications.services import event_email

    deliver_all()
    for pk in Event.objects.order_by("pk").values_list("pk", flat=True):
        event_email(event_id=pk)


def test_a_campaign_awaiting_review_reaches_the_vendors_endpoint_signed_and_its_members_by_email(
    cast, awaiting, receiver
):
    endpoint, secret = webhook_endpoint_create(
        organization=cast.vendor, url=receiver.url, event_types=[], actor=cast.owner
    )
    foreign, _ = webhook_endpoint_create(
        organization=cast.foreign_vendor, url=receiver.url + "/foreign", event_types=[]
    )
    campaign = awaiting()
    run_enqueued()
    types = [json.loads(body)["type"] for _, body in receiver.requests]
    assert "campaign.awaiting_review" in types
    headers, body = next(
        r for r in receiver.requests if json.loads(r[1])["type"] == "campaign.awaiting_review"
    )
    assert spec_verify(secret, headers, body)
    assert not spec_verify(secret.replace(secret[-6:-2], "AAAA"), headers, body)
    payload = json.loads(body)
    assert payload["data"]["campaign"] == campaign.pk and payload["data"]["state"] == "awaiting_review"
    assert abs(int(headers["webhook-timestamp"]) - timezone.now().timestamp()) < 60
    event = Event.objects.get(type=EventType.CAMPAIGN_AWAITING_REVIEW)
    assert headers["webhook-id"] == event.msg_id and event.organization == cast.vendor
    assert not WebhookDelivery.objects.filter(
        endpoint=foreign
    ).exists()  # another vendor's events stay its own
    delivery = WebhookDelivery.objects.get(endpoint=endpoint, event=event)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.log[0]["status_code"] == 200
    review_mail = [m for m in mail.outbox if "awaiting review" in m.subject]
    assert review_mail and "owner@example.org" in review_mail[0].to
    assert "foreign@example.org" not in review_mail[0].to
    assert f"/campaigns/{campaign.pk}/" in review_mail[0].body


def test_the_signature_verifies_with_the_standardwebhooks_package(cast, receiver):
    import standardwebhooks

    endpoint, secret = webhook_endpoint_create(organization=cast.vendor, url=receiver.url, event_types=[])
    event = webhook_test_send(endpoint=endpoint)
    deliver_all()
    headers, body = receiver.requests[0]
    assert standardwebhooks.Webhook(secret).verify(body, headers)["type"] == "webhook.test"
    assert headers["webhook-id"] == event.msg_id


def test_a_failed_delivery_is_retried_with_exponential_backoff_under_the_same_id(cast, receiver, settings):
    settings.WEBHOOK_BACKOFF_BASE_S = 10
    endpoint, _ = webhook_endpoint_create(organization=cast.vendor, url=receiver.url, event_types=[])
    webhook_test_send(endpoint=endpoint)
    delivery = WebhookDelivery.objects.get()
    receiver.codes = [500, 503]
    assert webhook_deliver(delivery_id=delivery.pk) == 10
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.last_status_code == 500
    assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=8)
    assert webhook_deliver(delivery_id=delivery.pk) is None  # not due yet: nothing sent
    assert len(receiver.requests) == 1
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert webhook_deliver(delivery_id=delivery.pk) == 40  # 10 s x 4
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert webhook_deliver(delivery_id=delivery.pk) is None
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 3
    assert [a["status_code"] for a in delivery.log] == [500, 503, 200]
    assert "receiver says no" in delivery.log[0]["error"]
    assert len({headers["webhook-id"] for headers, _ in receiver.requests}) == 1  # the receiver dedupes on it


def test_a_delivery_fails_for_good_after_the_last_attempt(cast, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    endpoint, _ = webhook_endpoint_create(organization=cast.vendor, url=receiver.url, event_types=[])
    webhook_test_send(endpoint=endpoint)
    delivery = WebhookDelivery.objects.get()
    receiver.codes = [500, 500, 500]
    assert webhook_deliver(delivery_id=delivery.pk) is not None
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert webhook_deliver(delivery_id=delivery.pk) is None
    delivery.refresh_from_db()
    assert (
        delivery.status == DeliveryStatus.FAILED
        and delivery.attempts == 2
        and delivery.next_attempt_at is None
    )


def test_a_private_address_is_not_called_unless_allowed(cast, receiver, settings):
    endpoint, _ = webhook_endpoint_create(organization=cast.vendor, url=receiver.url, event_types=[])
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False
    webhook_test_send(endpoint=endpoint)
    webhook_deliver(delivery_id=WebhookDelivery.objects.get().pk)
    delivery = WebhookDelivery.objects.get()
    assert receiver.requests == [] and "non-public address" in delivery.last_error


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("http://hooks.example.org/x", "url"),
        ("ftp://hooks.example.org/", "url"),
        ("https://u:p@hooks.example.org/", "url"),
    ],
)
def test_an_endpoint_must_be_https_without_credentials(cast, url, field):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        webhook_endpoint_create(organization=cast.vendor, url=url, event_types=[])
    assert field in refused.value.message_dict
    assert not WebhookEndpoint.objects.exists()


def test_the_secret_is_stored_only_encrypted_under_a_key_outside_the_database(cast, signing_key_dir):
    endpoint, secret = webhook_endpoint_create(
        organization=cast.vendor, url="https://hooks.example.org/in", event_types=["certificate.revoked"]
    )
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM notifications_webhookendpoint")
        row = " ".join(str(value) for value in cursor.fetchone())
    assert secret not in row and secret[6:] not in row
    key_file = signing_key_dir.parent / "webhook-secrets.key"
    assert key_file.exists() and oct(key_file.stat().st_mode)[-3:] == "600"
    from apps.notifications.signing import secret_decrypt

    assert secret_decrypt(WebhookEndpoint.objects.get().secret_ciphertext) == secret
    assert endpoint.event_types == ["certificate.revoked"]


def test_an_endpoint_gets_only_the_events_it_subscribed_to(cast, certified, receiver):
    from apps.certificates.services import certificate_reinstate, certificate_revoke, certificate_suspend

    endpoint, secret = webhook_endpoint_create(
        organization=cast.vendor,
        url=receiver.url,
        event_types=["certificate.suspended", "certificate.reinstated", "certificate.revoked"],
    )
    certificate = certified()
    certificate_suspend(certificate=certificate, reason="Surveillance failed.", actor=cast.reviewer)
    certificate_reinstate(certificate=certificate, reason="Re-test passed.", actor=cast.reviewer)
    certificate_revoke(certificate=certificate, reason="Fraud.", actor=cast.reviewer)
    deliver_all()
    sent = [json.loads(body) for _, body in receiver.requests]
    assert [s["type"] for s in sent] == [
        "certificate.suspended",
        "certificate.reinstated",
        "certificate.revoked",
    ]
    assert (
        sent[0]["data"]["serial"] == certificate.serial
        and sent[0]["data"]["reason"] == "Surveillance failed."
    )
    assert all(spec_verify(secret, headers, body) for headers, body in receiver.requests)
    # Every event was recorded, whether or not an endpoint wanted it.
    recorded = set(Event.objects.values_list("type", flat=True))
    assert {"campaign.awaiting_review", "campaign.approved", "certificate.issued"} <= recorded


def test_an_expiring_certificate_is_announced_once(cast, certified, settings):
    settings.NOTIFY_EXPIRY_NOTICE_DAYS = 30
    certificate = certified()
    assert certificates_expiring_notify() == 0
    type(certificate).objects.filter(pk=certificate.pk).update(
        valid_until=timezone.now() + timedelta(days=20)
    )
    assert certificates_expiring_notify() == 1
    assert certificates_expiring_notify() == 0
    event = Event.objects.get(type=EventType.CERTIFICATE_EXPIRING)
    assert event.payload["data"]["serial"] == certificate.serial


def test_a_failing_listener_never_undoes_the_change_it_hears_of(cast, awaiting, monkeypatch):
    from apps.notifications import services

    def broken(**kwargs):
        raise RuntimeError("notification store down")

    monkeypatch.setattr(services, "event_record", broken)
    campaign = awaiting()
    assert campaign.state == "awaiting_review"
    assert not Event.objects.exists()


def test_a_broker_outage_fails_nothing_and_the_sweep_sends_what_was_not_enqueued(
    cast, receiver, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from apps.notifications import tasks
    from apps.notifications.services import event_record

    webhook_endpoint_create(organization=cast.vendor, url=receiver.url, event_types=[])

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    with monkeypatch.context() as patched:
        patched.setattr(tasks.deliver, "delay", broker_down)
        with django_capture_on_commit_callbacks(execute=True):
            event = event_record(
                organization_id=cast.vendor.pk, type=EventType.CERTIFICATE_REVOKED, data={"serial": "X-1"}
            )
    assert receiver.requests == [] and not mail.outbox
    Event.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(hours=1))
    from apps.notifications.services import event_email

    enqueued: dict[str, list[int]] = {"deliver": [], "email": []}
    monkeypatch.setattr(tasks.deliver, "delay", lambda pk: enqueued["deliver"].append(pk))
    monkeypatch.setattr(tasks.email, "delay", lambda pk: enqueued["email"].append(pk))
    tasks.sweep()
    assert enqueued == {"deliver": [WebhookDelivery.objects.get(event=event).pk], "email": [event.pk]}
    for pk in enqueued["deliver"]:
        webhook_deliver(delivery_id=pk)
    for pk in enqueued["email"]:
        event_email(event_id=pk)
    assert [json.loads(body)["data"]["serial"] for _, body in receiver.requests] == ["X-1"]
    assert len(mail.outbox) == 1 and "X-1" in mail.outbox[0].subject


def test_a_chinese_organization_is_written_to_in_chinese_whatever_language_was_last_active(cast):
    from django.utils import translation

    from apps.notifications.services import event_email, event_record

    type(cast.vendor).objects.filter(pk=cast.foreign_vendor.pk).update(country="CN")
    mine = event_record(
        organization_id=cast.vendor.pk, type=EventType.CERTIFICATE_REVOKED, data={"serial": "A-1"}
    )
    theirs = event_record(
        organization_id=cast.foreign_vendor.pk, type=EventType.CERTIFICATE_REVOKED, data={"serial": "B-1"}
    )
    with translation.override("zh-hans"):  # a previous request's language must not leak into e-mail
        event_email(event_id=mine.pk)
    with translation.override("en"):
        event_email(event_id=theirs.pk)
    subjects = {m.subject for m in mail.outbox}
    assert subjects == {"[Certification] Certificate revoked: A-1", "[认证] 认证证书已撤销：B-1"}
