"""Typed error classes (issue 11, item 2): "unsupported" is what the backend declared before running,
never what an exception's text says; everything that raises after being declared supported fails."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch

from runners.backends import ENTRY_POINT_GROUP, CpuBackend, get_backend
from runners.catalog.linear_algebra import MatmulKernel
from runners.conformance import run_conformance
from runners.document import validate_document
from runners.errors import (
    CODES,
    ERROR_CLASS,
    Classified,
    classify_exception,
    declared_unsupported,
)
from runners.model_suite import run_model
from runners.models.resnet import ResNetConfig
from runners.models.seeded import seeded_model_entry
from runners.performance import run_performance_suite
from runners.spec import build_spec

CHALLENGE = "0123456789abcdef" * 4


class MatmulSaysNotSupported(MatmulKernel):
    """A kernel whose device call raises the words that used to make a case "unsupported"."""

    name = "broken_matmul_says_not_supported"

    def run(self, inputs):
        raise RuntimeError("addmm: operation not supported on this device (unsupported dtype)")


class MatmulNotImplemented(MatmulKernel):
    name = "broken_matmul_not_implemented_error"

    def run(self, inputs):
        raise NotImplementedError('"addmm" not implemented for this dtype')


class MatmulOutOfMemory(MatmulKernel):
    name = "broken_matmul_oom"

    def run(self, inputs):
        raise torch.OutOfMemoryError("device out of memory")


class MatmulHarnessFails(MatmulKernel):
    name = "broken_matmul_reference"

    def reference(self, inputs):
        raise ValueError("the runner's own reference failed")


def conformance(kernels: list[str], dtypes: list[str], backend=None, cases=("square",)) -> dict:
    spec = build_spec(
        suite="conformance",
        device="cpu",
        challenge=CHALLENGE,
        kernels=kernels,
        dtypes=dtypes,
        cases=list(cases),
    )
    document = run_conformance(spec, backend or get_backend("cpu"))
    validate_document(document)
    return document


@pytest.mark.parametrize("kernel", [MatmulSaysNotSupported, MatmulNotImplemented])
def test_a_declared_kernel_that_raises_not_supported_is_a_failure(registered, kernel):
    registered(kernel())
    document = conformance([kernel.name], ["float32", "bfloat16"])
    assert {c["status"] for c in document["cases"]} == {"error"}
    assert {c["code"] for c in document["cases"]} == {"product_failure"}
    assert {c["error_class"] for c in document["cases"]} == {"product_failure"}
    assert document["summary"]["unsupported"] == 0


def test_out_of_memory_and_harness_errors_have_their_own_codes(registered):
    registered(MatmulOutOfMemory())
    registered(MatmulHarnessFails())
    document = conformance([MatmulOutOfMemory.name, MatmulHarnessFails.name], ["float32"])
    codes = {c["kernel"]: (c["status"], c["code"], c["error_class"]) for c in document["cases"]}
    assert codes[MatmulOutOfMemory.name] == ("error", "out_of_memory", "product_failure")
    assert codes[MatmulHarnessFails.name] == ("error", "harness_error", "infrastructure")


# A vendor's backend, installed the way vendors install one: an entry point ----------------------

FAKECHIP_SOURCE = """
    from runners.backends import CpuBackend

    class LyingChipBackend(CpuBackend):
        '''Declares float16 and softmax unsupported; fails every device call with "not supported".'''

        name = "lyingchip"
        calls = 0

        def supported_dtypes(self):
            return ["float32", "bfloat16"]

        def declared_unsupported_kernels(self):
            return {"softmax": "no softmax unit", "matmul/bfloat16": "no bf16 matrix engine"}

        def synchronize(self):
            type(self).calls += 1
            raise RuntimeError("aclnnAdd: this kernel is not supported on the device")
