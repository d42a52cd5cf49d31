"""Refused evidence in zh-hans (issue 17): documents the real runner produced on this CPU
(tests/real_documents.py), each spoiled in one of the ways ingestion refuses, sent through the platform's
real ingestion (apps/runs/services/ingestion.py). The job errors, the rejection reasons and the failed
campaign's reason they leave are read by the vendor and the reviewer on the campaign's page, and must
reach a reader of Chinese in Chinese: the strict sweep of tests/portal/test_i18n_pages.py, no allow-list.

What is recorded stays the English record of a phrase (certification/recorded_text.py): each job error
and rejection reason is read back as a phrase's code and params (the API serves that record as it is)."""

from __future__ import annotations

import copy

import pytest
from django.test import Client
from django.utils import translation
from rest_framework.test import APIClient

from apps.runs.models import CampaignState, EvidenceRejection, JobState
from apps.runs.services.campaigns import campaign_check_completion, campaign_submit
from apps.runs.services.ingestion import result_ingest
from certification.recorded_text import localize, parse
from runners.document import canonical_json
from tests.portal.test_i18n_pages import ZhSweep
from tests.real_documents import campaign_from_runner, cpu_target, runner_documents
from tests.runs.world import identity_for

pytestmark = pytest.mark.django_db(transaction=False)


def spoiled(suite: str, document: dict) -> None:
    """One refusal per suite, each of another kind (every one of them fails its job)."""
    if suite == "conformance":
        # A planned case left out, and a case whose status its own stats contradict.
        dropped = document["cases"].pop()
        assert dropped["status"] in ("pass", "fail", "unsupported")
        first = next(case for case in document["cases"] if case["status"] == "pass")
        first["status"] = "fail"
    elif suite == "performance":
        # Not what the result schema allows: a figure that is not a number.
        document["measurements"][0]["value"] = "fast"
    elif suite == "model":
        # Weights that are not the campaign's artifact.
        for model in document["models"]:
            model["weights_sha256"] = "0" * 64
    elif suite == "serving":
        # A commitment that leaves out an output a verdict rests on.
        document["commitment"]["outputs"] = document["commitment"]["outputs"][1:]


def refused_campaigns(cast, program):
    """A campaign whose every document is refused (it fails, and says why), and one whose job got
    envelopes it refused without failing it: a replayed challenge, a stranger's key, a tampered digest."""
    real = runner_documents()
    outcomes: dict = {}
    failed = campaign_from_runner(
        vendor=cast.vendor,
        program=program,
        submitted_by=cast.owner,
        edit=spoiled,
        outcomes=outcomes,
        evaluate=False,
        reveal=False,
    )
    assert not any(outcome.accepted for outcome in outcomes.values()), outcomes
    campaign_check_completion(campaign_id=failed.pk)  # on commit in production
    failed.refresh_from_db()
    assert failed.state == CampaignState.FAILED, (failed.state, failed.state_reason)
    assert failed.jobs.filter(state=JobState.FAILED).count() == failed.jobs.count()
    # The runner sends again to a job that failed: refused, the job stays as it is.
    job = failed.jobs.order_by("id").first()
    document = copy.deepcopy(real.documents[job.suite])
    document["spec"] = {**document["spec"], "job_id": str(job.pk)}
    assert not result_ingest(envelope=real.identity.envelope(canonical_json(document))).accepted

    waiting = campaign_submit(
        vendor=cast.vendor,
        target=failed.target,
        program=program,
        level="baseline",
        model_artifacts=list(failed.model_artifacts.all()),
        submitted_by=cast.owner,
    )
    job = waiting.jobs.order_by("id").first()
    document = copy.deepcopy(real.documents[job.suite])
    document["spec"] = {**document["spec"], "job_id": str(job.pk)}  # the session's challenge, not the job's
    replayed = real.identity.envelope(canonical_json(document))
    stranger, _ = identity_for("stranger")
    tampered = {**replayed, "document_sha256": "f" * 64}
    for envelope in (replayed, stranger.envelope(canonical_json(document)), tampered):
        assert not result_ingest(envelope=envelope).accepted
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and job.rejections.count() == 3
    # Accepted evidence whose sampled outputs the runner has not revealed yet: its jobs say so.
    revealing = campaign_from_runner(
        vendor=cast.vendor,
        program=program,
        submitted_by=cast.owner,
        target=cpu_target(vendor=cast.vendor, slug="cpu-revealing"),
        evaluate=False,
        reveal=False,
    )
    assert revealing.jobs.filter(progress_message="awaiting the reveal of sampled outputs").exists()
    return failed, waiting, revealing


def test_refused_evidence_reads_in_zh_hans_and_is_recorded_as_phrases(cast, aia12):
    failed, waiting, revealing = refused_campaigns(cast, aia12)
    recorded = [
        *failed.jobs.values_list("error_message", flat=True),
        *EvidenceRejection.objects.filter(job__campaign__in=[failed, waiting]).values_list(
            "reason", flat=True
        ),
        failed.state_reason,
    ]
    assert len(recorded) == failed.jobs.count() + failed.jobs.count() + 1 + 3 + 1
    sweep = ZhSweep()
    with translation.override("zh-hans"):
        for text in recorded:
            sweep.text("the recorded text", localize(text))
    for user in (cast.owner, cast.reviewer):
        client = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
        client.force_login(user)
        for campaign in (failed, waiting, revealing):
            sweep.get(client, f"/campaigns/{campaign.pk}/")
            # The page's live progress, as its script fetches it.
            progress = client.get(f"/campaigns/{campaign.pk}/progress.json")
            assert progress.status_code == 200, progress.status_code
            for job in progress.json()["jobs"]:
                sweep.text(f"/campaigns/{campaign.pk}/progress.json", job["message"])
        sweep.get(client, "/campaigns/")
    # The API serves the record as it was written (in English, the words it was decided in).
    api = APIClient()
    api.force_authenticate(cast.owner)
    served = api.get(f"/api/v1/campaigns/{failed.pk}/").json()
    assert served["state_reason"] == failed.state_reason
    assert {job["error_message"] for job in served["jobs"]} == set(
        failed.jobs.values_list("error_message", flat=True)
    )
    report = sweep.report()
    print(f"untranslated strings on refused evidence's pages: {len(report)}")
    print("\n".join(report))
    assert report == [], f"{len(report)} untranslated strings:\n" + "\n".join(report)
    # Each record is a phrase's English text: its code and params are read back from it.
    unknown = [text for text in recorded if parse(text) is None]
    assert unknown == [], unknown
