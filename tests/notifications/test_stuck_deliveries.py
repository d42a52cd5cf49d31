"""A webhook delivery whose worker stopped mid-attempt (claimed, "sending", no outcome recorded, its
broker message consumed) is re-queued once its lease has passed: the lost attempt is counted and
logged, an audit event records it, and the receiver gets the event again under the same
`webhook-id`. A delivery still within its lease, or already recovered, is left alone."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.notifications.models import DeliveryStatus, WebhookDelivery
from apps.notifications.services import (
    deliveries_stuck_requeue,
    webhook_deliver,
    webhook_delivery_claim,
    webhook_endpoint_create,
    webhook_test_send,
)

pytestmark = pytest.mark.django_db


def crashed_attempt(delivery: WebhookDelivery, *, claimed_ago_s: float) -> None:
    """What a worker leaves behind when it stops right after taking a delivery: the claim, nothing else."""
    claimed_at = timezone.now() - timedelta(seconds=claimed_ago_s)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=claimed_at)
    assert webhook_delivery_claim(delivery_id=delivery.pk, now=claimed_at)


@pytest.fixture
def two_sending(cast, receiver, settings):
    """Two test events to one endpoint, both taken by a worker that then stopped: one just past its
    lease, one well within it."""
    settings.WEBHOOK_SENDING_LEASE_S = 420
    endpoint, secret = webhook_endpoint_create(organization=cast.vendor, url=receiver.url, event_types=[])
    stuck = WebhookDelivery.objects.get(event=webhook_test_send(endpoint=endpoint))
    fresh = WebhookDelivery.objects.get(event=webhook_test_send(endpoint=endpoint))
    crashed_attempt(stuck, claimed_ago_s=420 + 5)
    crashed_attempt(fresh, claimed_ago_s=420 - 60)
    return stuck, fresh, secret


def test_a_delivery_stuck_past_its_lease_is_retried_once_under_the_same_id_and_a_fresh_one_is_not(
    two_sending, receiver
):
    import standardwebhooks

    stuck, fresh, secret = two_sending
    assert deliveries_stuck_requeue() == [(stuck.pk, 0.0)]
    assert deliveries_stuck_requeue() == []  # a second sweep finds nothing: retried once
    stuck.refresh_from_db()
    assert stuck.status == DeliveryStatus.PENDING and stuck.attempts == 1
    assert stuck.log[0]["status_code"] is None and "420 s lease" in stuck.log[0]["error"]
    assert webhook_deliver(delivery_id=stuck.pk) is None
    assert webhook_deliver(delivery_id=fresh.pk) is None  # still sending: nobody may take it
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    assert headers["webhook-id"] == stuck.event.msg_id  # the receiver deduplicates on it
    assert standardwebhooks.Webhook(secret).verify(body, headers)["type"] == "webhook.test"
    stuck.refresh_from_db()
    assert stuck.status == DeliveryStatus.DELIVERED and stuck.attempts == 2
    assert [a["status_code"] for a in stuck.log] == [None, 200]
    fresh.refresh_from_db()
    assert fresh.status == DeliveryStatus.SENDING and fresh.attempts == 0 and fresh.log == []
    audit = AuditEvent.objects.get(action="webhook.delivery_requeued")
    assert audit.object_id == str(stuck.pk) and audit.payload["attempts"] == 1
    assert audit.payload["lease_s"] == 420
    assert not AuditEvent.objects.filter(
        action__startswith="webhook.delivery_", object_id=str(fresh.pk)
    ).exists()


def test_the_beat_task_requeues_the_stuck_delivery_and_the_worker_sends_it(two_sending, receiver, settings):
    from apps.notifications.tasks import requeue_stuck

    settings.CELERY_TASK_ALWAYS_EAGER = True  # the re-queued delivery runs here, whatever broker CI exports
    stuck, fresh, _ = two_sending
    assert requeue_stuck.apply().get() == 1
    assert requeue_stuck.apply().get() == 0
    assert [json.loads(body)["data"]["endpoint"] for _, body in receiver.requests] == [stuck.endpoint_id]
    assert WebhookDelivery.objects.get(pk=stuck.pk).status == DeliveryStatus.DELIVERED
    assert WebhookDelivery.objects.get(pk=fresh.pk).status == DeliveryStatus.SENDING


def test_the_lost_attempt_counts_toward_the_limit(cast, receiver, settings):
    settings.WEBHOOK_SENDING_LEASE_S = 420
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    endpoint, _ = webhook_endpoint_create(organization=cast.vendor, url=receiver.url, event_types=[])
    delivery = WebhookDelivery.objects.get(event=webhook_test_send(endpoint=endpoint))
    crashed_attempt(delivery, claimed_ago_s=10_000)
    assert [pk for pk, _ in deliveries_stuck_requeue()] == [delivery.pk]
    crashed_attempt(delivery, claimed_ago_s=500)  # the retry's worker stopped too
    assert deliveries_stuck_requeue() == []  # its second and last attempt: failed for good
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 2
    assert delivery.next_attempt_at is None and receiver.requests == []
    assert AuditEvent.objects.filter(action="webhook.delivery_failed", object_id=str(delivery.pk)).exists()


def test_a_retry_after_a_lost_later_attempt_waits_for_its_backoff(cast, receiver, settings):
    settings.WEBHOOK_SENDING_LEASE_S = 420
    settings.WEBHOOK_BACKOFF_BASE_S = 10
    endpoint, _ = webhook_endpoint_create(organization=cast.vendor, url=receiver.url, event_types=[])
    delivery = WebhookDelivery.objects.get(event=webhook_test_send(endpoint=endpoint))
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=3)  # three answered attempts before
    crashed_attempt(delivery, claimed_ago_s=425)
    ((pk, due_in),) = deliveries_stuck_requeue()
    # The lost attempt is the fourth: the next waits 10 s x 4^3 = 640 s from its claim.
    assert pk == delivery.pk and 640 - 425 - 5 < due_in <= 640 - 425
    assert webhook_deliver(delivery_id=delivery.pk) is None and receiver.requests == []


def test_an_attempt_that_outlived_its_lease_does_not_overwrite_the_recovery(
    cast, receiver, settings, monkeypatch
):
    """A worker that was only slow (not dead) ends after the recovery re-queued its delivery: its
    outcome is not written over the recovery's record, and the re-queued attempt is the one counted."""
    from apps.notifications import services

    settings.WEBHOOK_SENDING_LEASE_S = 420
    endpoint, _ = webhook_endpoint_create(organization=cast.vendor, url=receiver.url, event_types=[])
    delivery = WebhookDelivery.objects.get(event=webhook_test_send(endpoint=endpoint))
    claim = services.webhook_delivery_claim

    def claim_then_lose_the_lease(*, delivery_id, now):
        # Claimed now; then (the attempt being slow) its lease passes and the recovery takes it over.
        held = claim(delivery_id=delivery_id, now=now)
        WebhookDelivery.objects.filter(pk=delivery_id).update(claimed_at=now - timedelta(seconds=500))
        deliveries_stuck_requeue()
        WebhookDelivery.objects.filter(pk=delivery_id).update(next_attempt_at=now + timedelta(hours=1))
        return held

    monkeypatch.setattr(services, "webhook_delivery_claim", claim_then_lose_the_lease)
    assert webhook_deliver(delivery_id=delivery.pk) is None
    assert len(receiver.requests) == 1  # the slow attempt did reach the receiver
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert [a["status_code"] for a in delivery.log] == [None]


def test_the_recovery_runs_every_five_minutes_from_an_editable_beat_row(db):
    from django_celery_beat.models import PeriodicTask

    from certification.celery import app

    row = PeriodicTask.objects.get(task="notifications.requeue_stuck")
    assert row.enabled and row.interval.every == 5 and row.interval.period == "minutes"
    app.loader.import_default_modules()
    assert row.task in app.tasks


def test_importing_the_runner_worker_leaves_the_platforms_tasks_on_the_platforms_app():
    """The platform imports runners.worker when it runs a job in-process (eager, embedded); its shared
    tasks must still publish through its own app (routes, eager mode), not the runner's."""
    import runners.worker
    from apps.notifications.tasks import deliver
    from certification.celery import app

    assert deliver.app is app and runners.worker.app is not app
