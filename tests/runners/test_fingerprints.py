"""Target fingerprints (issue 11, item 8): every backend reports its driver and runtime versions where
the stack exposes them, and says plainly when a field cannot be checked."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from runners.backends import CpuBackend, PrivateUse1Backend
from runners.backends.base import read_version_file
from runners.backends.builtin import nvidia_driver_from_proc
from runners.fingerprint_check import fingerprint_mismatches


def test_the_cpu_backend_says_it_has_no_driver_version_to_check():
    fingerprint = CpuBackend().fingerprint()
    assert fingerprint["driver_version"] is None
    assert "driver_version" in fingerprint["not_checkable"]
    problems = fingerprint_mismatches(fingerprint, {"backend": "cpu", "driver_version": "6.1"})
    assert len(problems) == 1
    assert "not checkable" in problems[0] and "driver_version" in problems[0]


def test_an_unset_field_on_the_target_is_not_checked():
    assert fingerprint_mismatches(CpuBackend().fingerprint(), {"backend": "cpu", "driver_version": ""}) == []


def test_a_reported_version_must_equal_the_registered_one():
    actual = {"backend": "npu", "available": True, "runtime_version": "cann 8.3.RC1", "not_checkable": []}
    assert fingerprint_mismatches(actual, {"backend": "npu", "runtime_version": "cann 8.3.RC1"}) == []
    [problem] = fingerprint_mismatches(actual, {"backend": "npu", "runtime_version": "cann 8.2.RC1"})
    assert "runtime_version is 'cann 8.3.RC1'" in problem


@pytest.fixture
def fake_torch_npu(monkeypatch):
    """torch_npu as far as versions go: torch_npu.utils.get_cann_version(module=...)."""
    package = types.ModuleType("torch_npu")
    utils = types.ModuleType("torch_npu.utils")
    versions = {"CANN": "8.3.RC1", "DRIVER": "25.2.0"}
    utils.get_cann_version = lambda module="CANN": versions.get(module, "")
    package.utils = utils
    monkeypatch.setitem(sys.modules, "torch_npu", package)
    monkeypatch.setitem(sys.modules, "torch_npu.utils", utils)
    return versions


def test_the_npu_backend_reports_cann_and_driver_versions_from_torch_npu(fake_torch_npu):
    npu = PrivateUse1Backend("npu")
    assert npu.runtime_version() == "cann 8.3.RC1"
    assert npu.driver_version() == "25.2.0"


def test_an_old_torch_npu_without_the_driver_getter_falls_back_to_the_driver_file(
    fake_torch_npu, monkeypatch
):
    fake_torch_npu["DRIVER"] = ""  # CANN before 8.1 answers with an empty string
    npu = PrivateUse1Backend("npu")
    monkeypatch.setattr("runners.backends.privateuse1.ASCEND_DRIVER_FILE", "/nonexistent/version.info")
    assert npu.driver_version() is None


def test_driver_version_files_are_parsed(tmp_path):
    info = tmp_path / "version.info"
    info.write_text("Version=23.0.rc3\nascendhal_version=7.35.19\n")
    assert read_version_file(str(info), "Version") == "23.0.rc3"
    assert read_version_file(str(tmp_path / "absent")) is None
    proc = tmp_path / "nvidia"
    proc.write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n"
        "GCC version:  gcc version 12.2.0\n"
    )
    assert nvidia_driver_from_proc(str(proc)) == "550.54.15"
    open_kernel = tmp_path / "open"
    open_kernel.write_text(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build\n"
    )
    assert nvidia_driver_from_proc(str(open_kernel)) == "570.86.15"


def test_an_unknown_xpu_version_is_not_the_string_none(monkeypatch):
    from runners.backends import XpuBackend

    monkeypatch.setattr(torch.version, "xpu", None, raising=False)
    assert XpuBackend().runtime_version() is None