"""


@pytest.fixture
def lying_chip(tmp_path, monkeypatch):
    (tmp_path / "lyingchip_backend.py").write_text(textwrap.dedent(FAKECHIP_SOURCE))
    dist_info = tmp_path / "lyingchip_backend-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: lyingchip-backend\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nlyingchip = lyingchip_backend:LyingChipBackend\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield get_backend("lyingchip")
    finally:
        sys.modules.pop("lyingchip_backend", None)


def test_a_plugin_backend_gets_unsupported_only_for_what_it_declared(lying_chip):
    document = conformance(
        ["matmul", "softmax", "add"],
        ["float32", "bfloat16", "float16"],
        backend=lying_chip,
        cases=["square", "odd_sizes"],
    )
    by_case = {(c["kernel"], c["dtype"]): c for c in document["cases"]}
    assert document["support"] == lying_chip.support_declaration()
    for (kernel, dtype), case in by_case.items():
        if dtype == "float16":
            assert (case["status"], case["code"]) == ("unsupported", "unsupported_dtype")
        elif kernel == "softmax" or (kernel, dtype) == ("matmul", "bfloat16"):
            assert (case["status"], case["code"]) == ("unsupported", "unsupported_op")
            assert "declared unsupported" in case["reason"]
        else:  # declared supported, then raised "not supported": a failure, whatever the words
            assert (case["status"], case["code"], case["error_class"]) == (
                "error",
                "product_failure",
                "product_failure",
            )
            assert "not supported" in case["message"]
    assert {k for k, _d in by_case} == {"matmul", "softmax", "add"}
    ran = [c for c in document["cases"] if c["status"] == "error"]
    assert ran and type(lying_chip).calls == len(ran)  # unsupported cases never reached the device


def test_the_document_schema_refuses_unsupported_without_an_unsupported_code():
    document = conformance(["add"], ["float32"], cases=["odd_sizes"])
    case = document["cases"][0]
    case.update(status="unsupported", error_class="unsupported", code="product_failure")
    with pytest.raises(ValueError, match="code"):
        validate_document(document)
    case.update(status="error", error_class="unsupported", code="unsupported_op")
    with pytest.raises(ValueError):
        validate_document(document)


# The performance and model suites use the same classifier --------------------------------------


class PrepareRaisesTypeError(CpuBackend):
    """Its graph compiler refuses the first benchmark with a TypeError, then works."""

    refused = False

    def prepare(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        if not self.refused:
            self.refused = True
            raise TypeError("this device's graph compiler does not support the op")
        return fn


class ForwardSaysNotSupported(CpuBackend):
    def prepare(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def refuse(*args: Any) -> Any:
            raise RuntimeError("conv2d not supported by this device")

        return refuse


@pytest.mark.slow
def test_a_type_error_in_the_performance_suite_is_a_failure_not_unsupported():
    spec = {"quick": True, "performance": {"dtypes": ["float32"], "gemm_sizes": [64]}}
    out = run_performance_suite(spec, PrepareRaisesTypeError(), seed=CHALLENGE)
    assert [(c["status"], c["code"]) for c in out["cases"]] == [("error", "product_failure")]


def test_a_model_the_device_refuses_after_declaring_it_supported_fails(tmp_path):
    entry = seeded_model_entry(
        "resnet-tiny", "resnet-cnn", asdict(ResNetConfig.small()), seed=0, directory=tmp_path
    )
    spec = build_spec(
        suite="model",
        device="cpu",
        challenge=CHALLENGE,
        models=[entry],
        options={"quick": True, "model_dtypes": ["float32", "float8_e5m2"]},
    )
    document = run_model(spec, ForwardSaysNotSupported())
    validate_document(document)
    [case] = [c for c in document["cases"] if c["dtype"] == "float32"]
    assert (case["status"], case["code"], case["error_class"]) == (
        "error",
        "product_failure",
        "product_failure",
    )
    assert not document["measurements"]


def test_a_model_dtype_the_backend_does_not_declare_is_unsupported_before_running(tmp_path):
    entry = seeded_model_entry(
        "resnet-tiny", "resnet-cnn", asdict(ResNetConfig.small()), seed=0, directory=tmp_path
    )

    class NoHalf(ForwardSaysNotSupported):
        def supported_dtypes(self) -> list[str]:
            return ["float32"]

    spec = build_spec(
        suite="model",
        device="cpu",
        challenge=CHALLENGE,
        models=[entry],
        options={"quick": True, "model_dtypes": ["float16"]},
    )
    document = run_model(spec, NoHalf())
    validate_document(document)
    assert [(c["status"], c["code"]) for c in document["cases"]] == [("unsupported", "unsupported_dtype")]


# The classifier itself -----------------------------------------------------------------------------


class SoftTimeLimitExceeded(Exception):
    """Celery's name; the classifier recognizes it without importing Celery."""


@pytest.mark.parametrize(
    ("exc", "phase", "code"),
    [
        (RuntimeError("operation not supported"), "device", "product_failure"),
        (NotImplementedError("not implemented for 'Half'"), "device", "product_failure"),
        (TypeError("unsupported operand"), "device", "product_failure"),
        (torch.OutOfMemoryError("oom"), "device", "out_of_memory"),
        (MemoryError(), "device", "out_of_memory"),
        (TimeoutError(), "device", "timeout"),
        (SoftTimeLimitExceeded(), "device", "timeout"),
        (RuntimeError("not supported"), "harness", "harness_error"),
    ],
)
def test_the_classifier_never_reads_the_message(exc, phase, code):
    outcome = classify_exception(exc, phase=phase)
    assert isinstance(outcome, Classified)
    assert (outcome.status, outcome.code, outcome.error_class) == ("error", code, ERROR_CLASS[code])


def test_only_the_declaration_makes_a_case_unsupported():
    declaration = {
        "dtypes": ["float32"],
        "unsupported_kernels": {"softmax": "no unit", "matmul/float32": "x"},
    }
    assert declared_unsupported(declaration, "add", "float32") is None
    assert declared_unsupported(declaration, "add", "float16").code == "unsupported_dtype"
    assert declared_unsupported(declaration, "softmax", "float32").code == "unsupported_op"
    assert declared_unsupported(declaration, "matmul", "float32").code == "unsupported_op"
    assert set(ERROR_CLASS) == set(CODES)


def test_every_code_is_documented_in_the_result_schema():
    from runners.document import load_schema

    assert set(load_schema("result")["$defs"]["code"]["enum"]) == {None, *CODES}
    assert Path(__file__).exists()


