"""The fingerprint names the device itself, and the math modes a suite ran under (issue 13, items 5-6)."""

from __future__ import annotations

import types

import pytest
import torch

from runners.backends import CpuBackend, CudaBackend, PrivateUse1Backend
from runners.backends.base import host_cpu_model
from runners.conformance import run_conformance
from runners.document import validate_document
from runners.fingerprint_check import device_identity_mismatches, fingerprint_mismatches
from runners.math_modes import (
    PINNED,
    math_mode_departures,
    pinned_math_modes,
    read_math_modes,
    set_math_modes,
)
from runners.spec import build_spec

CHALLENGE = "0123456789abcdef" * 4
# PyTorch's defaults on a CUDA build: TF32 convolutions and reduced-precision split-K reductions.
NVIDIA_DEFAULTS = {
    "cuda_matmul_allow_tf32": False,
    "cudnn_allow_tf32": True,
    "cuda_matmul_allow_fp16_reduced_precision_reduction": True,
    "cuda_matmul_allow_bf16_reduced_precision_reduction": True,
    "float32_matmul_precision": "highest",
}


@pytest.fixture
def nvidia_defaults():
    before = read_math_modes()
    set_math_modes(NVIDIA_DEFAULTS)
    yield
    set_math_modes(before)


def test_the_cpu_fingerprint_names_the_processor_from_proc_cpuinfo():
    fingerprint = CpuBackend().fingerprint()
    assert fingerprint["device_identity"] == {"name": host_cpu_model()}


def test_a_job_registered_for_another_chip_is_refused_by_device_name():
    fc1 = {"backend": "npu", "available": True, "device_identity": {"name": "FC-1"}, "not_checkable": []}
    [problem] = fingerprint_mismatches(fc1, {"backend": "npu", "device_identity": {"name": "FC-2"}})
    assert "device name is 'FC-1'" in problem and "'FC-2'" in problem
    assert fingerprint_mismatches(fc1, {"backend": "npu", "device_identity": {"name": " fc-1 "}}) == []


def test_pci_bus_ids_compare_in_any_spelling_and_an_unreadable_one_is_a_mismatch():
    actual = {"name": "NVIDIA H200", "pci_bus_id": "0000:1b:00.0"}
    assert device_identity_mismatches(actual, {"pci_bus_id": "00000000:1B:00.0"}) == []
    [moved] = device_identity_mismatches(actual, {"pci_bus_id": "0000:1c:00.0"})
    assert "pci_bus_id" in moved
    [unread] = device_identity_mismatches({"name": "NVIDIA H200"}, {"pci_bus_id": "0000:1b:00.0"})
    assert "cannot read" in unread
    assert device_identity_mismatches(actual, {}) == device_identity_mismatches(actual, {"uuid": ""}) == []


def test_the_cuda_identity_reads_name_pci_address_and_uuid_from_the_device_properties(monkeypatch):
    props = types.SimpleNamespace(
        name="NVIDIA H200", pci_domain_id=0, pci_bus_id=0x1B, pci_device_id=0, uuid="GPU-1234"
    )
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index=0: props)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    identity = CudaBackend().device_identity()
    assert identity["name"] == "NVIDIA H200" and identity["pci_bus_id"] == "0000:1b:00.0"
    assert identity["uuid"] == "GPU-1234"


def test_a_plugin_device_is_identified_by_its_name_and_properties(monkeypatch):
    module = types.SimpleNamespace(
        get_device_name=lambda index=0: "Ascend910B2",
        get_device_properties=lambda index=0: types.SimpleNamespace(
            name="Ascend910B2", pci_bus_id="0000:c1:00.0"
        ),
    )
    npu = PrivateUse1Backend("npu", plugin_module=None)
    monkeypatch.setattr(npu, "_module", lambda: module)
    assert npu.device_identity() == {"name": "Ascend910B2", "pci_bus_id": "0000:c1:00.0"}


def test_a_suite_runs_under_the_pinned_modes_records_them_and_restores_the_defaults(nvidia_defaults):
    assert read_math_modes() == NVIDIA_DEFAULTS
    spec = build_spec(
        suite="conformance", device="cpu", challenge=CHALLENGE, kernels=["add"], dtypes=["float32"]
    )
    document = run_conformance(spec, CpuBackend())
    validate_document(document)
    assert document["fingerprint"]["math_modes"] == PINNED
    assert read_math_modes() == NVIDIA_DEFAULTS  # the process's own flags are given back


def test_pinned_modes_are_pinned_inside_the_block():
    with pinned_math_modes() as recorded:
        assert recorded == PINNED == read_math_modes()
        assert torch.backends.cudnn.allow_tf32 is False
    with pytest.raises(ValueError):
        set_math_modes({"allow_everything": True})


def test_a_mode_the_level_does_not_accept_is_a_departure():
    accepted = {flag: [value] for flag, value in PINNED.items()}
    assert math_mode_departures(PINNED, accepted) == []
    [tf32] = math_mode_departures({**PINNED, "cudnn_allow_tf32": True}, accepted)
    assert "cudnn_allow_tf32 was True" in tf32
    assert math_mode_departures(None, accepted) == ["the document records no math-mode flags"]
    assert math_mode_departures({}, accepted)[0].endswith("not recorded")
