"""A campaign's reveals requested together and answered in one signed message (issue 13): the requests
wait until none of the campaign's jobs is still queued or running without its evidence (a runner runs
its queue in order, so a request published earlier waited behind them anyway), then go out as one
`runners.reveal_many`; the runner's one answer is verified once and each reveal in it is still judged
on its own. A message that is not wholly the committing runner's counts for nothing."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import pytest
import torch
from django.utils import timezone
from safetensors.torch import save

from apps.audit.models import AuditEvent
from apps.registry.services import runner_register
from apps.runs.models import ErrorClass, Job, JobState, OutputReveal, RevealState
from apps.runs.services.campaigns import job_fail
from apps.runs.services.reveal import (
    REVEALS_PER_REQUEST,
    _request_groups,
    reveal_receive_many,
    reveal_requests_claim,
    reveals_publish_waiting,
)
from runners.commitment import REVEAL_MAX_BYTES, reveal_unpack
from runners.spec import attempt_tag
from runners.worker import reveal_answers, signed_message
from tests.real_documents import campaign_from_runner, runner_documents
from tests.runs.world import identity_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(settings, monkeypatch):
    """The tasks the platform publishes, kept instead of sent (the broker is not what is tested here)."""
    from certification import celery as celery_module

    settings.CELERY_TASK_ALWAYS_EAGER = False
    kept: list[dict] = []
    monkeypatch.setattr(celery_module, "embedded_broker_ready", lambda: None)
    monkeypatch.setattr(celery_module.app, "send_task", lambda name, **kw: kept.append({"name": name, **kw}))
    return kept


def _waiting_campaign(cast, program):
    """A campaign whose four documents are in and whose reveals were drawn, none answered yet."""
    campaign = campaign_from_runner(vendor=cast.vendor, program=program, reveal=False, evaluate=False)
    reveals = list(OutputReveal.objects.filter(job__campaign=campaign).order_by("job_id"))
    assert len(reveals) == 4 and {r.state for r in reveals} == {RevealState.PENDING}
    return campaign, reveals


def _sibling(campaign, state=JobState.QUEUED) -> Job:
    """Another job of the campaign on its target's queue, without evidence."""
    job = campaign.jobs.order_by("id").first()
    job.pk = None
    job.state = state
    job.save()
    return job


def _answer(request, identity=None):
    real = runner_documents()
    return reveal_answers(request, identity=identity or real.identity, root=real.output_root)


def test_the_reveals_wait_for_the_campaigns_last_evidence_and_go_out_in_one_request(
    cast, aia12, sent, settings
):
    campaign, reveals = _waiting_campaign(cast, aia12)
    sibling = _sibling(campaign)
    assert reveal_requests_claim(campaign_id=campaign.pk) == []  # the sibling's evidence is not in
    assert reveals_publish_waiting() == 0 and sent == []
    assert not OutputReveal.objects.filter(job__campaign=campaign, published_at__isnull=False).exists()

    Job.objects.filter(pk=sibling.pk).update(
        state=JobState.CANCELLED
    )  # ended by a path that publishes nothing
    before = timezone.now()
    assert reveals_publish_waiting() == 4  # the sweep's part
    assert reveals_publish_waiting() == 0  # each reveal is claimed once
    [task] = sent
    assert task["name"] == "runners.reveal_many" and task["queue"] == campaign.target.queue
    [request] = task["args"]
    assert request["max_bytes"] == REVEAL_MAX_BYTES
    assert request["reveals"] == [
        {
            "reveal_id": reveal.pk,
            "job_id": str(reveal.job_id),
            "attempt": attempt_tag(reveal.job.challenge),
            "outputs": reveal.requested,
            "max_bytes": REVEAL_MAX_BYTES,
        }
        for reveal in reveals  # in the jobs' order, the order the runner ran them
    ]
    published = list(OutputReveal.objects.filter(job__campaign=campaign))
    assert len({r.published_at for r in published}) == 1 and published[0].published_at >= before
    # The runner has at least the answer time from the request on (a deadline is never shortened).
    assert all(r.deadline_at >= before + timedelta(seconds=settings.REVEAL_ANSWER_S) for r in published)

    assert reveal_receive_many(message=_answer(request)) == [RevealState.VERIFIED] * 4
    assert set(campaign.jobs.exclude(pk=sibling.pk).values_list("state", flat=True)) == {JobState.SUCCEEDED}
    events = AuditEvent.objects.filter(
        action="evidence.revealed", object_id__in=[str(r.job_id) for r in reveals]
    )
    assert sorted(e.payload["reveal_id"] for e in events) == sorted(r.pk for r in reveals)


