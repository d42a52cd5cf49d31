"""Messages that move jobs: only signed runner messages (naming the current attempt) or the platform's
own do; liveness comes from progress and heartbeats; runner messages expire; cancellation stops a
running job between cases."""

from __future__ import annotations

import logging
import os
import signal
from datetime import timedelta

import pytest
from celery.exceptions import TimeLimitExceeded
from cryptography.hazmat.primitives import serialization
from django.utils import timezone

from apps.runs import tasks
from apps.runs.models import CampaignState, ErrorClass, Job, JobState
from apps.runs.services.campaigns import campaign_submit, job_claim
from apps.runs.services.messages import runner_heartbeat_receive, runner_progress_receive
from apps.runs.services.sweeps import jobs_sweep_stuck
from runners import worker
from runners.spec import attempt_tag
from runners.worker import run_job, signed_message
from tests.runs.broker import filesystem_broker, published
from tests.runs.world import identity_for


def submit(world):
    return campaign_submit(
        vendor=world.vendor,
        target=world.target,
        program=world.program,
        level="basic",
        model_artifacts=[],
        submitted_by=world.engineer,
    )


@pytest.fixture
def job(cpu_world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):  # no runner: the job stays queued
        return submit(cpu_world).jobs.get()


def progress(world, job, fraction=0.5, *, attempt=None, identity=None):
    runner_progress_receive(
        message=signed_message(
            identity or world.identity,
            {"job_id": job.pk, "attempt": attempt or attempt_tag(job.challenge), "fraction": fraction},
        )
    )


def minutes_ago(minutes: float):
    return timezone.now() - timedelta(minutes=minutes)


# 12.2: no unsigned message moves a job.


def test_an_unsigned_errback_message_moves_no_job(cpu_world, job, caplog):
    progress(cpu_world, job)
    job.refresh_from_db()
    before = (job.state, job.challenge, job.attempts)
    with caplog.at_level(logging.WARNING, logger="apps.runs.tasks"):
        for _ in range(job.max_attempts + 1):  # what a broker client could send, as often as it likes
            tasks.job_errback.apply(args=["forged-task-id"], kwargs={"job_id": job.pk})
    job.refresh_from_db()
    assert (job.state, job.challenge, job.attempts) == before
    assert "refused an unsigned runs.job_errback" in caplog.text


