"""Sending a job to its target's runner queue.

Before a job is sent, the platform draws its commit–reveal plan for the attempt's challenge (a
secret key, kept apart from the spec) and queues `runs.reveal_prepare_jobs` on the platform queue
(apps/runs/services/reveal.py). The spec goes to `target.<vendor slug>.<target slug>` as the task `runners.execute`, and the runner's signed envelope
comes back to the platform queue as `runs.ingest`; its progress, heartbeats and failures arrive there
signed too. This holds for Redis, RabbitMQ and the embedded broker in files alike: a web request only
publishes, it never runs a suite. (Tests that set CELERY_TASK_ALWAYS_EAGER get the same runner
function and platform tasks called in process.)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from django.conf import settings

from apps.runs.models import Job, JobState

logger = logging.getLogger(__name__)
PLATFORM_QUEUE = "platform"
# runners/worker.py turns this signal into a cancellation check between cases.
RUNNER_CANCEL_SIGNAL = "SIGUSR2"


def _soft_limit(hard: int) -> int:
    return max(hard - 60, int(hard * 0.9))


def job_dispatch(*, job_id: int) -> None:
    jobs_dispatch(job_ids=[job_id])


def jobs_dispatch(*, job_ids: list[int]) -> None:
    """Publish each still-queued job to its target's runner queue (one query and one write for all)."""
    jobs = list(
        # The target's vendor names its queue; the program and any earlier plan are read by the reveal plan.
        Job.objects.select_related("campaign__target__vendor", "campaign__program", "reveal_plan")
        .filter(pk__in=job_ids, state=JobState.QUEUED)
        .order_by("pk")
    )  # cancelled or already taken meanwhile: left out
    if settings.CELERY_TASK_ALWAYS_EAGER:
        for job in jobs:
            if Job.objects.filter(pk=job.pk, state=JobState.QUEUED).exists():
                _reveal_plans([job])
                _run_in_process(job)
        return
    from certification.celery import app, embedded_broker_ready

    embedded_broker_ready()
    _reveal_plans(jobs)
    for job in jobs:
        hard = int(job.spec.get("limits", {}).get("time_s", 900))
        job.task_id = app.send_task(
            "runners.execute",
            args=[job.spec],
            queue=job.campaign.target.queue,
            soft_time_limit=_soft_limit(hard),
            time_limit=hard,
            # A message still queued when the job's deadline has passed is dropped by the runner unexecuted.
            expires=job.deadline_at,
            link=app.signature("runs.ingest", queue=PLATFORM_QUEUE),
        ).id
    Job.objects.bulk_update(jobs, ["task_id"])


def _reveal_plans(jobs: list[Job]) -> None:
    """The reveal's secret key for each job's attempt (drawn together), and their references computed
    while the runners run. Never in the way of the jobs: without a plan the reveal draws at ingestion
    and judges inline."""
    from apps.runs.services.reveal import reveal_plans_prepare_dispatch

    try:
        reveal_plans_prepare_dispatch(jobs=jobs)
    except Exception:
        if len(jobs) > 1:  # one job's failure must not cost the others their plans
            logger.warning(
                "could not draw the reveal plans of jobs %s together", [j.pk for j in jobs], exc_info=True
            )
            for job in jobs:
                _reveal_plans([job])
            return
        logger.exception(
            "no reveal plan for job %s: its reveal will be drawn and judged on arrival", jobs[0].pk
        )


def _run_in_process(job: Job) -> None:
    """The tests' in-process path: this machine is its own runner host (the key lives in var/, outside the DB)."""
    from apps.runs import tasks as platform_tasks
    from runners.signing import RunnerIdentity
    from runners.worker import run_job

    name = os.environ.get("RUNNER_NAME") or settings.EMBEDDED_RUNNER_NAME
    key_file = os.environ.get("RUNNER_KEY_FILE") or settings.EMBEDDED_RUNNER_KEY_FILE
    identity = RunnerIdentity.from_file(name, key_file)

    def report(task_name: str, message: dict) -> None:
        platform_tasks.RUNNER_MESSAGES[task_name].apply(args=[message], throw=True)

    # The device process started for the job may not read the key file (runners/device/sandbox.py).
    envelope = run_job(job.spec, identity=identity, report=report, protected_paths=[Path(key_file)])
    if envelope is not None:
        platform_tasks.ingest.apply(args=[envelope], throw=True)


def job_messages_revoke(*, task_ids: list[str]) -> None:
    """Tell runner workers to drop these jobs' queued messages and stop the ones running (broadcast; best
    effort: the runner checks for the signal between cases, and a late result is refused at ingestion)."""
    if not task_ids or settings.CELERY_TASK_ALWAYS_EAGER:
        return
    from certification.celery import app, embedded_broker_ready

    try:
        embedded_broker_ready()
        app.control.revoke(task_ids, terminate=True, signal=RUNNER_CANCEL_SIGNAL)
    except Exception:  # the broker being down must not undo a cancellation already committed
        logger.warning("could not broadcast the revocation of %s", task_ids, exc_info=True)
