"""Campaign submission over the API, its guarded transitions, and the embedded in-process pipeline."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from apps.audit.services import audit_chain_verify
from apps.runs.models import Campaign, CampaignState, ErrorClass, Job, JobState, ResultDocument
from apps.runs.services.campaigns import job_fail
from tests.factories import ChipFactory, HardwareTargetFactory, ModelArtifactFactory
from tests.runs.world import EVALUATED

URL = "/api/v1/campaigns/"


@pytest.fixture
def embedded_runner(cpu_world, settings, tmp_path):
    """This process is the runner host: the world's runner key sits in a file, as in `make run`."""
    key_file = tmp_path / "runner.pem"
    key_file.write_bytes(
        cpu_world.identity.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    settings.EMBEDDED_RUNNER_NAME = cpu_world.identity.name
    settings.EMBEDDED_RUNNER_KEY_FILE = key_file
    return cpu_world


def submit(client, **overrides):
    body = {"target": "cpu-test", "program": "TST", "level": "basic", **overrides}
    return client.post(URL, body, format="json")


@pytest.mark.slow
def test_a_vendor_submits_a_campaign_and_the_embedded_pipeline_runs_it(
    embedded_runner, client_for, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = submit(client_for(embedded_runner.engineer))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "challenge" not in str(body), "the secret challenge never leaves the platform through the API"
    campaign = Campaign.objects.get(pk=body["id"])
    job = campaign.jobs.get()
    assert job.state == JobState.SUCCEEDED and job.attempts == 1
    assert ResultDocument.objects.filter(job=job).exists()
    assert campaign.state == CampaignState.EVALUATING and EVALUATED == [campaign.pk]
    detail = client_for(embedded_runner.engineer).get(f"{URL}{campaign.pk}/").json()
    assert detail["jobs"][0]["progress"] == 1.0
    assert detail["jobs"][0]["document_sha256"] == job.document.sha256
    assert audit_chain_verify().ok


def test_each_job_gets_its_own_fresh_challenge(cpu_world, client_for):
    first = submit(client_for(cpu_world.engineer)).json()["id"]
    second = submit(client_for(cpu_world.engineer)).json()["id"]
    challenges = list(Job.objects.filter(campaign_id__in=[first, second]).values_list("challenge", flat=True))
    assert len(set(challenges)) == len(challenges) == 2
    assert all(len(c) == 64 for c in challenges)


def test_a_campaign_for_a_foreign_target_is_a_404(cpu_world, client_for):
    response = submit(client_for(cpu_world.foreign_engineer))
    assert response.status_code == 404
    assert Campaign.objects.count() == 0


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"program": "NOPE"}, "program"),
        ({"program_version": "9.9"}, "program"),
        ({"level": "platinum"}, "level"),
        ({"models": [999999]}, "models"),
        ({"models": "abc"}, "models"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_submissions_are_400_with_the_field_named(cpu_world, client_for, overrides, field):
    response = submit(client_for(cpu_world.engineer), **overrides)
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]
    assert Campaign.objects.count() == 0 and Job.objects.count() == 0


def test_a_foreign_model_cannot_be_used(cpu_world, client_for):
    foreign_model = ModelArtifactFactory(owner=cpu_world.foreign_engineer.membership.organization)
    response = submit(client_for(cpu_world.engineer), models=[foreign_model.pk])
    assert response.status_code == 400
    assert "models" in response.json()["errors"]


@pytest.mark.parametrize("who, status", [("reviewer", 403), ("foreign_engineer", 404)])
def test_only_the_targets_vendor_may_submit(cpu_world, client_for, who, status):
    assert submit(client_for(getattr(cpu_world, who))).status_code == status


def test_anonymous_users_see_no_campaigns(cpu_world, client_for):
    assert client_for(None).get(URL).status_code == 401


def test_vendors_see_only_their_campaigns_and_the_authority_sees_all(cpu_world, client_for):
    campaign_id = submit(client_for(cpu_world.engineer)).json()["id"]
    other_target = HardwareTargetFactory(
        chip=ChipFactory(vendor=cpu_world.foreign_engineer.membership.organization)
    )
    assert other_target
    assert [c["id"] for c in client_for(cpu_world.engineer).get(URL).json()["results"]] == [campaign_id]
    assert client_for(cpu_world.foreign_engineer).get(URL).json()["results"] == []
    assert client_for(cpu_world.foreign_engineer).get(f"{URL}{campaign_id}/").status_code == 404
    assert client_for(cpu_world.reviewer).get(f"{URL}{campaign_id}/").status_code == 200


def test_a_vendor_cancels_a_queued_campaign_once(cpu_world, client_for):
    client = client_for(cpu_world.engineer)
    campaign_id = submit(client).json()["id"]
    response = client.post(f"{URL}{campaign_id}/cancel/", {"reason": "wrong driver"}, format="json")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert all(job["state"] == "cancelled" for job in response.json()["jobs"])
    again = client.post(f"{URL}{campaign_id}/cancel/", {}, format="json")
    assert again.status_code == 400


def test_a_failed_job_is_rerun_with_a_fresh_challenge(
    cpu_world, client_for, django_capture_on_commit_callbacks
):
    client = client_for(cpu_world.engineer)
    campaign_id = submit(client).json()["id"]
    job = Job.objects.get(campaign_id=campaign_id)
    with django_capture_on_commit_callbacks(execute=True):
        job_fail(job_id=job.pk, error_class=ErrorClass.TIMEOUT, message="took too long")
    assert Campaign.objects.get(pk=campaign_id).state == CampaignState.FAILED
    old_challenge = job.challenge
    response = client.post(f"/api/v1/jobs/{job.pk}/rerun/")
    assert response.status_code == 200, response.json()
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and job.challenge != old_challenge
    assert job.spec["challenge"] == job.challenge
    assert Campaign.objects.get(pk=campaign_id).state == CampaignState.RUNNING
    assert client.post(f"/api/v1/jobs/{job.pk}/rerun/").status_code == 400, "only a failed job is re-run"


def test_the_program_catalogue_is_public(cpu_world, client_for):
    response = client_for(None).get("/api/v1/programs/")
    assert response.status_code == 200
    assert response.json()["results"][0]["code"] == "TST"
    assert client_for(None).get("/api/v1/programs/TST-1.0/").json()["levels"][0]["code"] == "basic"


def test_the_campaign_list_runs_a_constant_number_of_queries(
    cpu_world, client_for, django_assert_max_num_queries, settings
):
    settings.MAX_OPEN_CAMPAIGNS_PER_TARGET = 10  # eight open campaigns on one target
    client = client_for(cpu_world.engineer)
    for _ in range(2):
        submit(client)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        client.get(URL)
    for _ in range(6):
        submit(client)
    with CaptureQueriesContext(connection) as many:
        assert len(client.get(URL).json()["results"]) == 8
    assert len(many) == len(few)


def test_progress_reports_an_eta_extrapolated_from_the_elapsed_time(cpu_world, client_for):
    from datetime import timedelta

    from django.utils import timezone

    from apps.runs.services.campaigns import job_claim, job_progress

    campaign_id = submit(client_for(cpu_world.engineer)).json()["id"]
    job = Job.objects.get(campaign_id=campaign_id)
    assert job_claim(job_id=job.pk)
    assert not job_claim(job_id=job.pk), "a job is claimed once"
    Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(seconds=30))
    job_progress(job_id=job.pk, fraction=0.25, message="matmul")
    body = client_for(cpu_world.engineer).get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["state"] == "running" and body["progress"] == 0.25 and body["attempts"] == 1
    assert 85 <= body["eta_seconds"] <= 95