def test_a_sibling_that_fails_releases_the_reveals_that_waited_for_it(
    cast, aia12, sent, django_capture_on_commit_callbacks
):
    campaign, reveals = _waiting_campaign(cast, aia12)
    sibling = _sibling(campaign, state=JobState.RUNNING)
    assert reveal_requests_claim(campaign_id=campaign.pk) == []
    with django_capture_on_commit_callbacks(execute=True):
        job_fail(job_id=sibling.pk, error_class=ErrorClass.PRODUCT_FAILURE, message="the device fell over")
    [task] = sent
    assert [item["reveal_id"] for item in task["args"][0]["reveals"]] == [r.pk for r in reveals]


def _retampered(message: dict, reveal_id: int) -> dict:
    """The answer with one reveal's first output changed, signed again by the same runner key."""
    payload = json.loads(message["payload_json"])
    for answer in payload["answers"]:
        if answer["reveal_id"] == reveal_id:
            tensors = reveal_unpack(answer)
            first = sorted(tensors)[0]
            changed = tensors[first].to(torch.float64).add(1).to(tensors[first].dtype)
            tensors[first] = changed if changed.numel() else torch.ones(1)
            blob = save(tensors)
            answer.update(
                outputs_b64=base64.b64encode(blob).decode(), outputs_sha256=hashlib.sha256(blob).hexdigest()
            )
    return signed_message(runner_documents().identity, payload)


def test_each_reveal_of_a_grouped_answer_is_judged_on_its_own(cast, aia12):
    campaign, reveals = _waiting_campaign(cast, aia12)
    [request] = reveal_requests_claim(campaign_id=campaign.pk)
    conformance = next(r for r in reveals if r.job.suite == "conformance")
    other_attempt = next(r for r in reveals if r.job.suite == "model")
    for item in request["reveals"]:
        if item["reveal_id"] == other_attempt.pk:
            item["attempt"] = attempt_tag("another challenge")  # this answer counts for nothing
    outcomes = reveal_receive_many(message=_retampered(_answer(request), conformance.pk))
    by_reveal = dict(zip([item["reveal_id"] for item in request["reveals"]], outcomes, strict=True))
    assert by_reveal[conformance.pk] == RevealState.MISMATCH
    assert by_reveal[other_attempt.pk] == "dropped"
    assert sorted(by_reveal.values()).count(RevealState.VERIFIED) == 2
    conformance.refresh_from_db()
    other_attempt.refresh_from_db()
    assert any("not the one committed" in finding for finding in conformance.findings)
    assert other_attempt.state == RevealState.PENDING and other_attempt.answered_at is None
    # AIA 1.2's reveal criterion settles the mismatch in front of the reviewer: the job keeps its evidence.
    assert Job.objects.get(pk=conformance.job_id).state == JobState.SUCCEEDED
    assert Job.objects.get(pk=other_attempt.job_id).state == JobState.RUNNING


def test_a_grouped_answer_not_wholly_the_committing_runners_is_dropped_whole(cast, aia12):
    campaign, reveals = _waiting_campaign(cast, aia12)
    [request] = reveal_requests_claim(campaign_id=campaign.pk)
    stranger, pem = identity_for("stranger")
    runner_register(name="stranger", public_key=pem, targets=[campaign.target])  # bound, not the committer
    honest = _answer(request)
    payload = json.loads(honest["payload_json"])
    twice = {**payload, "answers": payload["answers"] + payload["answers"][:1]}
    lone = {**payload, "kind": "reveal"}
    for message in (
        _answer(request, identity=stranger),  # another runner's key
        signed_message(runner_documents().identity, twice),  # one reveal answered twice
        signed_message(runner_documents().identity, lone),  # not a grouped answer
        {**honest, "payload_json": honest["payload_json"].replace('"reveals"', '"reveals" ', 1)},  # altered
    ):
        assert reveal_receive_many(message=message) in (
            [],
            ["dropped"] * len(json.loads(message["payload_json"])["answers"]),
        )
    for shapeless in ({"answers": "all"}, {"answers": []}, {"answers": [{"reveal_id": "x"}]}):
        assert reveal_receive_many(message=signed_message(runner_documents().identity, shapeless)) == []
    too_many = {"kind": "reveals", "answers": [{"reveal_id": r.pk} for r in reveals] * REVEALS_PER_REQUEST}
    assert reveal_receive_many(message=signed_message(runner_documents().identity, too_many)) == []
    assert reveal_receive_many(message="not a message") == []
    assert set(OutputReveal.objects.filter(job__campaign=campaign).values_list("state", flat=True)) == {
        RevealState.PENDING
    }
    assert reveal_receive_many(message=honest) == [RevealState.VERIFIED] * 4  # the real one still counts


