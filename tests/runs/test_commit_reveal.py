"""Commit and reveal with the real runner's documents: the platform draws a sample after storing the
commitment, the runner reveals it, the platform re-judges it. An honest run passes; a tampered output,
a false digest, a verdict the server does not share and a missing reveal each fail."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from django.utils import timezone
from safetensors.torch import save

from apps.certificates.models import CriterionOutcome
from apps.certificates.services import campaign_evaluate
from apps.runs.models import (
    CampaignState,
    ErrorClass,
    EvidenceRejection,
    Job,
    JobState,
    OutputReveal,
    RevealState,
)
from apps.runs.services.programs import PROGRAMS_DIR, program_load
from apps.runs.services.reveal import commitment_problems, reveal_receive, reveal_request_build
from apps.runs.services.sweeps import jobs_sweep_stuck
from runners.commitment import OutputStore, output_digest, reveal_pack, reveal_unpack
from runners.spec import attempt_tag
from runners.worker import reveal_answer, signed_message
from tests.real_documents import CHALLENGE, answer_reveal, campaign_from_runner, runner_documents

pytestmark = pytest.mark.django_db


@pytest.fixture
def aia11(db):
    program, _ = program_load(definition=json.loads(Path(PROGRAMS_DIR, "aia-1.1.json").read_text()))
    return program


def _result(campaign, criterion_id):
    return campaign.criterion_results.get(criterion_id=criterion_id)


def test_an_honest_run_reveals_a_random_sample_that_the_server_judges_the_same(cast, aia12):
    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, submitted_by=cast.owner)
    reveals = list(OutputReveal.objects.filter(job__campaign=campaign))
    assert len(reveals) == 4
    for reveal in reveals:
        assert reveal.state == RevealState.VERIFIED, reveal.findings
        assert 0 < len(reveal.requested) <= 6 and reveal.answered_at is not None
        assert all(c["digest_matches"] and c["agrees"] for c in reveal.checked)
        assert {c["server_status"] for c in reveal.checked} <= {"pass", "fail"}
    assert {r.job.suite for r in reveals} == {"conformance", "performance", "model", "serving"}
    assert set(campaign.jobs.values_list("state", flat=True)) == {JobState.SUCCEEDED}
    assert _result(campaign, "B12").outcome == CriterionOutcome.PASS


def test_the_sample_is_drawn_after_the_commitment_and_differs_between_draws(cast, aia12):
    first = campaign_from_runner(vendor=cast.vendor, program=aia12, evaluate=False)
    second = campaign_from_runner(vendor=cast.vendor, program=aia12, evaluate=False)
    drawn = [
        OutputReveal.objects.get(job__campaign=c, job__suite="conformance").requested for c in (first, second)
    ]
    # The same document, two draws of 6 from 44 committed cases: equal only by a 1-in-7-million chance.
    assert drawn[0] != drawn[1]


def test_a_legacy_program_draws_no_reveal_and_is_judged_as_published(cast, aia11):
    campaign = campaign_from_runner(vendor=cast.vendor, program=aia11, submitted_by=cast.owner)
    assert not OutputReveal.objects.filter(job__campaign=campaign).exists()
    assert set(campaign.jobs.values_list("state", flat=True)) == {JobState.SUCCEEDED}


def _payload(message: dict) -> dict:
    return json.loads(message["payload_json"])


def _resigned(payload: dict) -> dict:
    return signed_message(runner_documents().identity, payload)


def test_a_tampered_revealed_output_fails_the_campaign_as_an_integrity_failure(cast, aia12):
    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, reveal=False, evaluate=False)
    job = campaign.jobs.get(suite="conformance")
    assert job.state == JobState.RUNNING  # evidence stored, the job waits for its reveal

    def tamper(message):
        payload = _payload(message)
        tensors = reveal_unpack(payload)
        first = sorted(tensors)[0]
        tensors[first] = tensors[first].to(torch.float64).add(1).to(tensors[first].dtype)
        if not tensors[first].numel():
            tensors[first] = torch.ones(1)
        blob = save(tensors)
        payload.update(
            outputs_b64=base64.b64encode(blob).decode(), outputs_sha256=hashlib.sha256(blob).hexdigest()
        )
        return _resigned(payload)

    assert answer_reveal(job, tamper=tamper) == RevealState.MISMATCH
    for other in campaign.jobs.exclude(pk=job.pk):
        assert answer_reveal(other) == RevealState.VERIFIED
    campaign_evaluate(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    reveal = OutputReveal.objects.get(job=job)
    assert any("not the one committed" in f for f in reveal.findings)
    result = _result(campaign, "B12")
    assert result.outcome == CriterionOutcome.FAIL and "Product integrity failure" in result.explanation
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED  # the evidence stays for the reviewer; the blocker fails


def test_a_false_digest_in_the_commitment_is_found_by_the_reveal(cast, aia12):
    def edit(suite, document):
        if suite == "performance":
            for entry in document["commitment"]["outputs"]:
                entry["digest"] = "0" * 64

    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, edit=edit, submitted_by=cast.owner)
    reveal = OutputReveal.objects.get(job__campaign=campaign, job__suite="performance")
    assert reveal.state == RevealState.MISMATCH
    assert reveal.findings and all("not the one committed" in f for f in reveal.findings)
    assert _result(campaign, "B12").outcome == CriterionOutcome.FAIL


def test_a_runner_verdict_the_server_does_not_share_fails_the_campaign(cast, aia12, tmp_path):
    """A hostile plugin patched the runner's comparison: wrong outputs, honestly committed, reported as
    passing. Digests match; the platform's own judgement does not."""
    real = runner_documents()
    attempt = attempt_tag(CHALLENGE)
    shutil.copytree(real.output_root / attempt, tmp_path / attempt)
    store = OutputStore(tmp_path, attempt)

    def edit(suite, document):
        if suite != "conformance":
            return
        for entry in document["commitment"]["outputs"]:
            output = store.get(entry["id"])
            if output.numel() == 0:
                continue
            wrong = (output.to(torch.float64) * 2 + 1).to(output.dtype)
            store.put(entry["id"], wrong)
            entry["digest"] = output_digest(wrong)

    campaign = campaign_from_runner(
        vendor=cast.vendor, program=aia12, edit=edit, reveal_root=tmp_path, submitted_by=cast.owner
    )
    reveal = OutputReveal.objects.get(job__campaign=campaign, job__suite="conformance")
    assert reveal.state == RevealState.MISMATCH
    assert all(c["digest_matches"] for c in reveal.checked)
    assert any("the platform judges it fail, the runner said pass" in f for f in reveal.findings)
    result = _result(campaign, "B12")
    assert result.outcome == CriterionOutcome.FAIL
    assert result.evidence["reveals"][0]["findings"]


