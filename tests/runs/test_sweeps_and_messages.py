"""The scheduled sweeps and the runners' signed messages (heartbeats, progress, failures)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.registry.models import Runner, RunnerStatus
from apps.runs.models import ErrorClass, Job, JobState
from apps.runs.services import messages
from apps.runs.services.campaigns import campaign_submit
from apps.runs.services.messages import (
    runner_failure_receive,
    runner_heartbeat_receive,
    runner_progress_receive,
)
from apps.runs.services.sweeps import jobs_sweep_stuck, runners_mark_stale
from runners.spec import attempt_tag
from runners.worker import signed_message
from tests.runs.world import identity_for


def queued_job(world) -> Job:
    campaign = campaign_submit(
        vendor=world.vendor,
        target=world.target,
        program=world.program,
        level="basic",
        model_artifacts=[],
        submitted_by=world.engineer,
    )
    return campaign.jobs.get()


def test_a_signed_heartbeat_marks_the_runner_online_with_its_fingerprint(cpu_world):
    runner_heartbeat_receive(
        message=signed_message(cpu_world.identity, {"fingerprints": [{"backend": "cpu"}]})
    )
    runner = Runner.objects.get(pk=cpu_world.runner.pk)
    assert runner.status == RunnerStatus.ONLINE and runner.last_heartbeat_at is not None
    assert runner.last_fingerprint == {"devices": [{"backend": "cpu"}]}


def test_a_heartbeat_signed_by_another_key_is_dropped(cpu_world):
    impostor, _ = identity_for(cpu_world.identity.name)
    runner_heartbeat_receive(message=signed_message(impostor, {"fingerprints": []}))
    assert Runner.objects.get(pk=cpu_world.runner.pk).status == RunnerStatus.PENDING


def test_progress_claims_the_job_once_and_a_failure_report_must_carry_the_current_challenge(
    cpu_world, django_capture_on_commit_callbacks
):
    job = queued_job(cpu_world)
    runner_progress_receive(
        message=signed_message(
            cpu_world.identity, {"job_id": job.pk, "attempt": attempt_tag(job.challenge), "fraction": 0.5}
        )
    )
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.attempts == 1 and job.runner_id == cpu_world.runner.pk
    stale = signed_message(
        cpu_world.identity,
        {"job_id": job.pk, "challenge": "0" * 64, "error_class": "product_failure", "message": "old attempt"},
    )
    runner_failure_receive(message=stale)
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING
    with django_capture_on_commit_callbacks(execute=False):
        runner_failure_receive(
            message=signed_message(
                cpu_world.identity,
                {
                    "job_id": job.pk,
                    "challenge": job.challenge,
                    "error_class": "product_failure",
                    "message": "NaN",
                },
            )
        )
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.error_class == ErrorClass.PRODUCT_FAILURE


def test_a_stale_runner_goes_offline_and_its_running_job_is_requeued_with_a_fresh_challenge(
    cpu_world, django_capture_on_commit_callbacks
):
    job = queued_job(cpu_world)
    runner_progress_receive(
        message=signed_message(
            cpu_world.identity, {"job_id": job.pk, "attempt": attempt_tag(job.challenge), "fraction": 0.1}
        )
    )
    Runner.objects.filter(pk=cpu_world.runner.pk).update(
        last_heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    old_challenge = Job.objects.get(pk=job.pk).challenge
    with django_capture_on_commit_callbacks(execute=False):
        assert runners_mark_stale() == 1
    assert Runner.objects.get(pk=cpu_world.runner.pk).status == RunnerStatus.OFFLINE
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and job.challenge != old_challenge
    assert job.spec["challenge"] == job.challenge and job.error_class == ErrorClass.INFRASTRUCTURE


def test_a_job_past_its_deadline_fails_as_a_timeout(cpu_world, django_capture_on_commit_callbacks):
    job = queued_job(cpu_world)
    Job.objects.filter(pk=job.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=False):
        assert jobs_sweep_stuck() == 1
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.error_class == ErrorClass.TIMEOUT


def test_a_recent_sign_of_life_is_not_written_again_but_an_old_or_offline_one_is(
    cpu_world, settings, django_assert_num_queries
):
    """Issue 13: every verified message (progress, reveal answer) used to UPDATE the runner row. One
    recorded less than a tenth of the stale window ago is kept; an older one, or an offline runner's, is
    refreshed, so the stale sweep never sees a live runner as stale."""
    settings.RUNNER_STALE_AFTER_S = 180
    message = signed_message(cpu_world.identity, {"fingerprints": [{"backend": "cpu"}]})
    recent = timezone.now() - timedelta(seconds=5)
    Runner.objects.filter(pk=cpu_world.runner.pk).update(status=RunnerStatus.ONLINE, last_heartbeat_at=recent)
    _, payload = messages._verified_payload(message)
    assert payload["fingerprints"] == [{"backend": "cpu"}]
    assert Runner.objects.get(pk=cpu_world.runner.pk).last_heartbeat_at == recent  # not written again

    old = timezone.now() - timedelta(seconds=30)  # more than 18 s (a tenth of 180 s) ago
    Runner.objects.filter(pk=cpu_world.runner.pk).update(last_heartbeat_at=old)
    messages._verified_payload(message)
    assert Runner.objects.get(pk=cpu_world.runner.pk).last_heartbeat_at > old

    Runner.objects.filter(pk=cpu_world.runner.pk).update(
        status=RunnerStatus.OFFLINE, last_heartbeat_at=recent
    )
    messages._verified_payload(message)
    runner = Runner.objects.get(pk=cpu_world.runner.pk)
    assert runner.status == RunnerStatus.ONLINE and runner.last_heartbeat_at > recent
    # A recent sign of life costs the message one statement (the runner's key), not two.
    Runner.objects.filter(pk=cpu_world.runner.pk).update(last_heartbeat_at=timezone.now())
    with django_assert_num_queries(1):
        messages._verified_payload(message)
    # A heartbeat always records its sign of life.
    Runner.objects.filter(pk=cpu_world.runner.pk).update(last_heartbeat_at=recent)
    runner_heartbeat_receive(message=message)
    assert Runner.objects.get(pk=cpu_world.runner.pk).last_heartbeat_at > recent
