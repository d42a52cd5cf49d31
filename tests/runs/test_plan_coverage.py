"""Evidence must cover the job's plan exactly, and every case status is the server's, not the document's.

Each document here is the real runner's, then altered and re-signed with the runner's own key:
what a vendor that controls its runner host can send.
"""

from __future__ import annotations

import copy
import json

import pytest

from apps.runs.models import CaseResult, EvidenceRejection, JobState, ResultDocument
from apps.runs.services.campaigns import campaign_submit
from apps.runs.services.coverage import evidence_plan_problems
from apps.runs.services.ingestion import result_ingest
from runners.document import canonical_json, summarize
from runners.worker import run_job
from tests.real_documents import CHALLENGE, campaign_from_runner


@pytest.fixture
def job(cpu_world):
    """A conformance job of the test program: cumsum and argmax in float32."""
    campaign = campaign_submit(
        vendor=cpu_world.vendor,
        target=cpu_world.target,
        program=cpu_world.program,
        level="basic",
        model_artifacts=[],
        submitted_by=cpu_world.engineer,
    )
    return campaign.jobs.get()


def run(spec, identity) -> dict:
    envelope = run_job(spec, identity=identity, report=lambda name, message: None)
    assert envelope is not None
    return json.loads(envelope["document_json"])


def forge(document, identity, mutate=None) -> dict:
    """Alter the document as a hostile vendor would (summary made consistent) and re-sign it."""
    if mutate:
        mutate(document)
    document["summary"] = summarize(document["cases"])
    return identity.envelope(canonical_json(document))


def assert_refused(job, outcome, fragment):
    assert not outcome.accepted
    assert fragment in outcome.reason, outcome.reason
    assert ResultDocument.objects.count() == 0 and CaseResult.objects.count() == 0
    assert fragment in EvidenceRejection.objects.get(job=job).reason
    job.refresh_from_db()
    assert job.state == JobState.FAILED


@pytest.mark.slow
def test_the_genuine_document_of_the_plan_is_accepted(cpu_world, job):
    outcome = result_ingest(envelope=forge(run(job.spec, cpu_world.identity), cpu_world.identity))
    assert outcome.accepted, outcome.reason


@pytest.mark.slow
def test_a_document_of_fewer_kernels_than_the_plan_is_refused(cpu_world, job):
    document = run({**job.spec, "kernels": ["cumsum"]}, cpu_world.identity)  # the 1-of-31 kernels
    assert_refused(job, result_ingest(envelope=forge(document, cpu_world.identity)), "the job's plan is")


@pytest.mark.slow
def test_a_document_missing_planned_cases_is_refused_even_when_it_echoes_the_plan(cpu_world, job):
    def drop(document):
        document["cases"] = [c for c in document["cases"] if c["case"] not in {"nan_wins", "empty_rows"}]

    outcome = result_ingest(envelope=forge(run(job.spec, cpu_world.identity), cpu_world.identity, drop))
    assert_refused(job, outcome, "planned cases missing")
    assert "2 planned cases missing: argmax/float32/nan_wins, cumsum/float32/empty_rows" in outcome.reason


@pytest.mark.slow
def test_a_document_with_cases_outside_the_plan_is_refused(cpu_world, job):
    document = run({**job.spec, "kernels": ["cumsum", "argmax", "add"]}, cpu_world.identity)
    outcome = result_ingest(
        envelope=forge(document, cpu_world.identity, lambda d: d["spec"].update(kernels=job.spec["kernels"]))
    )
    assert_refused(job, outcome, "cases outside the plan")
    assert "add/float32/" in outcome.reason


@pytest.mark.slow
def test_a_case_recorded_twice_is_refused(cpu_world, job):
    outcome = result_ingest(
        envelope=forge(
            run(job.spec, cpu_world.identity),
            cpu_world.identity,
            lambda d: d["cases"].append(dict(d["cases"][0])),
        )
    )
    assert_refused(job, outcome, "recorded twice")


@pytest.mark.parametrize("echo_the_plan", [False, True])
@pytest.mark.slow
def test_a_document_with_a_dtype_outside_the_plan_is_refused(cpu_world, job, echo_the_plan):
    document = run({**job.spec, "dtypes": ["float32", "bfloat16"]}, cpu_world.identity)
    mutate = (lambda d: d["spec"].update(dtypes=job.spec["dtypes"])) if echo_the_plan else None
    outcome = result_ingest(envelope=forge(document, cpu_world.identity, mutate))
    assert_refused(
        job, outcome, "cases outside the plan" if echo_the_plan else "dtypes=['float32', 'bfloat16']"
    )