def test_a_runner_that_does_not_reveal_in_time_fails_its_job_with_a_classified_error(
    cast, aia12, settings, django_capture_on_commit_callbacks
):
    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, reveal=False, evaluate=False)
    # Every suite commits its outputs (serving's since its reveal), so every job waits for its reveal.
    committing = campaign.jobs.all()
    assert set(committing.values_list("state", flat=True)) == {JobState.RUNNING}
    settings.JOB_SILENCE_S = 0  # a job awaiting its reveal is never requeued as silent
    assert jobs_sweep_stuck(now=timezone.now()) == 0
    # Long after every deadline (the answer time plus the hard limits of the jobs queued ahead).
    later = timezone.now() + timedelta(days=2)
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_sweep_stuck(now=later) == 4
    for job in committing.all():
        assert job.state == JobState.FAILED and job.error_class == ErrorClass.TIMEOUT
        assert job.error_message.startswith("reveal timeout")
    assert set(OutputReveal.objects.filter(job__campaign=campaign).values_list("state", flat=True)) == {
        RevealState.EXPIRED
    }
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.FAILED


def test_a_late_answer_after_expiry_and_an_answer_from_another_runner_are_dropped(cast, aia12):
    from tests.runs.world import identity_for

    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, reveal=False, evaluate=False)
    job = campaign.jobs.get(suite="conformance")
    reveal = OutputReveal.objects.get(job=job)
    request = reveal_request_build(reveal)
    stranger, pem = identity_for("stranger")
    from apps.registry.services import runner_register

    runner_register(
        name="stranger", public_key=pem, targets=[campaign.target]
    )  # bound, yet not the committer
    real = runner_documents()
    assert (
        reveal_receive(message=reveal_answer(request, identity=stranger, root=real.output_root)) == "dropped"
    )
    wrong_attempt = {**request, "attempt": attempt_tag("another challenge")}
    assert reveal_receive(message=reveal_answer(wrong_attempt, identity=real.identity)) == "dropped"
    reveal.refresh_from_db()
    assert reveal.state == RevealState.PENDING
    OutputReveal.objects.filter(pk=reveal.pk).update(state=RevealState.EXPIRED)
    assert (
        reveal_receive(message=reveal_answer(request, identity=real.identity, root=real.output_root))
        == "dropped"
    )


