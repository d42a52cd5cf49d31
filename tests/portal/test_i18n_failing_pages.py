"""Failing campaigns' pages in zh-hans (issue 17): the sweep of tests/portal/test_i18n_pages.py visits
honest campaigns; here the campaigns fail, from documents the real runner produced on this CPU
(tests/real_documents.py) with a fault planted in them, and every text recorded on the way (criterion
explanations, the judge's details, the evidence page's anomalies, a failed or cancelled campaign's
reason, a refused approval) must reach a reader of Chinese in Chinese. Strict: no allow-list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client

from apps.runs.models import CampaignState, ErrorClass, JobState
from apps.runs.services.campaigns import campaign_cancel, campaign_check_completion, campaign_submit, job_fail
from apps.runs.services.programs import PROGRAMS_DIR
from certification.recorded_text import say
from runners.document import summarize
from tests.portal.test_i18n_pages import ZhSweep
from tests.real_documents import (
    campaign_from_runner,
    cpu_target,
    fail_test01,
    gemm_items,
    peak_fp32,
    runner_documents,
)

pytestmark = pytest.mark.django_db(transaction=False)


def planted(*faults):
    def edit(suite, document):
        for fault in faults:
            fault(suite, document)

    return edit


def above_peak(suite: str, document: dict) -> None:
    """A GEMM timed at 1.2 x the declared peak (a cheated timing)."""
    if suite == "performance":
        for item in gemm_items(document):
            item["unstable"] = False
        gemm_items(document)[0]["value"] = peak_fp32() * 1.2


def semantic_failure(suite: str, document: dict) -> None:
    """The runner reports its semantic cases (masking, NaN propagation, ...) as failed."""
    from apps.certificates import judge

    if suite != "conformance":
        return
    definition = json.loads(Path(PROGRAMS_DIR, "aia-1.2.json").read_text())
    rule = judge.semantic_rule(definition["levels"][0]["thresholds"]["semantic_cases"]["value"])
    failed = 0
    for case in document["cases"]:
        if case["status"] == "pass" and judge.semantic_tags(
            kernel=case["kernel"], case=case["case"], rule=rule
        ):
            case["status"] = "fail"
            case["stats"] = {**case["stats"], "mismatches": 1, "mismatch_fraction": 0.01}
            failed += 1
    document["summary"] = summarize(document["cases"])
    assert failed, "the tiny plan has no semantic case to fail"


def failing_campaigns(cast, program) -> dict[str, object]:
    """Campaigns that fail in every way a reader meets: judged and blocked, failed, cancelled."""
    runner_documents()
    integrity = campaign_from_runner(
        vendor=cast.vendor, program=program, submitted_by=cast.owner, edit=planted(fail_test01, above_peak)
    )
    target = integrity.target
    target.driver_version = "registered-after-the-run"  # a fingerprint mismatch: an anomaly
    target.save(update_fields=["driver_version"])
    semantic = campaign_from_runner(
        vendor=cast.vendor,
        program=program,
        submitted_by=cast.owner,
        target=cpu_target(vendor=cast.vendor, slug="cpu-semantic"),
        edit=planted(semantic_failure),
    )
    models = list(integrity.model_artifacts.all())

    def submit():
        return campaign_submit(
            vendor=cast.vendor,
            target=target,
            program=program,
            level="baseline",
            model_artifacts=models,
            submitted_by=cast.owner,
        )

    failed = submit()
    jobs = list(failed.jobs.order_by("id"))
    # What the sweeps record (apps/runs/services/sweeps.py): a deadline passed, a runner went silent.
    job_fail(job_id=jobs[0].pk, error_class=ErrorClass.TIMEOUT, message=say("job.deadline_passed"))
    for job in jobs[1:]:
        job_fail(
            job_id=job.pk,
            error_class=ErrorClass.INFRASTRUCTURE,
            message=say("job.runner_silent", runner="real-runner"),
        )
    campaign_check_completion(campaign_id=failed.pk)  # on commit in production
    failed.refresh_from_db()
    assert failed.state == CampaignState.FAILED and failed.jobs.filter(state=JobState.FAILED).count() == len(
        jobs
    )
    cancelled = submit()
    campaign_cancel(campaign=cancelled, actor=cast.owner, reason="供应商撤回申请")
    return {"integrity": integrity, "semantic": semantic, "failed": failed, "cancelled": cancelled}


def test_failing_campaigns_pages_in_zh_hans_have_no_untranslated_string(cast, aia12):
    campaigns = failing_campaigns(cast, aia12)
    blocked = campaigns["integrity"]
    assert "failed blocker" in blocked.state_reason, blocked.state_reason
    assert (
        "Semantic cases fail" in campaigns["semantic"].criterion_results.get(criterion_id="B11").explanation
    )
    sweep = ZhSweep()
    for user in (cast.owner, cast.reviewer):
        client = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
        client.force_login(user)
        for campaign in campaigns.values():
            sweep.get(client, f"/campaigns/{campaign.pk}/")
        sweep.get(client, "/campaigns/")
    # The certificate refused: the reviewer approves a blocked campaign; the page says why, in place.
    reviewer = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    reviewer.force_login(cast.reviewer)
    for name in ("integrity", "semantic"):
        path = f"/campaigns/{campaigns[name].pk}/approve/"
        response = reviewer.post(path, {"approve-reason": "证据已核对。"})
        assert response.status_code == 400, (path, response.status_code)
        sweep.visit(path, response)
    # The refusal decided: the reviewer rejects the semantic campaign; both readers see the reason.
    rejected = campaigns["semantic"]
    response = reviewer.post(f"/campaigns/{rejected.pk}/reject/", {"reject-reason": "语义用例未通过，驳回。"})
    assert response.status_code == 302, response.status_code
    for user in (cast.owner, cast.reviewer):
        client = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
        client.force_login(user)
        path = f"/campaigns/{rejected.pk}/"
        assert "语义用例未通过" in sweep.get(client, path).content.decode(), path
    report = sweep.report()
    print(f"untranslated strings on failing campaigns' pages: {len(report)}")
    print("\n".join(report))
    # The pages show what they should: a blocked evaluation, a failed semantic family.
    blocked = campaigns["integrity"]
    assert "failed blocker" in blocked.state_reason, blocked.state_reason
    semantic = campaigns["semantic"].criterion_results.get(criterion_id="B11")
    assert "Semantic cases fail" in semantic.explanation, semantic.explanation
    assert report == [], f"{len(report)} untranslated strings:\n" + "\n".join(report)
