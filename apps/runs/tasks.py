"""Platform tasks (queue `platform`): thin wrappers that call one service each."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="runs.ingest", acks_late=True, soft_time_limit=120, time_limit=180)
def ingest(envelope: dict[str, Any] | None) -> dict[str, Any]:
    from apps.runs.services.ingestion import result_ingest
    from certification.instruments import INGESTION_SECONDS

    if envelope is None:
        return {"accepted": False, "reason": "the runner reported a failure instead of a result"}
    with INGESTION_SECONDS.time():
        outcome = result_ingest(envelope=envelope)
    return {"accepted": outcome.accepted, "reason": outcome.reason, "job_id": outcome.job_id}


@shared_task(name="runs.job_progress", acks_late=True, ignore_result=True)
def job_progress(message: dict[str, Any]) -> None:
    from apps.runs.services.messages import runner_progress_receive

    runner_progress_receive(message=message)


@shared_task(name="runs.job_failed", acks_late=True, ignore_result=True)
def job_failed(message: dict[str, Any]) -> None:
    from apps.runs.services.messages import runner_failure_receive

    runner_failure_receive(message=message)


@shared_task(
    name="runs.reveal_answer", acks_late=True, ignore_result=True, soft_time_limit=240, time_limit=300
)
def reveal_answer(message: dict[str, Any]) -> None:
    from apps.runs.services.reveal import reveal_receive

    reveal_receive(message=message)


@shared_task(
    name="runs.reveal_answers", acks_late=True, ignore_result=True, soft_time_limit=1740, time_limit=1800
)
def reveal_answers(message: dict[str, Any]) -> None:
    """The runner's one answer to a request naming several reveals (runners.reveal_many)."""
    from apps.runs.services.reveal import reveal_receive_many

    reveal_receive_many(message=message)


@shared_task(
    name="runs.reveal_prepare", acks_late=True, ignore_result=True, soft_time_limit=540, time_limit=600
)
def reveal_prepare(job_id: int, challenge: str) -> None:
    """One job's references (what dispatch queued before session 31; kept for messages still queued)."""
    from apps.runs.services.reveal import reveal_prepare as prepare

    prepare(job_id=job_id, challenge=challenge)


@shared_task(
    name="runs.reveal_prepare_jobs", acks_late=True, ignore_result=True, soft_time_limit=1740, time_limit=1800
)
def reveal_prepare_jobs(plans: Any) -> None:
    """The references of the jobs dispatched together, in their order: [[job id, challenge], ...]. An
    entry of another shape is skipped (its reveal is then judged on arrival)."""
    from apps.runs.services.reveal import reveal_prepare_many

    pairs = [
        (entry[0], entry[1])
        for entry in (plans if isinstance(plans, list) else [])
        if isinstance(entry, list | tuple)
        and len(entry) == 2
        and isinstance(entry[0], int)
        and not isinstance(entry[0], bool)
        and isinstance(entry[1], str)
    ]
    reveal_prepare_many(plans=pairs)


@shared_task(name="runs.heartbeat", acks_late=True, ignore_result=True)
def heartbeat(message: dict[str, Any]) -> None:
    from apps.runs.services.messages import runner_heartbeat_receive

    runner_heartbeat_receive(message=message)


@shared_task(name="runs.job_errback", ignore_result=True)
def job_errback(*args, **kwargs) -> None:
    """Refused, kept only to log it: this message carried a bare job id, which any broker client can send.

    A runner's failures (its task raising, or passing its hard time limit) now arrive signed as
    `runs.job_failed`; a runner that dies silently is requeued by the stuck-job sweep."""
    logger.warning("refused an unsigned runs.job_errback message (args=%r, kwargs=%r)", args[:2], kwargs)


@shared_task(name="runs.sweep_runner_health", ignore_result=True)
def sweep_runner_health() -> int:
    from apps.runs.services.sweeps import runners_mark_stale

    return runners_mark_stale()


@shared_task(name="runs.sweep_stuck_jobs", ignore_result=True)
def sweep_stuck_jobs() -> int:
    from apps.runs.services.sweeps import jobs_sweep_stuck

    return jobs_sweep_stuck()


# The messages a runner sends to the platform queue, by task name (the embedded path calls them directly).
RUNNER_MESSAGES = {
    "runs.job_progress": job_progress,
    "runs.job_failed": job_failed,
    "runs.heartbeat": heartbeat,
    "runs.reveal_answer": reveal_answer,
    "runs.reveal_answers": reveal_answers,
}
