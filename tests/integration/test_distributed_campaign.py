"""The distributed path for real: a platform worker and a runner worker (subprocesses) on a real
broker and PostgreSQL, a campaign submitted over the API, signed evidence verified and ingested."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from django.conf import settings as django_settings

from apps.registry.models import Runner, RunnerStatus
from apps.runs.models import Campaign, CampaignState, EvidenceRejection, Job, JobState, ResultDocument
from apps.runs.services.sweeps import jobs_sweep_stuck
from tests.integration.workers import ROOT, platform_env, platform_worker, runner_worker, wait_for
from tests.runs.broker import drop_connections
from tests.runs.world import make_world

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
REVIEW_OR_LATER = {CampaignState.AWAITING_REVIEW, CampaignState.APPROVED, CampaignState.REJECTED}


@pytest.fixture
def world(postgres_only, tmp_path, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    slug = f"it-{uuid.uuid4().hex[:8]}"
    world = make_world(slug=slug)
    key_file = tmp_path / "runner.pem"
    key_file.write_bytes(
        world.identity.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    world.key_file = key_file
    return world


def use_broker(url: str) -> None:
    from certification.celery import app

    if app.conf.broker_url == url:
        return
    # The test process publishes to this broker; drop connections made to any other one.
    app.conf.broker_url = url
    drop_connections(app)


def submit_over_api(client_for, world, level="basic"):
    response = client_for(world.engineer).post(
        "/api/v1/campaigns/", {"target": world.target.slug, "program": "TST", "level": level}, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def test_a_campaign_reaches_review_with_signed_verified_evidence_on_redis(
    world, redis_url, client_for, tmp_path
):
    use_broker(redis_url)
    workers = [
        platform_worker(redis_url, tmp_path / "var", django_settings.MEDIA_ROOT),
        runner_worker(redis_url, world.target.queue, world.identity.name, world.key_file),
    ]
    try:
        for worker in workers:
            worker.wait_ready()
        campaign_id = submit_over_api(client_for, world)
        campaign = wait_for(
            lambda: Campaign.objects.filter(pk=campaign_id, state__in=REVIEW_OR_LATER).first(),
            240,
            "the campaign to reach review",
            workers,
        )
        job = Job.objects.get(campaign=campaign)
        assert job.state == JobState.SUCCEEDED and job.attempts == 1
        document = ResultDocument.objects.get(job=job)
        assert document.runner.name == world.identity.name and document.spot_check["sampled"]
        assert document.cases.count() > 0
        wait_for(
            lambda: Runner.objects.filter(
                pk=world.runner.pk, status=RunnerStatus.ONLINE, last_heartbeat_at__isnull=False
            ).exists(),
            30,
            "a heartbeat",
            workers,
        )
    finally:
        for worker in workers:
            worker.stop()


def test_a_runner_killed_mid_job_leaves_a_retried_job_and_no_partial_evidence(
    world, redis_url, client_for, tmp_path, settings
):
    use_broker(redis_url)
    # A level long enough to be killed in the middle of.
    level = world.program.definition["levels"][0]
    level["suites"]["conformance"]["kernels"] = ["rms_norm", "silu", "add", "softmax"]
    world.program.definition = world.program.definition
    world.program.save()
    platform = platform_worker(redis_url, tmp_path / "var", django_settings.MEDIA_ROOT)
    runner = runner_worker(redis_url, world.target.queue, world.identity.name, world.key_file)
    workers = [platform, runner]
    try:
        platform.wait_ready()
        runner.wait_ready()
        campaign_id = submit_over_api(client_for, world)
        job = wait_for(
            lambda: Job.objects.filter(
                campaign_id=campaign_id, state=JobState.RUNNING, progress__gt=0
            ).first(),
            120,
            "the job to run",
            workers,
        )
        first_challenge = job.challenge
        runner.kill()
        assert not ResultDocument.objects.filter(job=job).exists()
        # The stuck-job sweep requeues a silent job with a fresh challenge; a new runner host takes it.
        settings.JOB_SILENCE_S = 0
        assert jobs_sweep_stuck() == 1
        job.refresh_from_db()
        assert job.state == JobState.QUEUED and job.challenge != first_challenge
        replacement = runner_worker(redis_url, world.target.queue, world.identity.name, world.key_file)
        workers.append(replacement)
        replacement.wait_ready()
        wait_for(
            lambda: Campaign.objects.filter(pk=campaign_id, state__in=REVIEW_OR_LATER).exists(),
            300,
            "the retried campaign to reach review",
            workers,
        )
        job.refresh_from_db()
        assert job.state == JobState.SUCCEEDED and job.attempts == 2
        assert ResultDocument.objects.filter(job=job).count() == 1
        assert not EvidenceRejection.objects.filter(job=job).exclude(reason__contains="challenge").exists()
    finally:
        for worker in workers:
            worker.stop()


def test_certify_follows_a_campaign_through_rabbitmq(world, rabbitmq_url, tmp_path):
    workers = [
        platform_worker(rabbitmq_url, tmp_path / "var", django_settings.MEDIA_ROOT),
        runner_worker(rabbitmq_url, world.target.queue, world.identity.name, world.key_file),
    ]
    try:
        for worker in workers:
            worker.wait_ready()
        env = platform_env(rabbitmq_url, tmp_path / "var", django_settings.MEDIA_ROOT)
        result = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "certify",
                world.target.slug,
                "--program",
                "TST",
                "--level",
                "basic",
                "--timeout",
                "300",
            ],
            cwd=ROOT,
            env={**__import__("os").environ, **env},
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert result.returncode == 0, result.stdout + result.stderr + "\n".join(w.output for w in workers)
        assert "Awaiting review" in result.stdout
        campaign = Campaign.objects.get(target=world.target)
        assert campaign.state == CampaignState.AWAITING_REVIEW
        assert ResultDocument.objects.filter(job__campaign=campaign).count() == 1
    finally:
        for worker in workers:
            worker.stop()
