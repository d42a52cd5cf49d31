"""The collectives suite on the platform (issue 16): a level that plans it gets one job per campaign
whose spec runs on every device the target declares with its declared interconnect; the real
runner's document covers that plan and a forged one does not; a one-device target's evidence is
accepted as not applicable and so is the criterion."""

from __future__ import annotations

import copy
import json

import pytest

from apps.certificates.criteria import criterion_judge
from apps.certificates.models import CriterionOutcome
from apps.runs.models import JobSuite
from apps.runs.services.campaigns import campaign_submit
from apps.runs.services.coverage import evidence_plan_problems
from apps.runs.services.ingestion import result_ingest
from apps.runs.services.programs import program_load
from runners.backends import get_backend
from runners.collectives import run_collectives
from runners.document import canonical_json, summarize, validate_document
from runners.worker import run_job
from tests.runs.world import TEST_PROGRAM

COLLECTIVES_PROGRAM = {
    **TEST_PROGRAM,
    "code": "TSTC",
    "levels": [
        {
            "code": "scale_out",
            "rank": 1,
            "title": "Scale-out",
            "suites": {
                "collectives": {
                    "dtypes": ["float32"],
                    "sizes_bytes": [4096, 32768],
                    "warmup": 1,
                    "iterations": 3,
                }
            },
            "criteria": [
                {"id": "C1", "title": "Collectives", "kind": "collectives", "blocker": True, "params": {}},
            ],
        }
    ],
}
CRITERION = COLLECTIVES_PROGRAM["levels"][0]["criteria"][0]


def submit(world):
    program, _ = program_load(definition=COLLECTIVES_PROGRAM)
    return campaign_submit(
        vendor=world.vendor,
        target=world.target,
        program=program,
        level="scale_out",
        model_artifacts=[],
        submitted_by=world.engineer,
    )


@pytest.fixture
def two_device_job(cpu_world):
    cpu_world.target.device_count = 2
    cpu_world.target.interconnect = "loopback (gloo over TCP)"
    cpu_world.target.save()
    return submit(cpu_world).jobs.get()


@pytest.fixture
def genuine(two_device_job):
    """The real runner's document of the job's plan: two gloo processes, as a two-device host runs it."""
    document = run_collectives(two_device_job.spec, get_backend("cpu"))
    validate_document(document)
    return document


def test_the_job_runs_on_every_declared_device_with_the_declared_interconnect(two_device_job):
    assert two_device_job.suite == JobSuite.COLLECTIVES
    options = two_device_job.spec["options"]["collectives"]
    assert options["world_size"] == 2 and options["interconnect"] == "loopback (gloo over TCP)"
    assert options["sizes_bytes"] == [4096, 32768] and options["dtypes"] == ["float32"]


def test_a_program_cannot_plan_the_device_count_or_an_unknown_collective(db):
    from django.core.exceptions import ValidationError

    for bad in ({"world_size": 8}, {"ops": ["broadcast"]}, {"sizes_bytes": [-1]}):
        definition = copy.deepcopy(COLLECTIVES_PROGRAM)
        definition["levels"][0]["suites"]["collectives"] = bad
        with pytest.raises(ValidationError, match="collectives"):
            program_load(definition=definition)


@pytest.mark.slow
def test_the_genuine_document_covers_the_plan_and_forgeries_do_not(two_device_job, genuine):
    plan = two_device_job.spec
    assert evidence_plan_problems(document=genuine, plan=plan) == []
    assert genuine["collectives"]["world_size"] == 2 and genuine["summary"]["failed"] == 0

    def forged(mutate):
        document = copy.deepcopy(genuine)
        mutate(document)
        document["summary"] = summarize(document["cases"])
        return " ".join(evidence_plan_problems(document=document, plan=plan))

    def drop_case(d):
        d["cases"].pop()

    def pass_a_failure(d):
        d["cases"][0]["stats"]["mismatches"] = 7

    def inflate(d):
        d["measurements"][0]["value"] *= 2

    def fewer_devices(d):
        d["collectives"]["world_size"] = 1

    assert "planned collectives cases missing" in forged(drop_case)
    assert "do not follow from their stats" in forged(pass_a_failure)
    assert "nccl-tests' definitions" in forged(inflate)
    assert "ran on 1 devices, the plan on 2" in forged(fewer_devices)


