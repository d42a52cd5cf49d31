"""Ingestion refuses evidence from another device (issue 13, Identity) and evidence whose case shapes are
not the ones the job's challenge draws (Unpredictable shapes)."""

from __future__ import annotations

import json
import types

import pytest

from apps.registry.services import target_update
from apps.runs.models import JobState, ResultDocument
from apps.runs.services.campaigns import campaign_submit
from apps.runs.services.ingestion import result_ingest
from apps.runs.specs import expected_fingerprint
from runners.backends.base import host_cpu_model
from tests.runs.test_ingestion import assert_rejected, produce, resign


def _job(world):
    campaign = campaign_submit(
        vendor=world.vendor,
        target=world.target,
        program=world.program,
        level="basic",
        model_artifacts=[],
        submitted_by=world.engineer,
    )
    return campaign.jobs.get()


@pytest.fixture
def identified_world(cpu_world):
    """The CPU target registers the device it runs on, as read from /proc/cpuinfo."""
    cpu_world.target.device_identity = {"name": host_cpu_model()}
    cpu_world.target.save()
    return cpu_world


def test_the_expected_fingerprint_carries_the_registered_device_identity(identified_world):
    assert expected_fingerprint(identified_world.target)["device_identity"] == {"name": host_cpu_model()}
    job = _job(identified_world)
    assert job.spec["target"]["expected_fingerprint"]["device_identity"] == {"name": host_cpu_model()}


@pytest.mark.slow
def test_evidence_from_the_registered_device_is_accepted(identified_world):
    job = _job(identified_world)
    outcome = result_ingest(envelope=produce(job, identified_world.identity))
    assert outcome.accepted, outcome.reason
    stored = ResultDocument.objects.get(job=job)
    assert stored.fingerprint["device_identity"] == {"name": host_cpu_model()}
    assert stored.fingerprint["math_modes"]["cudnn_allow_tf32"] is False


@pytest.mark.slow
def test_evidence_from_another_device_is_refused(identified_world):
    """A job for chip FC-2 run on an FC-1: the runner key is genuine, the device is not the target's."""
    identified_world.target.device_identity = {"name": "FC-2"}
    identified_world.target.save()
    job = _job(identified_world)
    spec = {**job.spec, "target": {**job.spec["target"], "expected_fingerprint": {"backend": "cpu"}}}
    job_envelope = produce(types.SimpleNamespace(spec=spec), identified_world.identity)  # ran on FC-1
    envelope = resign(
        job_envelope,
        identified_world.identity,
        lambda d: d["fingerprint"].update(device_identity={"name": "FC-1"}),
    )
    assert not result_ingest(envelope=envelope).accepted
    assert_rejected(job, "device name is 'FC-1', the target registers 'FC-2'")
    job.refresh_from_db()
    assert job.state == JobState.FAILED


@pytest.mark.slow
def test_evidence_at_shapes_other_than_the_challenges_draw_is_refused(cpu_world):
    job = _job(cpu_world)

    def shrink(document):
        for case in document["cases"]:
            if case.get("dims") and case["dims"].get("N", 0) > 8:
                case["dims"]["N"] = 8  # what a chip would run if it chose the shapes

    envelope = resign(produce(job, cpu_world.identity), cpu_world.identity, shrink)
    assert not result_ingest(envelope=envelope).accepted
    assert_rejected(job, "not run at the shape the job's challenge draws")


def test_the_registry_validates_and_audits_the_device_identity(cpu_world):
    from django.core.exceptions import ValidationError

    target = target_update(
        target=cpu_world.target, device_identity={"name": "FC-2", "pci_bus_id": "0000:1b:00.0"}
    )
    assert target.device_identity["pci_bus_id"] == "0000:1b:00.0"
    for bad in ({"colour": "red"}, {"name": 7}, ["FC-2"], {"name": "x" * 201}):
        with pytest.raises(ValidationError):
            target_update(target=cpu_world.target, device_identity=bad)


def test_the_api_takes_the_device_identity_and_answers_a_bad_one_with_400(cpu_world, client_for):
    client = client_for(cpu_world.engineer)
    url = f"/api/v1/targets/{cpu_world.target.pk}/"
    ok = client.patch(url, {"device_identity": {"name": "FC-2"}}, format="json")
    assert ok.status_code == 200, ok.content
    assert ok.json()["device_identity"] == {"name": "FC-2"}
    bad = client.patch(url, {"device_identity": {"serial": ["x"]}}, format="json")
    assert bad.status_code == 400 and "device_identity" in json.dumps(bad.json())
