"""Result document: canonical JSON, NaN never serialized, schema validation; job spec validation."""

from __future__ import annotations

import json

import pytest

from runners.backends import get_backend
from runners.conformance import run_conformance
from runners.document import DocumentInvalid, build_document, canonical_json, json_safe, validate_document
from runners.spec import SpecInvalid, build_spec, validate_spec

CHALLENGE = "ab" * 16


def small_document() -> dict:
    spec = build_spec(
        suite="conformance",
        device="cpu",
        challenge=CHALLENGE,
        kernels=["softmax"],
        dtypes=["float32"],
        cases=["nan_inf", "odd_sizes"],
    )
    return run_conformance(spec, get_backend("cpu"))


def test_canonical_json_is_rfc8785():
    # RFC 8785 writes numbers as ECMAScript does (1.0 is 1, 1e-07 is 1e-7), sorted keys, UTF-8.
    assert canonical_json({"b": 1.0, "a": [1.5, "é", 1e-07]}) == '{"a":[1.5,"é",1e-7],"b":1}'.encode()


def test_canonical_json_refuses_integers_beyond_the_safe_range():
    with pytest.raises(ValueError):
        canonical_json({"x": 2**53})


def test_canonical_json_refuses_nan():
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_non_finite_statistics_become_null():
    assert json_safe({"max_abs": float("inf"), "v": [float("nan"), 1.0]}) == {
        "max_abs": None,
        "v": [None, 1.0],
    }
    document = build_document(
        "conformance",
        {"challenge": CHALLENGE, "suite": "conformance", "device": "cpu"},
        get_backend("cpu").fingerprint(),
        [],
        {"total_s": float("nan")},
        "2026-01-01T00:00:00Z",
    )
    assert document["timings"]["total_s"] is None


def test_a_real_document_validates_and_round_trips_through_canonical_json():
    document = small_document()
    validate_document(document)
    assert json.loads(canonical_json(document)) == document
    assert document["schema_version"] == "1.0"
    assert set(document["timings"]) >= {"total_s", "reference_s", "device_s"}


def test_validation_names_what_is_wrong():
    document = small_document()
    del document["summary"]
    document["cases"][0]["status"] = "great"
    with pytest.raises(DocumentInvalid) as excinfo:
        validate_document(document)
    assert "summary" in str(excinfo.value) and "cases/0/status" in str(excinfo.value)


def test_performance_sections_are_accepted_by_the_schema():
    document = small_document()
    document["suite"] = "performance"
    document["measurements"] = []  # items are defined by the performance suite (issue 4)
    document["integrity"] = {}
    validate_document(document)


@pytest.mark.parametrize(
    "change",
    [
        {"challenge": "short"},
        {"challenge": "XYZ" * 20},
        {"suite": "benchmarks"},
        {"device": "Bad Device"},
        {"unexpected": True},
        {"kernels": "matmul"},
        {"limits": {"time_s": -1}},
    ],
)
def test_schema_invalid_specs_are_refused(change):
    spec = {
        "schema_version": "1.0",
        "suite": "conformance",
        "device": "cpu",
        "challenge": CHALLENGE,
        **change,
    }
    with pytest.raises(SpecInvalid):
        validate_spec(spec)


def test_a_full_platform_spec_is_accepted():
    validate_spec(
        {
            "schema_version": "1.0",
            "job_id": "job-1",
            "suite": "model",
            "device": "cuda:0",
            "challenge": CHALLENGE,
            "target": {"slug": "acme-x1", "backend": "cuda", "expected_fingerprint": {"device_name": "X1"}},
            "declared": {"peak_tflops": {"bf16": 100.0, "int8": 200.0}, "memory_bandwidth_gbs": 1000},
            "models": [
                {
                    "name": "minilm",
                    "version": "1",
                    "architecture": "bert",
                    "config": {},
                    "task": "embedding",
                    "weights_path": "/w/model.safetensors",
                    "sha256": "0" * 64,
                }
            ],
            "limits": {"time_s": 600},
        }
    )
