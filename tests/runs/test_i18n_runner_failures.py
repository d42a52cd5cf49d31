"""A runner's own failure texts in zh-hans (issue 17): what runners/worker.py reports when it cannot run a
job (an unknown device backend, a job the platform revoked) reaches the platform as the runner's signed
message, is recorded as the job's error in the runner's English, and reads in Chinese on the campaign's
page (read back as phrases: runners/ has no Django). Strict: the sweep of tests/portal/test_i18n_pages.py."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.runs.models import Job, JobState
from apps.runs.services.campaigns import campaign_submit
from apps.runs.services.messages import runner_failure_receive, runner_progress_receive
from runners.worker import run_job
from tests.portal.test_i18n_pages import ZhSweep

pytestmark = pytest.mark.django_db


def submitted_job(world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):  # no runner: the job stays queued
        campaign = campaign_submit(
            vendor=world.vendor,
            target=world.target,
            program=world.program,
            level="basic",
            model_artifacts=[],
            submitted_by=world.engineer,
        )
    return campaign.jobs.get()


def delivered(name: str, message: dict) -> None:
    """The platform's side of the runner's report (the platform queue's tasks, in process)."""
    (runner_progress_receive if name == "runs.job_progress" else runner_failure_receive)(message=message)


def test_a_runners_failure_reads_in_zh_hans(cpu_world, django_capture_on_commit_callbacks):
    unknown = submitted_job(cpu_world, django_capture_on_commit_callbacks)
    revoked = submitted_job(cpu_world, django_capture_on_commit_callbacks)
    # No retry (an infrastructure failure is sent again while attempts remain): each failure is final.
    Job.objects.filter(pk__in=[unknown.pk, revoked.pk]).update(max_attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        spec = {**unknown.spec, "device": "nosuch"}
        assert run_job(spec, identity=cpu_world.identity, report=delivered) is None
        assert (
            run_job(revoked.spec, identity=cpu_world.identity, report=delivered, cancelled=lambda: True)
            is None
        )
    for job, english in ((unknown, "unknown device backend"), (revoked, "revoked the job")):
        job.refresh_from_db()
        assert job.state == JobState.FAILED and english in job.error_message, (job.state, job.error_message)
    sweep = ZhSweep()
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    client.force_login(cpu_world.engineer)
    for job in (unknown, revoked):
        sweep.get(client, f"/campaigns/{job.campaign_id}/")
    report = sweep.report()
    print(f"untranslated strings (a runner's failures): {len(report)}")
    print("\n".join(report))
    assert report == [], f"{len(report)} untranslated strings:\n" + "\n".join(report)
