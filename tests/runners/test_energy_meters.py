"""AMD SMI and npu-smi meters of the serving suite's energy module, from recorded CLI outputs.

The outputs below have the shapes those tools print (amd-smi's JSON in its list form and its
``gpu_data`` form, with the warning banner it prints outside the render group; npu-smi's
``"\\t%-30s : %.1f"`` lines per chip generation). No figure is claimed where a meter is missing,
reports "N/A"/"NA" or only a rated power."""

from __future__ import annotations

import subprocess
import time

import pytest

from runners.energy import EnergyMeter, parse_amd_smi_metric, parse_npu_smi_power

AMD_SMI_MI300 = """WARNING: User is missing the following required groups: render, video. Please add user to these groups.
[
    {
        "gpu": 0,
        "power": {
            "socket_power": {"value": 542, "unit": "W"},
            "gfx_voltage": "N/A",
            "soc_voltage": "N/A",
            "mem_voltage": "N/A",
            "throttle_status": "N/A",
            "power_management": "ENABLED"
        },
        "energy": {"total_energy_consumption": {"value": 5123456.25, "unit": "J"}}
    },
    {
        "gpu": 1,
        "power": {"socket_power": {"value": 141, "unit": "W"}},
        "energy": {"total_energy_consumption": {"value": 10.5, "unit": "J"}}
    }
]
"""
AMD_SMI_WRAPPED_NO_ENERGY = """{"gpu_data": [{"gpu": 0, "power": {"socket_power": 214, "throttle_status": "UNTHROTTLED"},
 "energy": "N/A", "limit": {"socket_power": {"value": 750, "unit": "W"}}}]}"""
AMD_SMI_MI200 = """[{"gpu": 0, "power": {"average_socket_power": {"value": 90, "unit": "W"}}}]"""
AMD_SMI_NOTHING = """[{"gpu": 0, "power": {"socket_power": "N/A", "average_socket_power": "N/A"},
 "energy": "N/A", "limit": {"socket_power": {"value": 750, "unit": "W"}}}]"""

NPU_SMI_910B = """\tNPU ID                         : 0
\tChip ID                        : 0
\tPower Dissipation(W)           : 93.4
"""
NPU_SMI_310P = """\tNPU ID                         : 1
\tChip Count                     : 1

\tNPU Real-time Power(W)         : 21.5
"""
NPU_SMI_RATED_ONLY = """\tNPU ID                         : 0
\tRated Power Dissipation(W)     : 8.0
"""
NPU_SMI_NA = """\tNPU ID                         : 0
\tPower Dissipation(W)           : NA
"""


class Device:
    index = 0


class Backend:
    def __init__(self, name: str) -> None:
        self.name = name

    def device(self):
        return Device()

    def power_watts(self):
        return None


def test_amd_smi_json_is_read_in_each_shape_it_is_printed():
    assert parse_amd_smi_metric(AMD_SMI_MI300, 0) == (542.0, pytest.approx(5123456.25))
    assert parse_amd_smi_metric(AMD_SMI_MI300, 1) == (141.0, 10.5)
    assert parse_amd_smi_metric(AMD_SMI_WRAPPED_NO_ENERGY, 0) == (214.0, None)  # never the cap (750)
    assert parse_amd_smi_metric(AMD_SMI_MI200, 0) == (90.0, None)
    assert parse_amd_smi_metric(AMD_SMI_NOTHING, 0) == (None, None)
    assert parse_amd_smi_metric(AMD_SMI_MI300, 7) == (None, None)  # no such GPU
    assert parse_amd_smi_metric("amd-smi: command failed", 0) == (None, None)


def test_npu_smi_power_is_the_measured_line_never_the_rated_one():
    assert parse_npu_smi_power(NPU_SMI_910B) == 93.4
    assert parse_npu_smi_power(NPU_SMI_310P) == 21.5
    assert parse_npu_smi_power(NPU_SMI_RATED_ONLY) is None
    assert parse_npu_smi_power(NPU_SMI_NA) is None
    assert parse_npu_smi_power("") is None