def _exceeding(document):
    case = next(c for c in document["cases"] if c["status"] == "pass" and c["stats"]["max_abs"] is not None)
    # The device's output was outside tolerance; the status still says pass.
    case["stats"].update(max_abs=1.0, tolerance_ratio=40.0, mismatches=3, mismatch_fraction=0.01)
    return case


@pytest.mark.slow
def test_a_case_that_says_pass_while_its_stats_exceed_the_catalog_tolerance_is_refused(cpu_world, job):
    labels = []
    outcome = result_ingest(
        envelope=forge(
            run(job.spec, cpu_world.identity),
            cpu_world.identity,
            lambda d: labels.append(_exceeding(d)["case"]),
        )
    )
    assert_refused(job, outcome, "statuses the stats and the catalog's tolerance contradict")
    assert f"/{labels[0]} says pass, its stats make it fail" in outcome.reason


@pytest.mark.slow
def test_a_case_judged_with_a_looser_tolerance_than_the_catalogs_is_refused(cpu_world, job):
    def loosen(document):
        case = _exceeding(document)
        case["stats"].update(atol=10.0, rtol=10.0, tolerance_ratio=0.1, mismatches=0, mismatch_fraction=0.0)

    outcome = result_ingest(envelope=forge(run(job.spec, cpu_world.identity), cpu_world.identity, loosen))
    assert_refused(job, outcome, "the catalog's tolerance is")


@pytest.mark.slow
def test_a_forged_summary_is_refused(cpu_world, job):
    document = run(job.spec, cpu_world.identity)
    document["summary"]["passed"] += 1
    outcome = result_ingest(envelope=cpu_world.identity.envelope(canonical_json(document)))
    assert_refused(job, outcome, "the summary is not the one its cases make")


# Performance and model documents: the real runner's tiny documents (tests/real_documents.py), ingested
# into an AIA campaign whose jobs' plans are what the runner ran.


@pytest.fixture
def aia(db):
    from tests.certificates.evidence import aia_program

    return aia_program()


def _ingest_real(cast, program, **changes) -> dict:
    outcomes: dict = {}
    campaign_from_runner(
        vendor=cast.vendor,
        program=program,
        submitted_by=cast.owner,
        outcomes=outcomes,
        evaluate=False,
        **changes,
    )
    return outcomes


def test_real_documents_of_the_plan_are_accepted(cast, aia):
    outcomes = _ingest_real(cast, aia)
    assert {suite: o.accepted for suite, o in outcomes.items()} == dict.fromkeys(outcomes, True), outcomes


@pytest.mark.parametrize(
    "option, value",
    [
        ("timing", {"min_time_s": 0.001, "max_time_s": 0.002, "min_samples": 1}),  # another timing policy
        ("quick", True),
        ("performance", {"dtypes": ["float32"], "gemm_sizes": [64], "bandwidth_bytes": 1 << 20}),
    ],
)
def test_a_performance_document_with_other_options_than_the_plan_is_refused(cast, aia, option, value):
    outcomes = _ingest_real(
        cast,
        aia,
        edit=lambda suite, d: suite == "performance" and d["spec"]["options"].update({option: value}),
    )
    assert outcomes["conformance"].accepted and outcomes["model"].accepted
    assert not outcomes["performance"].accepted
    assert "the document ran options=" in outcomes["performance"].reason


def test_a_model_document_missing_a_planned_model_is_refused(cast, aia):
    def second_model(suite, spec):
        if suite == "model":
            spec["models"] = [
                *spec["models"],
                {**spec["models"][0], "name": "tiny-bert-large", "sha256": "ab" * 32},
            ]

    outcomes = _ingest_real(cast, aia, plan=second_model)
    assert not outcomes["model"].accepted
    assert "the document ran models ['tiny-bert'] other than the plan's" in outcomes["model"].reason


def test_a_model_document_that_echoes_the_plan_but_omits_a_model_is_refused(cast, aia):
    def second_model(suite, spec):
        if suite == "model":
            spec["models"] = [
                *spec["models"],
                {**spec["models"][0], "name": "tiny-bert-large", "sha256": "ab" * 32},
            ]

    def echo(suite, document):
        if suite == "model":
            second_model(suite, document["spec"])

    outcomes = _ingest_real(cast, aia, plan=second_model, edit=echo)
    assert not outcomes["model"].accepted
    assert "the document records models ['tiny-bert'], the plan has ['tiny-bert', 'tiny-bert-large']" in (
        outcomes["model"].reason
    )