def test_a_two_device_target_without_evidence_fails_the_criterion(two_device_job):
    judgement = criterion_judge(campaign=two_device_job.campaign, criterion=CRITERION)
    assert (
        judgement.outcome == CriterionOutcome.FAIL
        and "no accepted collectives evidence" in judgement.explanation
    )


@pytest.mark.slow
def test_a_one_device_target_is_accepted_as_not_applicable(cpu_world):
    job = submit(cpu_world).jobs.get()
    assert job.spec["options"]["collectives"]["world_size"] == 1
    envelope = run_job(job.spec, identity=cpu_world.identity, report=lambda name, message: None)
    document = json.loads(envelope["document_json"])
    assert document["collectives"]["applicable"] is False and document["cases"] == []
    outcome = result_ingest(envelope=envelope)
    assert outcome.accepted, outcome.reason
    judgement = criterion_judge(campaign=job.campaign, criterion=CRITERION)
    assert judgement.outcome == CriterionOutcome.NOT_APPLICABLE

    # A one-device document that claims to have measured something is refused.
    document["collectives"]["applicable"] = True
    document["summary"] = summarize(document["cases"])
    assert evidence_plan_problems(document=document, plan=job.spec)
    assert canonical_json(document)


def _stored_collectives_evidence(
    campaign, *, passed: int, total: int, busbw: dict[str, list[tuple[int, float]]]
):
    """An accepted collectives document as rows (tests/certificates/evidence.py's way): its summary and
    one `collective` measurement per (op, size)."""
    from apps.runs.models import Job, JobState, Measurement
    from tests.certificates.evidence import _document
    from tests.factories import RunnerFactory

    job = Job.objects.create(campaign=campaign, suite=JobSuite.COLLECTIVES, state=JobState.SUCCEEDED, spec={})
    document = _document(job, RunnerFactory(targets=[campaign.target]))
    document.summary = {"total": total, "passed": passed}
    document.save(update_fields=["summary"])
    for op, figures in busbw.items():
        for size, value in figures:
            Measurement.objects.create(
                document=document,
                kind="collective",
                name=f"{op}/float32/{size}",
                dtype="float32",
                unit="GB/s",
                value=value,
                params={"op": op, "bytes": size, "world_size": 2},
            )


def test_the_criterion_passes_on_correct_collectives_and_states_the_largest_sizes_bus_bandwidth(
    two_device_job,
):
    campaign = two_device_job.campaign
    _stored_collectives_evidence(
        campaign,
        passed=4,
        total=4,
        busbw={"all_reduce": [(4096, 1.0), (32768, 40.0)], "all_to_all": [(4096, 2.0), (32768, 30.0)]},
    )
    judgement = criterion_judge(campaign=campaign, criterion=CRITERION)
    assert judgement.outcome == CriterionOutcome.PASS, judgement.explanation
    assert judgement.measured == 30.0  # the lowest busbw among the largest messages
    assert judgement.evidence["busbw_gbps_largest"] == {"all_reduce": 40.0, "all_to_all": 30.0}
    assert "on 2 devices" in judgement.explanation


def test_the_criterion_fails_when_a_collective_gives_a_wrong_answer(two_device_job):
    campaign = two_device_job.campaign
    _stored_collectives_evidence(campaign, passed=3, total=4, busbw={"all_gather": [(4096, 1.0)]})
    judgement = criterion_judge(campaign=campaign, criterion=CRITERION)
    assert judgement.outcome == CriterionOutcome.FAIL
    assert "3 of 4 collectives cases" in judgement.explanation