def test_the_runner_answers_a_grouped_request_within_its_byte_budget(cast, aia12):
    campaign, reveals = _waiting_campaign(cast, aia12)
    [request] = reveal_requests_claim(campaign_id=campaign.pk)
    full = json.loads(_answer(request)["payload_json"])
    sizes = [len(base64.b64decode(a["outputs_b64"])) for a in full["answers"]]
    assert full["kind"] == "reveals" and all(sizes)
    # A budget that holds the first reveal's outputs only: the others say they do not fit.
    tight = json.loads(_answer({**request, "max_bytes": sizes[0]})["payload_json"])
    assert "error" not in tight["answers"][0]
    assert all("more than" in answer["error"] for answer in tight["answers"][1:])
    for malformed in ({}, {"reveals": "all"}, {"reveals": []}, {"reveals": [{}] * 65}):
        answered = json.loads(_answer(malformed)["payload_json"])
        assert answered["answers"] == [] and answered["error"]
    odd = json.loads(_answer({"reveals": ["x", {"attempt": "../x", "outputs": ["a"]}]})["payload_json"])
    assert [bool(answer.get("error")) for answer in odd["answers"]] == [True, True]


def test_requests_are_grouped_by_committing_runner_then_by_count_and_size():
    half = REVEAL_MAX_BYTES // 2
    rows = [(i, 100 + i, [f"o{i}"], "c", half if i < 3 else 1, 1 if i != 5 else 2) for i in range(6)]
    rows.append((6, 106, ["o6"], "c", None, 1))  # drawn before the size was recorded: alone
    groups = [[item["reveal_id"] for item in group] for group in _request_groups(rows)]
    assert groups == [[0, 1], [2, 3, 4], [6], [5]]
    many = [(i, i, [], "c", 0, 1) for i in range(REVEALS_PER_REQUEST + 1)]
    assert [len(group) for group in _request_groups(many)] == [REVEALS_PER_REQUEST, 1]


def test_the_verdicts_of_an_answer_are_recorded_in_one_statement_each_on_its_own_terms(
    cast, aia12, django_assert_num_queries
):
    from apps.runs.services.reveal import Verdict, _settle_all

    campaign, reveals = _waiting_campaign(cast, aia12)
    by_suite = {reveal.job.suite: reveal for reveal in reveals}
    OutputReveal.objects.filter(pk=by_suite["performance"].pk).update(state=RevealState.EXPIRED)
    Job.objects.filter(pk=by_suite["serving"].job_id).update(state=JobState.CANCELLED)
    verdicts = [
        Verdict(by_suite["conformance"], RevealState.VERIFIED, [{"id": "c"}], [], 0.25, True),
        Verdict(by_suite["performance"], RevealState.VERIFIED, [{"id": "p"}], [], 0.5, True),  # expired
        Verdict(by_suite["model"], RevealState.MISMATCH, [{"id": "m"}], ["f"], 0.75, False),  # job_fail's
        Verdict(by_suite["serving"], RevealState.VERIFIED, [{"id": "s"}], [], 1.0, True),  # job cancelled
    ]
    with django_assert_num_queries(1):
        settled = _settle_all(verdicts)
    assert settled == {by_suite[suite].pk for suite in ("conformance", "model", "serving")}
    rows = {r.pk: r for r in OutputReveal.objects.filter(job__campaign=campaign)}
    conformance, performance = rows[by_suite["conformance"].pk], rows[by_suite["performance"].pk]
    model, serving = rows[by_suite["model"].pk], rows[by_suite["serving"].pk]
    assert (conformance.state, conformance.checked, conformance.server_seconds) == (
        "verified",
        [{"id": "c"}],
        0.25,
    )
    assert performance.state == RevealState.EXPIRED and performance.checked == []
    assert (model.state, model.findings) == (RevealState.MISMATCH, ["f"])
    assert serving.state == RevealState.VERIFIED
    jobs = {job.pk: job for job in campaign.jobs.all()}
    assert jobs[conformance.job_id].state == JobState.SUCCEEDED
    assert jobs[conformance.job_id].finished_at == conformance.answered_at
    assert jobs[performance.job_id].state == JobState.RUNNING  # its reveal was not settled here
    assert jobs[model.job_id].state == JobState.RUNNING  # failed by job_fail, after the statement
    assert jobs[serving.job_id].state == JobState.CANCELLED