def test_a_model_document_without_a_planned_dtype_result_is_refused(cast, aia):
    def drop(suite, document):
        if suite == "model":
            document["cases"] = [c for c in document["cases"] if c["dtype"] != "float32"]
            document["summary"] = summarize(document["cases"])

    outcomes = _ingest_real(cast, aia, edit=drop)
    assert not outcomes["model"].accepted
    assert "planned model results missing: tiny-bert/float32" in outcomes["model"].reason


def test_a_performance_document_replayed_into_another_job_is_refused(cast, aia):
    """The issue's replay: job id and challenge rewritten, re-signed with the runner's key."""
    from runners.integrity import sample_indices
    from tests.real_documents import runner_documents

    measured = len(runner_documents().documents["performance"]["measurements"])
    original = sample_indices(CHALLENGE, measured, 3, salt="performance")
    fresh = next(  # another job's challenge, whose TEST01 draw differs (34 of 35 do)
        c
        for c in (f"{n:064x}" for n in range(1, 100))
        if sample_indices(c, measured, 3, salt="performance") != original
    )

    def new_job(suite, spec):
        if suite == "performance":
            spec["challenge"] = fresh

    def rewrite(suite, document):
        if suite == "performance":
            document["spec"]["challenge"] = fresh

    outcomes = _ingest_real(cast, aia, plan=new_job, edit=rewrite)
    assert outcomes["conformance"].accepted and outcomes["model"].accepted
    assert not outcomes["performance"].accepted
    assert "the output-consistency rounds are not the ones this job's challenge draws" in (
        outcomes["performance"].reason
    )


def test_the_check_reads_only_the_plan_and_the_document():
    """A pure function: a genuine document against its own plan has no problem, a changed plan has."""
    plan = {"suite": "conformance", "device": "cpu", "kernels": ["argmax"], "dtypes": ["float32"]}
    assert evidence_plan_problems(
        document={"spec": plan, "cases": [], "summary": summarize([])}, plan={**plan, "dtypes": ["bfloat16"]}
    )


def _full_plan_document(plan):
    from runners.conformance import planned_cases

    triples, _unknown = planned_cases(None, None, None, plan["challenge"])
    cases = []
    for kernel, dtype, case in triples:
        tolerance = kernel.tolerance(case, dtype)
        stats = {
            "mismatches": 0,
            "mismatch_fraction": 0.0,
            "tolerance_ratio": 0.5,
            "atol": tolerance.atol,
            "rtol": tolerance.rtol,
        }
        cases.append(
            {
                "kernel": kernel.name,
                "dtype": dtype,
                "case": case.name,
                "dims": dict(case.dims),
                "status": "pass",
                "error_class": None,
                "stats": stats,
            }
        )
    return {"spec": dict(plan), "cases": cases, "summary": summarize(cases)}


def test_the_whole_catalog_plan_is_expanded_as_the_runner_does():
    """A job that names no kernel plans the whole catalog (617 cases today); each must be there once."""
    plan = {"suite": "conformance", "device": "cpu", "challenge": "ab" * 32}
    document = _full_plan_document(plan)
    assert len(document["cases"]) > 600
    assert evidence_plan_problems(document=document, plan=plan) == []
    # The shapes are the challenge's draw: the same record under another job's challenge is refused.
    other = {**plan, "challenge": "cd" * 32}
    assert any(
        "the job's challenge draws" in p for p in evidence_plan_problems(document=document, plan=other)
    )
    del document["cases"][100]
    document["summary"] = summarize(document["cases"])
    assert evidence_plan_problems(document=document, plan=plan)[0].startswith("1 planned cases missing")


def test_a_model_document_states_its_timing_policy_and_it_must_be_the_plans():
    from tests.real_documents import runner_documents

    for suite in ("model", "performance"):
        document = copy.deepcopy(runner_documents().documents[suite])
        plan = copy.deepcopy(document["spec"])
        assert document["timing_policy"]["quick"] is False
        assert evidence_plan_problems(document=document, plan=plan) == []
        # Timed with a looser policy than planned (shorter runs, a noisier median): refused.
        document["timing_policy"]["min_time_s"] = 0.001
        assert any("another policy" in p for p in evidence_plan_problems(document=document, plan=plan))
        del document["timing_policy"]
        assert any(
            "does not state the timing policy" in p
            for p in evidence_plan_problems(document=document, plan=plan)
        )
        # The program's clock bounds are part of the plan's policy.
        document = copy.deepcopy(runner_documents().documents[suite])
        plan["options"]["timing"] = {
            **plan["options"]["timing"],
            "clock_ratio_min": 0.5,
            "clock_ratio_max": 1.05,
        }
        document["spec"] = plan
        assert any("clock_ratio_min" in p for p in evidence_plan_problems(document=document, plan=plan))
