"""Commit and reveal through the real workers: the platform draws the reveal's secret plan when it
dispatches the job and a platform worker computes the predicted sample's references while the runner
runs (`runs.reveal_prepare`); the runner worker keeps its outputs on disk, the platform worker ingests
the commitment, takes the sample in the plan's order and, the campaign's last job's evidence being in,
sends its request (`runners.reveal_many`) to the target's queue, the runner answers signed, and the
platform worker judges the revealed outputs itself."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from django.conf import settings as django_settings

from apps.runs.models import (
    Campaign,
    CampaignState,
    Job,
    JobState,
    OutputReveal,
    RevealPlan,
    RevealPlanState,
    RevealState,
)
from apps.runs.services.programs import PROGRAMS_DIR, program_reveal_policy
from runners.spec import attempt_tag
from tests.integration.test_distributed_campaign import REVIEW_OR_LATER, submit_over_api, use_broker
from tests.integration.workers import platform_worker, runner_worker, wait_for
from tests.runs.world import make_world

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
REVEAL_SIZE = 6


@pytest.fixture
def world(postgres_only, tmp_path, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    world = make_world(slug=f"it-{uuid.uuid4().hex[:8]}")
    key_file = tmp_path / "runner.pem"
    key_file.write_bytes(
        world.identity.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    world.key_file = key_file
    # The test program's level, with AIA 1.2's stated thresholds and its reveal blocker.
    baseline = json.loads(Path(PROGRAMS_DIR, "aia-1.2.json").read_text())["levels"][0]
    thresholds = copy.deepcopy(baseline["thresholds"])
    # Only the size changes: the rest of the level's reveal policy (rule, recomputation budget) is 1.2's.
    thresholds["reveal_sample"]["value"]["size"] = REVEAL_SIZE
    thresholds["unsupported_tolerated"]["value"] = {"float32": 0}
    level = world.program.definition["levels"][0]
    level["thresholds"] = thresholds
    level["criteria"].append(
        {
            "id": "T2",
            "title": "Commit and reveal",
            "kind": "integrity",
            "blocker": True,
            "params": {"check": "reveal"},
        }
    )
    world.program.save()
    # Written straight to the row: read back here as ingestion reads it, so a policy the platform
    # cannot use fails the set-up instead of the platform worker's ingest, out of sight (it did: 1.2's
    # policy gained budget_elements after this test was written, ingest raised KeyError, no reveal
    # was ever drawn, and the failure read as "the runner never receives runners.reveal").
    policy = program_reveal_policy(program=world.program, level=level["code"])
    assert policy.size == REVEAL_SIZE and policy.budget_elements > 0
    return world


def test_the_runner_worker_reveals_the_sample_the_platform_worker_draws(
    world, redis_url, client_for, tmp_path
):
    use_broker(redis_url)
    outputs = tmp_path / "runner-outputs"
    workers = [
        platform_worker(redis_url, tmp_path / "var", django_settings.MEDIA_ROOT),
        runner_worker(redis_url, world.target.queue, world.identity.name, world.key_file, output_dir=outputs),
    ]
    try:
        for worker in workers:
            worker.wait_ready()
        campaign_id = submit_over_api(client_for, world)
        campaign = wait_for(
            lambda: Campaign.objects.filter(
                pk=campaign_id, state__in=[*REVIEW_OR_LATER, CampaignState.FAILED]
            ).first(),
            150,
            "the campaign to reach review after its reveal",
            workers,
        )
        job = Job.objects.get(campaign=campaign)
        assert campaign.state != CampaignState.FAILED, (
            campaign.state_reason,
            job.error_class,
            job.error_message,
        )
        job = Job.objects.get(campaign=campaign)
        assert job.state == JobState.SUCCEEDED
        reveal = OutputReveal.objects.get(job=job)
        assert reveal.state == RevealState.VERIFIED, reveal.findings
        assert len(reveal.requested) == REVEAL_SIZE and reveal.answered_at is not None
        assert all(c["digest_matches"] and c["agrees"] for c in reveal.checked)
        # Each verdict says which reference it rests on: precomputed by the platform worker while the
        # runner ran, or computed on arrival (the document came first). The plan is the attempt's.
        assert {c["reference"] for c in reveal.checked} <= {"precomputed", "inline"}
        plan = wait_for(
            lambda: RevealPlan.objects.filter(job=job, state=RevealPlanState.READY).first(),
            60,
            "the platform worker to compute the reveal's references",
            workers,
        )
        assert plan.challenge == job.challenge and plan.predicted and plan.references
        assert plan.sample_key not in json.dumps(job.spec)
        # The raw outputs lay on the runner host, one safetensors file per committed output.
        stored = list((outputs / attempt_tag(job.challenge)).glob("*.safetensors"))
        assert len(stored) == reveal.committed > REVEAL_SIZE
        assert campaign.state == CampaignState.AWAITING_REVIEW
        assert campaign.criterion_results.get(criterion_id="T2").outcome == "pass"
    finally:
        for worker in workers:
            worker.stop()
