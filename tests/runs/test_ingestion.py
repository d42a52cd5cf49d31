"""Ingestion accepts only verified evidence: each attack is rejected with its reason, nothing stored."""

from __future__ import annotations

import json

import pytest

from apps.registry.services import runner_register
from apps.runs.models import (
    CampaignState,
    CaseResult,
    ErrorClass,
    EvidenceRejection,
    Job,
    JobState,
    ResultDocument,
)
from apps.runs.services.campaigns import campaign_submit, job_fail
from apps.runs.services.ingestion import result_ingest
from runners.document import canonical_json
from runners.worker import run_job
from tests.runs.world import EVALUATED, identity_for


def submit(world):
    return campaign_submit(
        vendor=world.vendor,
        target=world.target,
        program=world.program,
        level="basic",
        model_artifacts=[],
        submitted_by=world.engineer,
    )


def produce(job, identity):
    """Run the job's spec on this CPU for real and return the runner's signed envelope."""
    messages = []
    envelope = run_job(job.spec, identity=identity, report=lambda name, message: messages.append(name))
    assert envelope is not None, messages
    return envelope


def resign(envelope, identity, mutate):
    document = json.loads(envelope["document_json"])
    mutate(document)
    return identity.envelope(canonical_json(document))


def assert_rejected(job, fragment):
    assert ResultDocument.objects.count() == 0
    assert CaseResult.objects.count() == 0
    rejection = EvidenceRejection.objects.get(job=job)
    assert fragment in rejection.reason


@pytest.fixture
def job(cpu_world):
    campaign = submit(cpu_world)
    return campaign.jobs.get()


@pytest.mark.slow
def test_it_accepts_a_genuine_signed_result_and_stores_its_cases(cpu_world, job):
    outcome = result_ingest(envelope=produce(job, cpu_world.identity))
    assert outcome.accepted, outcome.reason
    document = ResultDocument.objects.get(job=job)
    assert document.content.read() and document.size > 0
    assert CaseResult.objects.filter(document=document).count() == len(
        json.loads(document.content.open().read())["cases"]
    )
    assert document.spot_check["sampled"], "a sample of cases was recomputed server-side"
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.campaign.state == CampaignState.EVALUATING
    assert EVALUATED == [job.campaign_id]


@pytest.mark.slow
def test_a_redelivered_result_is_recognized_not_stored_twice(cpu_world, job):
    envelope = produce(job, cpu_world.identity)
    assert result_ingest(envelope=envelope).accepted
    again = result_ingest(envelope=envelope)
    assert again.accepted and again.duplicate
    assert ResultDocument.objects.count() == 1


@pytest.mark.slow
def test_it_rejects_a_tampered_document(cpu_world, job):
    envelope = produce(job, cpu_world.identity)
    envelope["document_json"] = envelope["document_json"].replace('"status":"pass"', '"status":"fail"', 1)
    outcome = result_ingest(envelope=envelope)
    assert not outcome.accepted
    assert_rejected(job, "tampered")


@pytest.mark.slow
def test_it_rejects_a_forged_document_with_a_recomputed_digest(cpu_world, job):
    envelope = produce(job, cpu_world.identity)
    forged = envelope["document_json"].replace('"status":"pass"', '"status":"fail"', 1)
    import hashlib

    envelope.update(document_json=forged, document_sha256=hashlib.sha256(forged.encode()).hexdigest())
    assert not result_ingest(envelope=envelope).accepted
    assert_rejected(job, "signature does not verify")


@pytest.mark.slow
def test_it_rejects_an_unsigned_document(cpu_world, job):
    envelope = produce(job, cpu_world.identity)
    envelope["signature"] = ""
    assert not result_ingest(envelope=envelope).accepted
    assert_rejected(job, "signature does not verify")


@pytest.mark.slow
def test_it_rejects_a_document_signed_by_an_unregistered_key(cpu_world, job):
    stranger, _ = identity_for("runner-a")
    assert not result_ingest(envelope=produce(job, stranger)).accepted
    assert_rejected(job, "not registered")


@pytest.mark.slow
def test_a_result_from_a_runner_not_bound_to_the_job_is_refused_without_touching_the_job(cpu_world, job):
    # Another vendor's registered runner: its key verifies, but it serves no target of this job.
    other, pem = identity_for("runner-b")
    runner_register(name="runner-b", public_key=pem, targets=[])
    before = (job.state, job.challenge, job.attempts, job.error_class)
    assert not result_ingest(envelope=produce(job, other)).accepted
    assert_rejected(job, "not bound to target")
    job.refresh_from_db()
    assert (job.state, job.challenge, job.attempts, job.error_class) == before
    assert job.campaign.state == CampaignState.QUEUED


@pytest.mark.slow
def test_it_rejects_a_replayed_result_of_an_earlier_attempt(cpu_world, job):
    old = produce(job, cpu_world.identity)
    job_fail(job_id=job.pk, error_class=ErrorClass.INFRASTRUCTURE, message="worker lost", retry=True)
    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert not result_ingest(envelope=old).accepted
    assert_rejected(job, "challenge")
    job.refresh_from_db()
    assert job.state == JobState.QUEUED, "a stale result leaves the retried job waiting for the fresh one"