class Counter:
    """amd-smi answers whose energy counter advances 2 J per call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.joules = 1000.0

    def __call__(self, args):
        self.calls.append(list(args))
        self.joules += 2.0
        return AMD_SMI_MI300.replace("5123456.25", str(self.joules))


def test_a_rocm_gpu_with_an_energy_counter_is_metered_by_its_difference():
    command = Counter()
    meter = EnergyMeter(Backend("cuda"), command=command, rocm=True)
    assert meter.method == "counter" and "total_energy_consumption" in meter.meter
    assert command.calls[0][:2] == ["amd-smi", "metric"] and "--json" in command.calls[0]
    meter.start()
    meter.stop()
    record = meter.result(samples=4)
    assert record["available"] and record["joules"] == pytest.approx(2.0)
    assert record["j_per_query"] == pytest.approx(0.5)


def test_a_rocm_gpu_without_a_counter_is_sampled_and_integrated():
    meter = EnergyMeter(
        Backend("cuda"), command=lambda _args: AMD_SMI_WRAPPED_NO_ENERGY, rocm=True, rate_hz=50
    )
    assert meter.method == "sampled" and "socket_power" in meter.meter
    meter.start()
    time.sleep(0.2)
    meter.stop()
    record = meter.result(samples=10)
    assert record["available"] and record["power_samples"] >= 2 and record["achieved_rate_hz"] > 0
    assert record["joules"] == pytest.approx(214.0 * record["window_s"], rel=0.3)


def test_an_ascend_npu_is_sampled_through_npu_smi(monkeypatch):
    monkeypatch.setenv("RUNNER_NPU_SMI_ID", "3:1")
    seen = []

    def command(args):
        seen.append(list(args))
        return NPU_SMI_910B

    meter = EnergyMeter(Backend("npu"), command=command, rate_hz=50)
    assert meter.available and seen[0] == ["npu-smi", "info", "-t", "power", "-i", "3", "-c", "1"]
    meter.start()
    time.sleep(0.15)
    meter.stop()
    record = meter.result(samples=3)
    assert record["available"] and record["joules"] == pytest.approx(93.4 * record["window_s"], rel=0.3)


def _missing(_args):
    raise FileNotFoundError("No such file or directory: 'npu-smi'")


@pytest.mark.parametrize(
    ("name", "command", "reason"),
    [
        ("npu", _missing, "npu-smi unavailable"),
        ("npu", lambda _a: NPU_SMI_RATED_ONLY, "no measured power"),
        ("npu", lambda _a: NPU_SMI_NA, "no measured power"),
        ("cuda", _missing, "amd-smi unavailable"),
        ("cuda", lambda _a: AMD_SMI_NOTHING, "neither socket power nor an energy counter"),
    ],
)
def test_no_figure_is_claimed_where_the_meter_is_unavailable(name, command, reason):
    meter = EnergyMeter(Backend(name), command=command, rocm=True)
    assert not meter.available and reason in meter.reason
    meter.start()
    meter.stop()
    record = meter.result(samples=5)
    assert record["available"] is False and record["joules"] is None and record["j_per_query"] is None


def test_a_reading_that_fails_during_the_run_leaves_no_figure():
    calls = {"n": 0}

    def flaky(_args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise subprocess.TimeoutExpired("npu-smi", 5)
        return NPU_SMI_910B

    meter = EnergyMeter(Backend("npu"), command=flaky, rate_hz=50)
    meter.start()
    time.sleep(0.2)
    meter.stop()
    record = meter.result(samples=5)
    assert record["available"] is False and "failed" in record["reason"]


def test_a_meter_record_from_the_device_process_keeps_only_typed_figures_and_the_judges_division():
    from runners.energy import energy_record

    raw = {
        "joules": 12.0,
        "window_s": 3.0,
        "meter": "NVML nvmlDeviceGetTotalEnergyConsumption",
        "method": "counter",
        "j_per_query": 0.0001,  # the device's own division is never kept
        "power_samples": "many",
        "achieved_rate_hz": float("nan"),
    }
    record = energy_record(raw, samples=4, tokens=8, read_in="device process")
    assert record["available"] is True and record["read_in"] == "device process"
    assert record["j_per_query"] == 3.0 and record["j_per_token"] == 1.5 and record["mean_watts"] == 4.0
    assert record["power_samples"] is None and record["achieved_rate_hz"] is None
    for bad in ({"joules": -1.0}, {"joules": float("inf")}, {"joules": True}, "not a record"):
        refused = energy_record(bad, samples=4, read_in="device process")
        assert refused["available"] is False and refused["j_per_query"] is None
