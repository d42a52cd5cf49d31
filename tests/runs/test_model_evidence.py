"""Weights that really ran (issue 11, item 1) and unsupported cases that really were declared (item 2):
ingestion refuses evidence about other weights, and the spot check covers unsupported cases."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from apps.runs.models import JobSuite, ResultDocument
from apps.runs.services.campaigns import campaign_submit
from apps.runs.services.ingestion import result_ingest
from apps.runs.services.programs import program_load
from apps.runs.services.spot_check import spot_check_cases
from runners.document import summarize
from tests.factories import ModelArtifactFactory, model_weights_bytes
from tests.runs.test_ingestion import assert_rejected, produce, resign, submit

MODEL_PROGRAM = {
    "code": "TSTM",
    "version": "1.0",
    "title": "Test program with a model",
    "validity_days": 30,
    "surveillance_days": 7,
    "levels": [
        {
            "code": "models",
            "rank": 1,
            "title": "Models",
            "suites": {"model": {"dtypes": ["float32"], "quick": True, "min_models": 1}},
            "criteria": [
                {
                    "id": "M1",
                    "title": "Model accuracy",
                    "kind": "model_accuracy",
                    "blocker": True,
                    "params": {"dtype": "float32", "min_cosine": 0.999, "models": "all"},
                },
            ],
        }
    ],
}


@pytest.fixture
def model_job(cpu_world):
    program, _ = program_load(definition=MODEL_PROGRAM)
    artifact = ModelArtifactFactory(owner=cpu_world.vendor)
    campaign = campaign_submit(
        vendor=cpu_world.vendor,
        target=cpu_world.target,
        program=program,
        level="models",
        model_artifacts=[artifact],
        submitted_by=cpu_world.engineer,
    )
    job = campaign.jobs.get(suite=JobSuite.MODEL)
    return job, artifact


@pytest.mark.slow
def test_the_document_records_the_digest_of_the_registered_weights_and_is_accepted(cpu_world, model_job):
    job, artifact = model_job
    outcome = result_ingest(envelope=produce(job, cpu_world.identity))
    assert outcome.accepted, outcome.reason
    document = json.loads(ResultDocument.objects.get(job=job).content.read())
    [record] = document["models"]
    assert record["weights_sha256"] == artifact.weights_sha256 and record["loaded"] is True
    assert record["weights_bytes"] == artifact.weights_size


@pytest.mark.slow
def test_weights_swapped_on_disk_after_upload_are_refused(cpu_world, model_job):
    job, artifact = model_job
    Path(artifact.weights.path).write_bytes(model_weights_bytes(999))  # same architecture, other weights
    envelope = produce(job, cpu_world.identity)
    document = json.loads(envelope["document_json"])
    assert document["models"][0]["weights_sha256"] != artifact.weights_sha256  # the runner saw the change
    outcome = result_ingest(envelope=envelope)
    assert not outcome.accepted
    assert_rejected(job, "not the registered artifact's")


@pytest.mark.slow
def test_a_runner_that_ignores_the_registered_digest_is_caught_at_ingestion(cpu_world, model_job):
    job, artifact = model_job
    Path(artifact.weights.path).write_bytes(model_weights_bytes(998))
    for entry in job.spec["models"]:
        entry.pop("sha256")  # the runner no longer checks: it runs whatever the file holds
    envelope = produce(job, cpu_world.identity)
    assert json.loads(envelope["document_json"])["models"][0]["loaded"] is True
    assert not result_ingest(envelope=envelope).accepted
    assert_rejected(job, "not the registered artifact's")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.pop("models"), "records no weights digests"),
        (lambda d: d["models"][0].update(weights_sha256="ab" * 32), "not the registered artifact's"),
        (lambda d: d["models"][0].update(weights_sha256=None), "no digest recorded"),
        (lambda d: d.update(models=[]), "no registered weights were loaded"),
    ],
)
def test_a_document_without_the_registered_digests_is_refused(cpu_world, model_job, mutate, reason):
    job, _artifact = model_job
    envelope = resign(produce(job, cpu_world.identity), cpu_world.identity, mutate)
    assert not result_ingest(envelope=envelope).accepted
    assert_rejected(job, reason)


# Unsupported cases are checked against the backend's declaration -------------------------------------


@pytest.fixture
def conformance_job(cpu_world):
    return submit(cpu_world).jobs.get()


@pytest.mark.slow
def test_a_failed_case_relabelled_unsupported_is_refused(cpu_world, conformance_job):
    def dodge(document):
        case = document["cases"][0]
        case.update(
            status="unsupported",
            error_class="unsupported",
            code="unsupported_op",
            reason="not supported",
            stats=None,
        )
        document["summary"] = summarize(document["cases"])  # consistent: only the declaration betrays it

    envelope = resign(produce(conformance_job, cpu_world.identity), cpu_world.identity, dodge)
    assert not result_ingest(envelope=envelope).accepted
    assert_rejected(conformance_job, "the backend declared it supported")


@pytest.mark.slow
def test_unsupported_cases_the_backend_declared_are_accepted(cpu_world, conformance_job):
    def declare_argmax_unsupported(document):
        document["support"]["unsupported_kernels"]["argmax"] = "no argmax unit"
        for case in document["cases"]:
            if case["kernel"] == "argmax":
                case.update(
                    status="unsupported",
                    error_class="unsupported",
                    code="unsupported_op",
                    reason="declared unsupported: no argmax unit",
                    stats=None,
                    output_digest=None,
                )
        document["summary"] = summarize(document["cases"])

    envelope = resign(
        produce(conformance_job, cpu_world.identity), cpu_world.identity, declare_argmax_unsupported
    )
    outcome = result_ingest(envelope=envelope)
    assert outcome.accepted, outcome.reason
    assert outcome.document.spot_check["unsupported_checked"] > 0


def test_the_spot_check_samples_unsupported_cases_and_finds_invented_ones():
    declaration = {"dtypes": ["float32"], "unsupported_kernels": {"softmax": "none"}}
    cases = [
        {
            "kernel": "softmax",
            "dtype": "float32",
            "case": "odd_sizes",
            "status": "unsupported",
            "code": "unsupported_op",
        },
        {
            "kernel": "softmax",
            "dtype": "float32",
            "case": "made_up_case",
            "status": "unsupported",
            "code": "unsupported_op",
        },
    ]
    document = {
        "suite": "conformance",
        "spec": {"challenge": "00" * 32},
        "support": declaration,
        "cases": cases,
    }
    report = spot_check_cases(document, sample_size=5, rng=random.Random(1))
    assert set(report["sampled"]) == {"softmax/float32/odd_sizes", "softmax/float32/made_up_case"}
    assert report["failures"] == [
        "softmax/float32/made_up_case: recorded unsupported, but the catalog has no such case"
    ]


def test_unsupported_with_the_wrong_code_or_no_declaration_fails_the_spot_check():
    case = {
        "kernel": "matmul",
        "dtype": "float16",
        "case": "square",
        "status": "unsupported",
        "code": "unsupported_op",
    }
    declared = {
        "suite": "model",
        "support": {"dtypes": ["float32"], "unsupported_kernels": {}},
        "cases": [case],
    }
    assert (
        "makes it unsupported_dtype"
        in spot_check_cases(declared, sample_size=1, rng=random.Random(0))["failures"][0]
    )
    undeclared = {"suite": "model", "cases": [case]}
    assert (
        "no support declaration"
        in spot_check_cases(undeclared, sample_size=1, rng=random.Random(0))["failures"][0]
    )