def test_a_runner_task_past_its_hard_time_limit_reports_a_signed_failure(
    cpu_world, job, tmp_path, monkeypatch
):
    key_file = tmp_path / "runner.pem"
    key_file.write_bytes(
        cpu_world.identity.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    monkeypatch.setenv("RUNNER_NAME", cpu_world.identity.name)
    monkeypatch.setenv("RUNNER_KEY_FILE", str(key_file))
    progress(cpu_world, job)
    job.refresh_from_db()
    with filesystem_broker(worker.app, tmp_path / "broker"):
        # What the runner worker's main process calls once it has killed the job's process.
        worker.execute.on_failure(TimeLimitExceeded(900), "task-1", [job.spec], {}, None)
    [message] = published(tmp_path / "broker", "platform")
    assert message["task"] == "runs.job_failed" and message["args"][0]["signature"]
    tasks.job_failed.apply(args=message["args"])
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.error_class == ErrorClass.TIMEOUT
    assert "hard time limit" in job.error_message


def test_a_runner_message_expires_at_the_job_deadline_and_carries_no_unsigned_errback(
    cpu_world, settings, tmp_path, django_capture_on_commit_callbacks
):
    from certification.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    with (
        filesystem_broker(app, tmp_path / "broker", settings),
        django_capture_on_commit_callbacks(execute=True),
    ):
        job = submit(cpu_world).jobs.get()
    [message] = published(tmp_path / "broker", cpu_world.target.queue)
    job.refresh_from_db()
    assert message["task"] == "runners.execute" and message["id"] == job.task_id
    assert message["expires"] == job.deadline_at.isoformat()
    assert not message["embed"].get("errbacks"), (
        "failures come back signed by the runner, not as a bare job id"
    )
    assert job.state == JobState.QUEUED and job.started_at is None, "publishing ran nothing"


# 12.3: liveness is signed progress and heartbeats of the current attempt; only silent jobs are requeued.


def test_progress_keeps_a_long_running_job_alive_and_the_sweep_requeues_only_silent_jobs(
    cpu_world, job, settings, django_capture_on_commit_callbacks
):
    settings.JOB_SILENCE_S = 900
    progress(cpu_world, job, 0.1)
    # Started 40 minutes ago and last saved then; it reported progress a moment ago.
    Job.objects.filter(pk=job.pk).update(
        started_at=minutes_ago(40), updated_at=minutes_ago(40), last_seen_at=minutes_ago(40)
    )
    progress(cpu_world, job, 0.6)
    with django_capture_on_commit_callbacks(execute=False):
        assert jobs_sweep_stuck() == 0
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING

    Job.objects.filter(pk=job.pk).update(last_seen_at=minutes_ago(16))
    with django_capture_on_commit_callbacks(execute=False):
        assert jobs_sweep_stuck() == 1
    requeued = Job.objects.get(pk=job.pk)
    assert requeued.state == JobState.QUEUED and requeued.challenge != job.challenge


def test_a_heartbeat_naming_the_running_attempt_keeps_it_alive(
    cpu_world, job, settings, django_capture_on_commit_callbacks
):
    settings.JOB_SILENCE_S = 900
    progress(cpu_world, job)
    Job.objects.filter(pk=job.pk).update(last_seen_at=minutes_ago(20))
    impostor, _ = identity_for(cpu_world.identity.name)
    for identity, attempt in [
        (impostor, attempt_tag(job.challenge)),
        (cpu_world.identity, attempt_tag("0" * 64)),
    ]:
        runner_heartbeat_receive(
            message=signed_message(
                identity, {"fingerprints": [], "jobs": [{"job_id": job.pk, "attempt": attempt}]}
            )
        )
    assert Job.objects.get(pk=job.pk).last_seen_at < minutes_ago(19), (
        "neither a forged nor a stale heartbeat counts"
    )
    runner_heartbeat_receive(
        message=signed_message(
            cpu_world.identity,
            {"fingerprints": [], "jobs": [{"job_id": job.pk, "attempt": attempt_tag(job.challenge)}]},
        )
    )
    with django_capture_on_commit_callbacks(execute=False):
        assert jobs_sweep_stuck() == 0
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING


def test_progress_of_an_earlier_attempt_neither_claims_nor_keeps_alive_the_current_one(cpu_world, job):
    stale = attempt_tag("f" * 64)
    progress(cpu_world, job, 0.4, attempt=stale)
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and job.attempts == 0 and job.last_seen_at is None
    assert job.campaign.state == CampaignState.QUEUED
    assert job_claim(job_id=job.pk, runner_id=cpu_world.runner.pk)
    Job.objects.filter(pk=job.pk).update(last_seen_at=minutes_ago(30))
    progress(cpu_world, job, 0.5, attempt=stale)
    assert Job.objects.get(pk=job.pk).last_seen_at < minutes_ago(29)


# 12.7: cancellation stops a running job's work.


@pytest.mark.slow
def test_the_runner_stops_at_the_next_case_when_the_cancel_signal_arrives(job, cpu_world):
    """The revoke's signal sets the flag; the suite stops between cases and reports it, signed."""
    previous = signal.getsignal(worker.CANCEL_SIGNAL)
    worker.install_cancel_handler()
    sent: list[tuple[str, dict]] = []

    def report(name: str, message: dict) -> None:
        sent.append((name, message))
        if name == "runs.job_progress" and len(sent) == 1:
            os.kill(os.getpid(), worker.CANCEL_SIGNAL)  # what `revoke(terminate=True, signal=SIGUSR2)` does

    try:
        envelope = run_job(
            job.spec, identity=cpu_world.identity, report=report, cancelled=worker._cancel_requested.is_set
        )
    finally:
        signal.signal(worker.CANCEL_SIGNAL, previous)
        worker._cancel_requested.clear()
    assert envelope is None, "a cancelled job produces no evidence"
    name, message = sent[-1]
    assert name == "runs.job_failed" and "revoked" in message["payload_json"]
    assert [n for n, _ in sent].count("runs.job_progress") == 1, "no case ran after the signal"
