"""Notification tasks (queue `platform`): thin, ids in, one service each."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="notifications.deliver", ignore_result=True)
def deliver(delivery_id: int) -> None:
    """Attempt a webhook delivery; on failure, enqueue the next attempt after its backoff."""
    from apps.notifications.services import webhook_deliver

    retry_in = webhook_deliver(delivery_id=delivery_id)
    if retry_in is not None:
        deliver.apply_async((delivery_id,), countdown=retry_in)


@shared_task(
    name="notifications.email",
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=60,
    max_retries=5,
)
def email(event_id: int) -> int:
    from apps.notifications.services import event_email

    return event_email(event_id=event_id)


@shared_task(name="notifications.sweep", ignore_result=True)
def sweep() -> int:
    """Warn of certificates about to expire, and re-enqueue deliveries and e-mails whose message was lost."""
    from apps.notifications.services import certificates_expiring_notify, deliveries_due, events_unemailed

    for delivery_id in deliveries_due():
        deliver.delay(delivery_id)
    for event_id in events_unemailed():
        email.delay(event_id)
    return certificates_expiring_notify()


@shared_task(name="notifications.requeue_stuck", ignore_result=True)
def requeue_stuck() -> int:
    """Put back in the queue the deliveries whose worker stopped mid-attempt (left "sending" past their
    lease); returns how many were re-queued."""
    from apps.notifications.services import deliveries_stuck_requeue

    requeued = deliveries_stuck_requeue()
    for delivery_id, due_in in requeued:
        deliver.apply_async((delivery_id,), countdown=due_in)
    return len(requeued)
