"""The embedded default for real: no broker server, `manage.py embedded_worker` runs the platform's and
the local runner's Celery workers on the broker in files; a cancel stops the running job's work, and
the next campaign goes through the same signed path to review."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from django.conf import settings as django_settings

from apps.registry.models import Runner, RunnerStatus
from apps.runs.models import Campaign, CampaignState, Job, JobState, ResultDocument
from runners.catalog import KERNELS
from tests.integration import workers
from tests.integration.workers import ROOT, Worker, wait_for
from tests.runs.broker import filesystem_broker
from tests.runs.world import make_world

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
REVIEW_OR_LATER = {CampaignState.AWAITING_REVIEW, CampaignState.APPROVED, CampaignState.REJECTED}


class EmbeddedWorker(Worker):
    """`manage.py embedded_worker` (it starts both Celery workers as its children)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.name, self.lines = "embedded", []
        clean = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"}
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "embedded_worker", "--log-level", "info"],
            cwd=ROOT,
            env={**clean, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        import threading

        threading.Thread(target=self._read, daemon=True).start()

    def wait_ready(self, timeout: float = 120) -> None:
        wait_for(
            lambda: sum(" ready." in line for line in self.lines) >= 2, timeout, "both workers ready", [self]
        )


@pytest.fixture
def world(postgres_only, tmp_path, settings):
    from certification.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    world = make_world(slug=f"emb-{uuid.uuid4().hex[:8]}")
    key_file = tmp_path / "runner.pem"
    key_file.write_bytes(
        world.identity.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    settings.EMBEDDED_BROKER_DIR = tmp_path / "broker"
    with filesystem_broker(app, tmp_path / "broker", settings):
        world.env = {
            "DATABASE_URL": workers.test_database_url(),
            "CERT_VAR_DIR": str(tmp_path / "var"),
            "SECRET_KEY": "embedded-test",
            "ARTIFACT_STORAGE_DIR": str(django_settings.MEDIA_ROOT),
            "EMBEDDED_BROKER_DIR": str(tmp_path / "broker"),
            "EMBEDDED_RUNNER_NAME": world.identity.name,
            "EMBEDDED_RUNNER_KEY_FILE": str(key_file),
            "RUNNER_HEARTBEAT_SECONDS": "2",
        }
        yield world


def submit(client_for, world, level):
    response = client_for(world.engineer).post(
        "/api/v1/campaigns/", {"target": world.target.slug, "program": "TST", "level": level}, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def test_the_embedded_worker_stops_a_cancelled_job_and_takes_the_next_campaign_to_review(world, client_for):
    # A level long enough to cancel in the middle of: every float32 kernel of the catalog.
    long_level = dict(world.program.definition["levels"][0], code="long", rank=2)
    long_level["suites"] = {
        "conformance": {
            "dtypes": ["float32"],
            "kernels": [name for name, kernel in KERNELS.items() if "float32" in kernel.dtypes],
        }
    }
    world.program.definition = {
        **world.program.definition,
        "levels": [*world.program.definition["levels"], long_level],
    }
    world.program.save()
    embedded = EmbeddedWorker(world.env)
    try:
        embedded.wait_ready()
        long_id = submit(client_for, world, "long")
        job = wait_for(
            lambda: Job.objects.filter(campaign_id=long_id, state=JobState.RUNNING, progress__gt=0).first(),
            180,
            "the long job to run",
            [embedded],
        )
        response = client_for(world.engineer).post(
            f"/api/v1/campaigns/{long_id}/cancel/", {"reason": "wrong level"}, format="json"
        )
        assert response.status_code == 200, response.content
        cancelled_at = time.monotonic()
        wait_for(
            lambda: any("stopped: the platform cancelled it" in line for line in embedded.lines),
            60,
            "the runner to stop the cancelled job",
            [embedded],
        )
        stopped_after = time.monotonic() - cancelled_at
        job.refresh_from_db()
        assert job.state == JobState.CANCELLED and job.progress < 1.0
        assert not ResultDocument.objects.filter(job=job).exists()

        basic_id = submit(client_for, world, "basic")
        campaign = wait_for(
            lambda: Campaign.objects.filter(pk=basic_id, state__in=REVIEW_OR_LATER).first(),
            240,
            "the next campaign to reach review",
            [embedded],
        )
        basic_job = Job.objects.get(campaign=campaign)
        assert basic_job.state == JobState.SUCCEEDED and basic_job.last_seen_at is not None
        assert ResultDocument.objects.get(job=basic_job).runner.name == world.identity.name
        assert Runner.objects.get(pk=world.runner.pk).status == RunnerStatus.ONLINE
        print(f"cancelled job stopped {stopped_after:.1f}s after the cancel request")
    finally:
        embedded.stop()
    assert embedded.process.returncode is not None
