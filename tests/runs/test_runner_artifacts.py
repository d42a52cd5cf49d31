"""Runner hosts without shared storage fetch model weights with a signed request, over real HTTP."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from apps.runs.models import Campaign, CampaignState, Job, JobState
from apps.runs.specs import model_entry
from runners.artifacts import ArtifactUnavailable, fetch, localize_models, signed_headers
from tests.factories import ModelArtifactFactory
from tests.runs.world import identity_for, make_world


@pytest.fixture
def model_job(transactional_db):
    world = make_world()
    artifact = ModelArtifactFactory(owner=world.vendor)
    campaign = Campaign.objects.create(
        vendor=world.vendor,
        target=world.target,
        program=world.program,
        level="basic",
        state=CampaignState.RUNNING,
    )
    job = Job.objects.create(
        campaign=campaign, suite="model", model=artifact, challenge="ab" * 32, state=JobState.QUEUED
    )
    return world, artifact, job


def test_a_bound_runner_fetches_the_weights_and_they_are_checked(model_job, live_server, tmp_path):
    world, artifact, _ = model_job
    entry = model_entry(artifact)
    path = fetch(
        live_server.url + entry["weights_url"],
        artifact.weights_sha256,
        identity=world.identity,
        cache_dir=tmp_path,
    )
    assert hashlib.sha256(path.read_bytes()).hexdigest() == artifact.weights_sha256
    assert (
        fetch(
            live_server.url + entry["weights_url"],
            artifact.weights_sha256,
            identity=world.identity,
            cache_dir=tmp_path,
        )
        == path
    ), "a cached artifact is not fetched twice"


def test_the_worker_localizes_weights_that_are_not_on_its_host(model_job, live_server, tmp_path):
    world, artifact, _ = model_job
    spec = {"suite": "model", "models": [{**model_entry(artifact), "weights_path": "/nowhere/w.safetensors"}]}
    local = localize_models(spec, identity=world.identity, platform_url=live_server.url, cache_dir=tmp_path)
    assert local["models"][0]["weights_path"].startswith(str(tmp_path))
    assert spec["models"][0]["weights_path"] == "/nowhere/w.safetensors", "the platform's spec is not changed"
    with pytest.raises(ArtifactUnavailable, match="PLATFORM_URL"):
        localize_models(spec, identity=world.identity, platform_url=None, cache_dir=tmp_path / "other")


def test_bytes_that_do_not_match_the_digest_are_discarded(model_job, live_server, tmp_path):
    world, artifact, _ = model_job
    url = live_server.url + model_entry(artifact)["weights_url"]
    with pytest.raises(ArtifactUnavailable, match="sha256"):
        fetch(url, "0" * 64, identity=world.identity, cache_dir=tmp_path / "cache")  # the bytes are not these
    assert not list((tmp_path / "cache").iterdir()), "no partial or mismatched file is left in the cache"


def test_a_runner_of_another_target_gets_nothing(model_job, live_server, tmp_path):
    _, artifact, _ = model_job
    from apps.registry.services import runner_register

    stranger, pem = identity_for("runner-elsewhere")
    runner_register(name="runner-elsewhere", public_key=pem, targets=[])
    with pytest.raises(ArtifactUnavailable, match="404"):
        fetch(
            live_server.url + model_entry(artifact)["weights_url"],
            artifact.weights_sha256,
            identity=stranger,
            cache_dir=tmp_path,
        )


def test_nothing_is_served_once_no_job_needs_the_model(model_job, live_server, tmp_path):
    world, artifact, job = model_job
    Job.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED)
    with pytest.raises(ArtifactUnavailable, match="404"):
        fetch(
            live_server.url + model_entry(artifact)["weights_url"],
            artifact.weights_sha256,
            identity=world.identity,
            cache_dir=tmp_path,
        )


@pytest.mark.parametrize("tamper", ["signature", "stale", "unsigned"])
def test_unsigned_forged_or_stale_requests_are_404(model_job, client, tamper):
    world, artifact, _ = model_job
    url = model_entry(artifact)["weights_url"]
    headers = signed_headers(world.identity, "GET", url)
    if tamper == "signature":
        headers["X-Runner-Signature"] = signed_headers(world.identity, "GET", url + "x")["X-Runner-Signature"]
    elif tamper == "stale":
        old = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
        headers["X-Runner-Timestamp"] = old
        headers["X-Runner-Signature"] = world.identity.sign_bytes(f"GET\n{url}\n{old}".encode())
    else:
        headers = {}
    assert client.get(url, headers=headers).status_code == 404
    assert client.get(url, headers=signed_headers(world.identity, "GET", url)).status_code == 200


def test_a_signed_request_is_single_use_and_its_replay_is_404(model_job, client):
    world, artifact, _ = model_job
    url = model_entry(artifact)["weights_url"]
    headers = signed_headers(world.identity, "GET", url)
    assert client.get(url, headers=headers).status_code == 200
    assert client.get(url, headers=headers).status_code == 404, "the same signed request, replayed"
    fresh = signed_headers(world.identity, "GET", url)
    assert client.get(url, headers=fresh).status_code == 200, "a fresh one works"
