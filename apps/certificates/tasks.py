"""Scheduled certificate work (queue `platform`, run by Celery beat rows editable in the admin)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="certificates.expire", ignore_result=True)
def expire() -> int:
    from apps.certificates.services import certificates_expire

    return certificates_expire()


@shared_task(
    name="certificates.surveillance_schedule", ignore_result=True, soft_time_limit=600, time_limit=660
)
def surveillance_schedule() -> int:
    from apps.certificates.services import surveillance_schedule as schedule

    return schedule()


@shared_task(name="certificates.surveillance_sweep", ignore_result=True)
def surveillance_sweep() -> int:
    from apps.certificates.services import surveillance_sweep as sweep

    return sweep()


@shared_task(name="certificates.evaluate", acks_late=True)
def evaluate(campaign_id: int) -> None:
    """Evaluation as a task, for a deployment that prefers to evaluate off the ingestion worker."""
    from apps.certificates.services import campaign_evaluate

    campaign_evaluate(campaign_id=campaign_id)
