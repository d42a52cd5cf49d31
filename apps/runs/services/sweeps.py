"""Scheduled maintenance: stale runners and stuck jobs (run by Celery beat, editable in the admin)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.audit.services import audit_record
from apps.registry.models import Runner, RunnerStatus
from apps.runs.models import ErrorClass, Job, JobState
from apps.runs.services.campaigns import job_fail
from certification.recorded_text import say


def runners_mark_stale(*, now=None) -> int:
    """Runners whose last heartbeat is older than RUNNER_STALE_AFTER_S go offline; their running jobs
    are requeued (with a fresh challenge) or failed as infrastructure errors after the last attempt."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.RUNNER_STALE_AFTER_S)
    stale = list(
        Runner.objects.filter(status=RunnerStatus.ONLINE).filter(
            Q(last_heartbeat_at__lt=cutoff) | Q(last_heartbeat_at__isnull=True)
        )
    )
    for runner in stale:
        if Runner.objects.filter(pk=runner.pk, status=RunnerStatus.ONLINE).update(
            status=RunnerStatus.OFFLINE
        ):
            audit_record(
                action="runner.offline", obj=runner, payload={"last_heartbeat_at": runner.last_heartbeat_at}
            )
        # A job awaiting its reveal has its evidence: the reveal's own deadline settles it.
        running = Job.objects.filter(runner=runner, state=JobState.RUNNING, document__isnull=True)
        for job_id in running.values_list("pk", flat=True):
            job_fail(
                job_id=job_id,
                error_class=ErrorClass.INFRASTRUCTURE,
                message=say("job.runner_silent", runner=runner.name),
                retry=True,
            )
    return len(stale)


def jobs_sweep_stuck(*, now=None) -> int:
    """Jobs past their deadline fail as timeouts; running jobs with no sign of life (signed progress or
    heartbeat naming the attempt) for JOB_SILENCE_S are requeued; reveals past their deadline fail their
    job as a timeout."""
    from apps.runs.services.reveal import reveals_expire, reveals_publish_waiting

    now = now or timezone.now()
    # Jobs awaiting a reveal (their document stored) fail only when the reveal's deadline passes.
    count = reveals_expire(now=now)
    for job_id in Job.objects.filter(
        state__in=[JobState.QUEUED, JobState.RUNNING], deadline_at__lt=now, document__isnull=True
    ).values_list("pk", flat=True):
        job_fail(job_id=job_id, error_class=ErrorClass.TIMEOUT, message=say("job.deadline_passed"))
        count += 1
    silent_since = now - timedelta(seconds=settings.JOB_SILENCE_S)
    # Liveness is the last signed progress or heartbeat of the attempt, not the last save of the row.
    silent = (
        Job.objects.filter(state=JobState.RUNNING, document__isnull=True)
        .annotate(seen=Coalesce("last_seen_at", "started_at"))
        .filter(Q(seen__lt=silent_since) | Q(seen__isnull=True))
    )
    for job_id in silent.values_list("pk", flat=True):
        job_fail(
            job_id=job_id,
            error_class=ErrorClass.INFRASTRUCTURE,
            message=say("job.requeued_silent"),
            retry=True,
        )
        count += 1
    # Drawn reveals still waiting for a job's evidence that will not come by a path that did not publish
    # them (a cancelled job): published once nothing of their campaign is queued or running without it.
    reveals_publish_waiting()
    return count
