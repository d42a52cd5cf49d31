"""Sending a job to its target's runner queue.

With a broker, the spec goes to the target's queue `target.<vendor slug>.<target slug>` as the task
`runners.execute`, and the runner's signed envelope comes back to the platform queue as `runs.ingest`. Without one (the embedded
default), the same runner function and the same platform tasks run in this process.
"""

from __future__ import annotations

import logging
import os

from django.conf import settings

from apps.runs.models import Job, JobState

logger = logging.getLogger(__name__)
PLATFORM_QUEUE = "platform"


def _soft_limit(hard: int) -> int:
    return max(hard - 60, int(hard * 0.9))


def job_dispatch(*, job_id: int) -> None:
    job = Job.objects.select_related("campaign__target").filter(pk=job_id, state=JobState.QUEUED).first()
    if job is None:
        return  # cancelled or already taken meanwhile
    if settings.CELERY_TASK_ALWAYS_EAGER:
        _run_in_process(job)
        return
    from certification.celery import app

    hard = int(job.spec.get("limits", {}).get("time_s", 900))
    result = app.send_task(
        "runners.execute",
        args=[job.spec],
        queue=job.campaign.target.queue,
        soft_time_limit=_soft_limit(hard),
        time_limit=hard,
        link=app.signature("runs.ingest", queue=PLATFORM_QUEUE),
        link_error=app.signature("runs.job_errback", kwargs={"job_id": job.pk}, queue=PLATFORM_QUEUE),
    )
    Job.objects.filter(pk=job.pk).update(task_id=result.id)


def _run_in_process(job: Job) -> None:
    """The embedded path: this machine is its own runner host (the key lives in var/, outside the DB)."""
    from apps.runs import tasks as platform_tasks
    from runners.signing import RunnerIdentity
    from runners.worker import run_job

    name = os.environ.get("RUNNER_NAME") or settings.EMBEDDED_RUNNER_NAME
    key_file = os.environ.get("RUNNER_KEY_FILE") or settings.EMBEDDED_RUNNER_KEY_FILE
    identity = RunnerIdentity.from_file(name, key_file)

    def report(task_name: str, message: dict) -> None:
        platform_tasks.RUNNER_MESSAGES[task_name].apply(args=[message], throw=True)

    envelope = run_job(job.spec, identity=identity, report=report)
    if envelope is not None:
        platform_tasks.ingest.apply(args=[envelope], throw=True)


def job_messages_revoke(*, task_ids: list[str]) -> None:
    """Tell runner workers to discard these jobs' messages (broadcast; best effort)."""
    if not task_ids or settings.CELERY_TASK_ALWAYS_EAGER:
        return
    from certification.celery import app

    try:
        app.control.revoke(task_ids)
    except Exception:  # the broker being down must not undo a cancellation already committed
        logger.warning("could not broadcast the revocation of %s", task_ids, exc_info=True)