def test_a_verdict_is_recorded_once_and_succeeds_only_a_running_job(cast, aia12):
    """The answer's verdict and the job's success are one statement (services/reveal.py `_settle`): the
    verdict only while the reveal is pending, the success only while the job runs, where the verdict
    settles it, and only if the verdict was recorded."""
    from apps.runs.services.reveal import _settle

    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, reveal=False, evaluate=False)
    reveals = {
        r.job.suite: r for r in OutputReveal.objects.filter(job__campaign=campaign).select_related("job")
    }
    settle = {"state": RevealState.VERIFIED, "checked": [{"id": "x"}], "findings": [], "seconds": 0.5}

    conformance = reveals["conformance"]
    assert _settle(conformance, **settle, job_succeeds=True)
    conformance.refresh_from_db()
    job = Job.objects.get(pk=conformance.job_id)
    assert (conformance.state, conformance.checked, conformance.server_seconds) == (
        "verified",
        [{"id": "x"}],
        0.5,
    )
    assert job.state == JobState.SUCCEEDED and job.finished_at == conformance.answered_at
    # Settled already: nothing is written again (neither the verdict nor the job's end).
    assert not _settle(conformance, **{**settle, "state": RevealState.MISMATCH}, job_succeeds=True)
    conformance.refresh_from_db()
    assert conformance.state == RevealState.VERIFIED
    assert Job.objects.get(pk=job.pk).finished_at == job.finished_at

    # A mismatch the level's criterion does not settle: the verdict, and the job still runs (job_fail's).
    model = reveals["model"]
    assert _settle(model, **{**settle, "state": RevealState.MISMATCH, "findings": ["f"]}, job_succeeds=False)
    assert Job.objects.get(pk=model.job_id).state == JobState.RUNNING
    assert OutputReveal.objects.get(pk=model.pk).findings == ["f"]

    # A job cancelled meanwhile stays cancelled; the verdict is recorded.
    serving = reveals["serving"]
    Job.objects.filter(pk=serving.job_id).update(state=JobState.CANCELLED)
    assert _settle(serving, **settle, job_succeeds=True)
    assert Job.objects.get(pk=serving.job_id).state == JobState.CANCELLED
    assert OutputReveal.objects.get(pk=serving.pk).state == RevealState.VERIFIED


def test_a_reveal_missing_a_committed_output_is_a_mismatch(cast, aia12, tmp_path):
    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, reveal=False, evaluate=False)
    job = campaign.jobs.get(suite="model")
    reveal = OutputReveal.objects.get(job=job)
    payload = {
        "kind": "reveal",
        "job_id": str(job.pk),
        "attempt": attempt_tag(job.challenge),
        "reveal_id": reveal.pk,
        **reveal_pack(OutputStore(tmp_path, attempt_tag(job.challenge)), reveal.requested),
    }
    assert reveal_receive(message=_resigned(payload)) == RevealState.MISMATCH
    reveal.refresh_from_db()
    assert all("not revealed, though committed" in f for f in reveal.findings)


def test_a_document_whose_commitment_omits_a_judged_output_is_refused(cast, aia12):
    def edit(suite, document):
        if suite == "conformance":
            document["commitment"]["outputs"] = document["commitment"]["outputs"][1:]

    outcomes: dict = {}
    campaign = campaign_from_runner(
        vendor=cast.vendor, program=aia12, edit=edit, outcomes=outcomes, evaluate=False
    )
    assert not outcomes["conformance"].accepted
    assert "judged outputs not committed" in outcomes["conformance"].reason
    job = campaign.jobs.get(suite="conformance")
    assert job.state == JobState.FAILED and job.error_class == ErrorClass.REJECTED_EVIDENCE
    assert EvidenceRejection.objects.filter(job=job).exists()


def test_commitment_coverage_names_extra_and_twice_committed_outputs():
    document = json.loads(json.dumps(runner_documents().documents["conformance"]))
    assert commitment_problems(document=document) == []
    outputs = document["commitment"]["outputs"]
    outputs.append(dict(outputs[0]))
    outputs.append({**outputs[0], "id": "conformance/matmul/float32/invented"})
    problems = " ".join(commitment_problems(document=document))
    assert "committed twice" in problems and "no verdict rests on" in problems
    del document["commitment"]
    assert commitment_problems(document=document) == [
        "the document commits to no output (no commitment section)"
    ]


def test_a_commitment_that_names_no_dtype_is_refused_at_ingestion(cast, aia12):
    """Session 31: a committed output's dtype is priced at the draw (its bytes); one that names no torch
    dtype ("float99", or an attribute of torch that is not a dtype) is refused with the commitment's
    other problems, a classified rejection, never an error in the draw."""

    def edit(suite, document):
        if suite == "conformance":
            outputs = document["commitment"]["outputs"]
            outputs[0]["dtype"], outputs[1]["dtype"] = "float99", "nn"

    outcomes: dict = {}
    campaign = campaign_from_runner(
        vendor=cast.vendor, program=aia12, edit=edit, outcomes=outcomes, evaluate=False
    )
    assert not outcomes["conformance"].accepted
    assert "2 committed dtypes are not dtypes" in outcomes["conformance"].reason
    job = campaign.jobs.get(suite="conformance")
    assert job.state == JobState.FAILED and job.error_class == ErrorClass.REJECTED_EVIDENCE
