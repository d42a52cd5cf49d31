"""TEST01 of the serving suite on the platform: the outputs kept during the timed LoadGen runs are
checked against the job's challenge at ingestion and re-judged by the output-consistency blocker.
Fed by the real runner's serving document (tests/real_documents.py), through the real ingestion."""

from __future__ import annotations

import json

from apps.certificates.models import CriterionOutcome
from tests.real_documents import campaign_from_runner


def _serving_item(document: dict) -> dict:
    items = document["integrity"]["output_consistency"]["items"]
    return next(i for i in items if i.get("suite") == "serving")


def _outcomes(cast, aia12, edit) -> dict:
    outcomes: dict = {}
    campaign_from_runner(
        vendor=cast.vendor,
        program=aia12,
        submitted_by=cast.owner,
        edit=edit,
        outcomes=outcomes,
        evaluate=False,
    )
    return outcomes


def test_the_honest_serving_document_carries_its_timed_output_sample_and_passes_b8(cast, aia12):
    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, submitted_by=cast.owner)
    serving = campaign.jobs.get(suite="serving").document
    item = _serving_item({"integrity": serving.integrity})
    assert item["verdict"] == "pass" and item["sampled"] > 0
    b8 = campaign.criterion_results.get(criterion_id="B8")
    assert b8.outcome == CriterionOutcome.PASS, b8.explanation
    assert any(v.get("model") == item["model"] for v in b8.evidence["verdicts"])


def test_a_serving_document_without_the_timed_output_sample_is_refused(cast, aia12):
    def drop(suite, document):
        if suite == "serving":
            document.pop("integrity")

    outcomes = _outcomes(cast, aia12, drop)
    assert not outcomes["serving"].accepted
    assert "no output-consistency sample of the timed serving runs" in outcomes["serving"].reason


def test_served_outputs_kept_at_another_challenges_positions_are_refused(cast, aia12):
    def replay(suite, document):
        if suite == "serving":
            run = _serving_item(document)["runs"][-1]
            run["positions"] = [p + 1 for p in run["positions"]]

    outcomes = _outcomes(cast, aia12, replay)
    assert not outcomes["serving"].accepted
    assert "not the ones this job's challenge draws" in outcomes["serving"].reason


def test_a_sample_that_leaves_out_a_timed_run_is_refused(cast, aia12):
    def drop_run(suite, document):
        if suite == "serving":
            item = _serving_item(document)
            gone = item["runs"].pop()
            item["sampled"] -= len(gone["positions"])
            document["integrity"]["output_consistency"]["sampled"] -= len(gone["positions"])

    outcomes = _outcomes(cast, aia12, drop_run)
    assert not outcomes["serving"].accepted
    assert "does not cover every timed serving run" in outcomes["serving"].reason


def test_stale_outputs_under_load_fail_the_output_consistency_blocker(cast, aia12):
    def stale(suite, document):  # what the runner records when the device served stale outputs
        if suite == "serving":
            item = _serving_item(document)
            item.update(verdict="fail", mismatches=item["sampled"])
            section = document["integrity"]["output_consistency"]
            section.update(verdict="fail", mismatches=section["mismatches"] + item["sampled"])

    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, submitted_by=cast.owner, edit=stale)
    b8 = campaign.criterion_results.get(criterion_id="B8")
    assert b8.blocker and b8.outcome == CriterionOutcome.FAIL
    assert "tiny-bert" in b8.explanation


# Commit and reveal of served outputs -------------------------------------------------------------


def test_the_serving_outputs_are_committed_and_a_reveal_is_judged_the_same_on_the_platform(cast, aia12):
    from apps.runs.models import OutputReveal, RevealState

    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, submitted_by=cast.owner)
    reveal = OutputReveal.objects.get(job__campaign=campaign, job__suite="serving")
    assert reveal.state == RevealState.VERIFIED, reveal.findings
    assert reveal.requested and all(i.startswith("serving/tiny-bert/") for i in reveal.requested)
    assert all(c["digest_matches"] and c["agrees"] for c in reveal.checked), reveal.checked
    assert {c["server_status"] for c in reveal.checked} == {"pass"}
    document = campaign.jobs.get(suite="serving").document
    assert any(i.endswith("/accuracy") for i in (e["id"] for e in document_commitment(document)))
    assert campaign.criterion_results.get(criterion_id="B12").outcome == CriterionOutcome.PASS


def document_commitment(stored) -> list[dict]:
    with stored.content.open("rb") as handle:
        return json.loads(handle.read())["commitment"]["outputs"]


def test_a_runner_whose_served_output_statuses_the_platform_does_not_share_fails_b12(cast, aia12):
    from apps.runs.models import OutputReveal, RevealState

    def lie(suite, document):  # every kept output reported failing, whatever it was
        if suite == "serving":
            item = _serving_item(document)
            item["sample_status"] = dict.fromkeys(item["sample_status"], "fail")

    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, submitted_by=cast.owner, edit=lie)
    reveal = OutputReveal.objects.get(job__campaign=campaign, job__suite="serving")
    assert reveal.state == RevealState.MISMATCH
    assert any("the platform judges it pass, the runner said fail" in f for f in reveal.findings)
    b12 = campaign.criterion_results.get(criterion_id="B12")
    assert b12.blocker and b12.outcome == CriterionOutcome.FAIL


def test_a_serving_document_that_does_not_commit_its_accuracy_outputs_is_refused(cast, aia12):
    def drop(suite, document):
        if suite == "serving":
            outputs = document["commitment"]["outputs"]
            document["commitment"]["outputs"] = [o for o in outputs if not o["id"].endswith("/accuracy")]

    outcomes = _outcomes(cast, aia12, drop)
    assert not outcomes["serving"].accepted
    assert "judged outputs not committed" in outcomes["serving"].reason
