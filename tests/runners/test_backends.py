"""Backends: the built-ins, plugin discovery through entry points, and never crashing."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

from runners.backends import (
    ENTRY_POINT_GROUP,
    Backend,
    CpuBackend,
    UnknownBackend,
    get_backend,
    list_backends,
)


def test_cpu_backend_is_available_and_describes_the_host():
    cpu = get_backend("cpu")
    assert isinstance(cpu, CpuBackend)
    assert cpu.availability() == (True, None)
    assert cpu.device() == torch.device("cpu")
    fingerprint = cpu.fingerprint()
    for key in ("device_name", "device_count", "torch_version", "host_cpu", "os", "python"):
        assert fingerprint[key] is not None
    assert {"float32", "bfloat16", "float16", "int8"} <= set(cpu.supported_dtypes())
    assert set(cpu.memory_info()) >= {"total_bytes", "free_bytes", "allocated_bytes", "peak_allocated_bytes"}


def test_cpu_timing_events_measure_elapsed_time():
    cpu = get_backend("cpu")
    start, end = cpu.event(), cpu.event()
    start.record()
    torch.ones(256, 256) @ torch.ones(256, 256)
    end.record()
    assert start.elapsed_ms(end) >= 0.0


def test_unavailable_backends_are_reported_not_raised():
    for backend in list_backends():
        available, reason = backend.availability()
        if not available:
            assert reason
            assert backend.fingerprint()["available"] is False
            assert backend.supported_dtypes() == []


def test_list_backends_covers_the_built_ins_and_plugins():
    names = {backend.name for backend in list_backends()}
    assert {"cpu", "cuda", "xpu", "mps", "npu", "mlu"} <= names


def test_unknown_backend_name_raises_a_value_error():
    with pytest.raises(UnknownBackend):
        get_backend("warp-drive")
    assert issubclass(UnknownBackend, ValueError)


def test_missing_plugin_reads_as_unavailable_with_the_import_error():
    npu = get_backend("npu")
    available, reason = npu.availability()
    if not available:
        assert "torch_npu" in reason or "npu" in reason


def _install_fake_distribution(tmp_path: Path, entry_points: str, module_source: str) -> None:
    (tmp_path / "fakechip_backend.py").write_text(textwrap.dedent(module_source))
    dist_info = tmp_path / "fakechip_backend-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakechip-backend\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry_points}\n")


def test_a_third_party_registers_a_backend_through_an_entry_point(tmp_path, monkeypatch):
    _install_fake_distribution(
        tmp_path,
        "fakechip = fakechip_backend:FakeChipBackend\nbrokenchip = fakechip_backend:does_not_exist",
        """
        from runners.backends import CpuBackend

        class FakeChipBackend(CpuBackend):
            name = "fakechip"

            def device_name(self):
                return "FakeChip 9000"
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        fake = get_backend("fakechip")
        assert isinstance(fake, Backend)
        assert fake.fingerprint()["device_name"] == "FakeChip 9000"
        names = {backend.name: backend for backend in list_backends()}
        assert "fakechip" in names
        # A broken plugin is listed as unavailable, with the reason, instead of crashing.
        available, reason = names["brokenchip"].availability()
        assert not available and "does_not_exist" in reason
    finally:
        sys.modules.pop("fakechip_backend", None)