class ForwardDropsAColumn(CpuBackend):
    def prepare(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *args: fn(*args)[:, :-1]


def test_a_model_output_of_the_wrong_shape_is_a_product_failure_not_a_harness_error(tmp_path):
    entry = seeded_model_entry(
        "resnet-tiny", "resnet-cnn", asdict(ResNetConfig.small()), seed=0, directory=tmp_path
    )
    spec = build_spec(
        suite="model",
        device="cpu",
        challenge=CHALLENGE,
        models=[entry],
        options={"quick": True, "model_dtypes": ["float32"]},
    )
    document = run_model(spec, ForwardDropsAColumn())
    validate_document(document)
    [case] = document["cases"]
    assert (case["status"], case["code"], case["reason"]) == ("error", "product_failure", "wrong shape")


# Inside a timed block: the device's calls are marked, the harness's own code is not ---------------

TIMED_GEMM = {"quick": True, "performance": {"dtypes": ["float32"], "gemm_sizes": [64], "kinds": ["gemm"]}}


class FailsWhileTimed(CpuBackend):
    """Computes the untimed accuracy call, then raises on a later (timed) call of the same callable."""

    def prepare(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        calls = {"n": 0}

        def flaky(*args: Any) -> Any:
            calls["n"] += 1
            if calls["n"] > 3:
                raise RuntimeError("device lost while timed")
            return fn(*args)

        return flaky


class SynchronizeFails(CpuBackend):
    """The device's synchronize fails once timing starts (an asynchronous device error surfacing)."""

    def __init__(self) -> None:
        super().__init__()
        self.synchronized = 0

    def synchronize(self) -> None:
        self.synchronized += 1
        if self.synchronized > 2:
            raise RuntimeError("device-side assert triggered")


def test_a_harness_bug_inside_a_timed_block_is_a_harness_error(monkeypatch):
    import runners.timing

    def broken_statistics(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("our own statistics code")

    monkeypatch.setattr(runners.timing, "summarize", broken_statistics)
    out = run_performance_suite(TIMED_GEMM, CpuBackend(), seed=CHALLENGE)
    assert [(c["status"], c["code"], c["error_class"]) for c in out["cases"]] == [
        ("error", "harness_error", "infrastructure")
    ]


@pytest.mark.slow
def test_a_harness_bug_in_the_model_suites_timed_run_is_a_harness_error(monkeypatch, tmp_path):
    import runners.model_suite.performance

    def broken_sampler(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("our own output sampler")

    monkeypatch.setattr(runners.model_suite.performance, "OutputSampler", broken_sampler)
    entry = seeded_model_entry(
        "resnet-tiny", "resnet-cnn", asdict(ResNetConfig.small()), seed=0, directory=tmp_path
    )
    spec = build_spec(
        suite="model",
        device="cpu",
        challenge=CHALLENGE,
        models=[entry],
        options={"quick": True, "model_dtypes": ["float32"]},
    )
    document = run_model(spec, CpuBackend())
    validate_document(document)
    errors = [c for c in document["cases"] if c["status"] == "error"]
    assert [(c["code"], c["error_class"]) for c in errors] == [("harness_error", "infrastructure")]


@pytest.mark.parametrize("backend", [FailsWhileTimed, SynchronizeFails])
def test_a_device_that_fails_inside_a_timed_block_is_a_product_failure(backend):
    out = run_performance_suite(TIMED_GEMM, backend(), seed=CHALLENGE)
    assert [(c["status"], c["code"]) for c in out["cases"]] == [("error", "product_failure")]


def test_only_an_exception_raised_through_a_device_call_is_the_products_in_a_timed_block():
    from runners.errors import device_call

    def device() -> None:
        raise RuntimeError("from the device")

    with pytest.raises(RuntimeError) as raised:
        device_call(device)()
    assert classify_exception(raised.value, phase="timed").code == "product_failure"
    assert classify_exception(RuntimeError("our bug"), phase="timed").code == "harness_error"
    assert classify_exception(TimeoutError(), phase="timed").code == "timeout"


# The performance suite declares what it was told is supported ---------------------------------


def test_performance_documents_record_the_backends_declaration_and_honour_it():
    class NoBfloat16(CpuBackend):
        def supported_dtypes(self) -> list[str]:
            return [d for d in super().supported_dtypes() if d != "bfloat16"]

    spec = build_spec(
        suite="performance",
        device="cpu",
        challenge=CHALLENGE,
        options={
            "quick": True,
            "performance": {"dtypes": ["float32", "bfloat16"], "gemm_sizes": [64], "kinds": ["gemm"]},
        },
    )
    from runners.performance import run_performance

    backend = NoBfloat16()
    document = run_performance(spec, backend)
    validate_document(document)
    assert document["support"] == backend.support_declaration()
    assert "bfloat16" not in document["support"]["dtypes"]
    assert {(c["dtype"], c["status"], c["code"]) for c in document["cases"]} == {
        ("bfloat16", "unsupported", "unsupported_dtype")
    }
    assert {m["dtype"] for m in document["measurements"]} == {"float32"}