@pytest.mark.slow
def test_it_rejects_a_schema_invalid_document(cpu_world, job):
    envelope = resign(produce(job, cpu_world.identity), cpu_world.identity, lambda d: d.pop("summary"))
    assert not result_ingest(envelope=envelope).accepted
    assert_rejected(job, "schema-invalid")


@pytest.mark.slow
def test_it_rejects_a_document_whose_inputs_are_not_the_challenges(cpu_world, job):
    def swap_inputs(document):
        for case in document["cases"]:
            if case.get("input_digest"):
                case["input_digest"] = "0" * 64

    envelope = resign(produce(job, cpu_world.identity), cpu_world.identity, swap_inputs)
    assert not result_ingest(envelope=envelope).accepted
    assert_rejected(job, "inputs differ")


@pytest.mark.slow
def test_it_rejects_a_document_from_another_software_stack(cpu_world, job):
    envelope = resign(
        produce(job, cpu_world.identity),
        cpu_world.identity,
        lambda d: d["fingerprint"].update(torch_version="1.0.0"),
    )
    assert not result_ingest(envelope=envelope).accepted
    assert_rejected(job, "fingerprint")


@pytest.mark.parametrize("envelope", [None, {}, {"document_json": "{"}, "text", [1, 2]])
def test_it_answers_garbage_with_a_rejection_not_an_exception(cpu_world, envelope):
    assert not result_ingest(envelope=envelope).accepted
    assert ResultDocument.objects.count() == 0


@pytest.mark.slow
def test_the_runner_refuses_a_host_that_does_not_match_the_target(cpu_world, job):
    spec = {
        **job.spec,
        "target": {**job.spec["target"], "expected_fingerprint": {"backend": "cpu", "torch_version": "0.1"}},
    }
    messages = []
    assert (
        run_job(spec, identity=cpu_world.identity, report=lambda name, msg: messages.append((name, msg)))
        is None
    )
    failed = [json.loads(msg["payload_json"]) for name, msg in messages if name == "runs.job_failed"]
    assert failed and "fingerprint mismatch" in failed[0]["message"]
    assert Job.objects.get(pk=job.pk).state == JobState.QUEUED


# Issue 13: a competitor's registered runner can neither fail nor probe another vendor's job ------


@pytest.fixture
def competitor(cpu_world):
    """Another vendor's runner, registered and bound to that vendor's own CPU target (a real key)."""
    from tests.factories import ChipFactory, HardwareTargetFactory

    rival_chip = ChipFactory(vendor=cpu_world.foreign_engineer.membership.organization)
    rival_target = HardwareTargetFactory(chip=rival_chip, slug="rival-cpu", backend="cpu")
    identity, pem = identity_for("rival-runner")
    runner_register(name="rival-runner", public_key=pem, targets=[rival_target])
    return identity


def job_state(job):
    job.refresh_from_db()
    return (job.state, job.challenge, job.attempts, job.error_class, job.error_message, job.runner_id)


@pytest.mark.parametrize(
    "poison",
    [
        lambda d: d.pop("summary"),  # schema-invalid: fails_job for the job's own runner
        lambda d: d["fingerprint"].update(torch_version="0.0.1"),  # another stack: fails_job
        lambda d: d.update(suite="performance"),  # another suite: fails_job
    ],
)
@pytest.mark.slow
def test_a_competitors_registered_runner_cannot_fail_another_vendors_job(cpu_world, job, competitor, poison):
    # Even holding the job's current challenge (as a leaked spec would give it), the rival's signed
    # evidence that would fail the job coming from the job's own runner leaves the job as it was.
    honest = produce(job, cpu_world.identity)
    before = job_state(job)
    envelope = resign(honest, competitor, poison)
    outcome = result_ingest(envelope=envelope)
    assert not outcome.accepted and "rival-runner is not bound to target cpu-test" in outcome.reason
    assert job_state(job) == before
    assert job.campaign.state == CampaignState.QUEUED
    assert ResultDocument.objects.count() == 0
    # The job's own runner still delivers, and is accepted.
    assert result_ingest(envelope=honest).accepted


@pytest.mark.slow
def test_a_foreign_runner_learns_nothing_of_a_finished_job(cpu_world, job, competitor):
    honest = produce(job, cpu_world.identity)
    assert result_ingest(envelope=honest).accepted
    # Refused for who signed it, before the job's state is looked at: the answer does not say that the
    # job already has evidence (nor in which state it is).
    outcome = result_ingest(
        envelope=resign(honest, competitor, lambda d: d.update(finished_at=d["started_at"]))
    )
    assert not outcome.accepted
    assert "not bound" in outcome.reason and "already" not in outcome.reason
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and ResultDocument.objects.get(job=job).runner.name == "runner-a"


def test_only_the_jobs_own_runner_can_fail_it_whatever_a_check_says(cpu_world, job):
    from apps.runs.services.ingestion import Rejected, _reject

    before = job_state(job)
    _reject(job, {}, b"", Rejected("a check that fails jobs", fails_job=True))  # no authenticated runner
    assert job_state(job) == before
    _reject(job, {}, b"", Rejected("a check that fails jobs", fails_job=True), runner=cpu_world.runner)
    assert job_state(job)[0] == JobState.FAILED
