"""Device energy over one timed LoadGen run, from a meter the host really has, or `unavailable`.

- CUDA with NVML (`nvidia-ml-py`): the board's cumulative energy counter
  (nvmlDeviceGetTotalEnergyConsumption, Volta and later) read at both ends of the run; where the
  counter is missing, power (nvmlDeviceGetPowerUsage) sampled at ``rate_hz`` and integrated
  (trapezoid rule).
- ROCm (PyTorch's ``cuda`` backend on a HIP build): AMD SMI. The ``amdsmi`` Python library's
  ``amdsmi_get_power_info`` where it imports, else the ``amd-smi metric --power --energy --json`` CLI:
  its cumulative ``energy.total_energy_consumption`` counter read at both ends where the GPU
  reports one, otherwise ``power.socket_power`` (MI300+; ``current_socket_power`` /
  ``average_socket_power`` on older cards and libraries) sampled and integrated. The ``limit``
  section's ``socket_power`` is a power cap, never read.
- Ascend (``npu``): ``npu-smi info -t power -i <card> -c <chip>`` sampled and integrated; the
  line read is "Power Dissipation(W)" or "NPU Real-time Power(W)" (as npu-smi prints them per chip
  generation), never "Rated Power Dissipation(W)" (a rating, not a measurement). The card and chip
  come from ``RUNNER_NPU_SMI_ID`` ("card:chip"), by default the current device's index and chip 0.
- Any other backend that reports power (``Backend.power_watts``): sampled and integrated likewise.
- CPU: RAPL package counters under /sys/class/powercap (intel-rapl:N/energy_uj), where readable.

In the serving suite's device-process mode (runners/serving_engine.py) the meter runs in the device
process, where the driver is loaded; the judge keeps the typed raw figures (``energy_record``). This
module is outside runners/serving so that the device process imports no LoadGen.

A CLI meter answers slowly (tenths of a second per call), so its achieved sampling rate is recorded
beside the requested one; a run shorter than two samples has no figure.
- Otherwise the measurement says `unavailable` with the reason: no figure is invented, no TDP
  stands in for a measurement.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

POWERCAP = Path("/sys/class/powercap")
DEFAULT_RATE_HZ = 10.0
CLI_TIMEOUT_S = 5.0
CommandRunner = Callable[[Sequence[str]], str]

_WATTS = {"w": 1.0, "mw": 1e-3, "uw": 1e-6, "µw": 1e-6}
_JOULES = {"j": 1.0, "mj": 1e-3, "uj": 1e-6, "µj": 1e-6}
AMD_POWER_KEYS = ("socket_power", "current_socket_power", "average_socket_power")
NPU_POWER_LABELS = ("Power Dissipation(W)", "NPU Real-time Power(W)", "Real-time Power(W)", "Power(W)")
_NPU_LINE = re.compile(r"^\s*(?P<label>[^:]+?)\s*:\s*(?P<value>\S.*?)\s*$")


def run_command(args: Sequence[str]) -> str:
    """A meter CLI's stdout; raises OSError / CalledProcessError / TimeoutExpired where it fails."""
    done = subprocess.run(  # noqa: S603 - fixed argument vectors, no shell
        list(args), capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=True
    )
    return done.stdout


def _quantity(value: Any, units: dict[str, float], default_unit: str) -> float | None:
    """A number from ``{"value": x, "unit": u}`` or a bare number (amd-smi prints both); "N/A" and
    other non-numbers are None."""
    unit = default_unit
    if isinstance(value, dict):
        unit = str(value.get("unit") or default_unit)
        value = value.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    scale = units.get(unit.strip().lower())
    if scale is None or number != number or number < 0:
        return None
    return number * scale


def _amd_entries(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, dict) and isinstance(document.get("gpu_data"), list):
        document = document["gpu_data"]
    if isinstance(document, dict):
        document = [document]
    return [e for e in document if isinstance(e, dict)] if isinstance(document, list) else []


def parse_amd_smi_metric(text: str, gpu: int) -> tuple[float | None, float | None]:
    """(socket power in W, cumulative energy in J) of GPU ``gpu`` from ``amd-smi metric --json``
    output (a list of per-GPU objects, or ``{"gpu_data": [...]}``; a warning banner before the JSON is
    skipped). None where the GPU, the field or a number is missing."""
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    if start < 0:
        return None, None
    try:
        document = json.loads(text[start:])
    except json.JSONDecodeError:
        return None, None
    entries = _amd_entries(document)
    entry = next((e for e in entries if e.get("gpu") == gpu), None)
    if entry is None:
        return None, None
    power = given if isinstance(given := entry.get("power"), dict) else {}
    watts = next(
        (w for key in AMD_POWER_KEYS if (w := _quantity(power.get(key), _WATTS, "W")) is not None), None
    )
    energy = found if isinstance(found := entry.get("energy"), dict) else {}
    joules = _quantity(energy.get("total_energy_consumption"), _JOULES, "J")
    return watts, joules


def parse_npu_smi_power(text: str) -> float | None:
    """The measured power in W from ``npu-smi info -t power`` output, or None ("NA", a rated figure
    only, or no power line)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _NPU_LINE.match(line)
        if match:
            found.setdefault(match.group("label").strip(), match.group("value"))
    for label in NPU_POWER_LABELS:
        value = found.get(label)
        if value is None:
            continue
        try:
            watts = float(value)
        except ValueError:
            return None  # "NA": the chip does not report it
        return watts if watts >= 0 else None
    return None


def _amdsmi_library_watts(gpu: int) -> Callable[[], float | None] | None:
    """A reader of socket power through the ``amdsmi`` Python library, or None where it is absent."""
    try:
        import amdsmi  # optional: ROCm hosts only

        amdsmi.amdsmi_init()
        handle = amdsmi.amdsmi_get_processor_handles()[gpu]
    except Exception:
        return None

    def read() -> float | None:
        info = amdsmi.amdsmi_get_power_info(handle)
        return next(
            (w for key in AMD_POWER_KEYS if (w := _quantity(info.get(key), _WATTS, "W")) is not None),
            None,
        )

    try:
        return read if read() is not None else None
    except Exception:
        return None


def _rapl_domains(root: Path = POWERCAP) -> tuple[list[Path], str | None]:
    """Readable top-level RAPL package domains, or ([], why not)."""
    if not root.is_dir():
        return [], f"{root} does not exist (no RAPL interface exposed to this host)"
    domains = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
    if not domains:
        return [], f"no intel-rapl package domain under {root}"
    readable = []
    for domain in domains:
        try:
            int((domain / "energy_uj").read_text())
            readable.append(domain)
        except (OSError, ValueError) as exc:
            return [], f"{domain / 'energy_uj'} is not readable: {exc}"
    return readable, None


class EnergyMeter:
    """``start()`` before the timed run, ``stop()`` after; ``result(samples, tokens)`` is the record."""

    def __init__(
        self,
        backend: Any,
        *,
        rate_hz: float = DEFAULT_RATE_HZ,
        powercap: Path = POWERCAP,
        command: CommandRunner | None = None,
        rocm: bool | None = None,
    ) -> None:
        self.backend = backend
        self._command = command or run_command
        self._power: Callable[[], float | None] | None = None  # the sampled meter's reading, W
        self._counter: Callable[[], float] | None = None  # a cumulative counter's reading, J
        self.rate_hz = rate_hz
        self.method: str | None = None
        self.meter: str | None = None
        self.reason: str | None = None
        self._rapl: list[Path] = []
        self._nvml_handle = None
        self._nvml = None
        self._samples: list[tuple[float, float]] = []
        self._start_counter: float | None = None
        self._joules: float | None = None
        self._seconds: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed = 0
        self._choose(powercap, rocm)

    def _device_index(self) -> int:
        try:
            return int(self.backend.device().index or 0)
        except Exception:
            return 0

    def _choose_amd(self) -> bool:
        gpu = self._device_index()
        library = _amdsmi_library_watts(gpu)
        if library is not None:
            self._power, self.method = library, "sampled"
            self.meter = f"AMD SMI amdsmi_get_power_info (GPU {gpu})"
            return True
        args = ["amd-smi", "metric", "--power", "--energy", "--json", "--gpu", str(gpu)]
        try:
            watts, joules = parse_amd_smi_metric(self._command(args), gpu)
        except (OSError, subprocess.SubprocessError) as exc:
            self.reason = f"amd-smi unavailable: {type(exc).__name__}: {exc}"
            return False
        shown = " ".join(args)
        if joules is not None:

            def counter() -> float:
                value = parse_amd_smi_metric(self._command(args), gpu)[1]
                if value is None:
                    raise ValueError("amd-smi stopped reporting total_energy_consumption")
                return value

            self._counter, self.method = counter, "counter"
            self.meter = f"{shown}: energy.total_energy_consumption"
            return True
        if watts is not None:
            self._power = lambda: parse_amd_smi_metric(self._command(args), gpu)[0]
            self.method, self.meter = "sampled", f"{shown}: power.socket_power"
            return True
        self.reason = f"{shown} reported neither socket power nor an energy counter for GPU {gpu}"
        return False

    def _choose_npu(self) -> bool:
        card, _, chip = (os.environ.get("RUNNER_NPU_SMI_ID") or f"{self._device_index()}:0").partition(":")
        args = ["npu-smi", "info", "-t", "power", "-i", card.strip(), "-c", (chip or "0").strip()]
        shown = " ".join(args)
        try:
            watts = parse_npu_smi_power(self._command(args))
        except (OSError, subprocess.SubprocessError) as exc:
            self.reason = f"npu-smi unavailable: {type(exc).__name__}: {exc}"
            return False
        if watts is None:
            self.reason = f"{shown} reported no measured power (NA, or a rated figure only)"
            return False
        self._power = lambda: parse_npu_smi_power(self._command(args))
        self.method, self.meter = "sampled", f"{shown}: Power Dissipation(W)"
        return True

    def _choose(self, powercap: Path, rocm: bool | None) -> None:
        name = getattr(self.backend, "name", "")
        if rocm is None:
            try:
                import torch

                rocm = bool(torch.version.hip)
            except ImportError:
                rocm = False
        if name == "cuda" and rocm:
            if self._choose_amd():
                return
        elif name == "npu":
            if self._choose_npu():
                return
        elif name == "cuda":
            try:
                import pynvml
                import torch

                pynvml.nvmlInit()
                handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
                self._nvml, self._nvml_handle = pynvml, handle
                try:
                    pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                    self.method, self.meter = "counter", "NVML nvmlDeviceGetTotalEnergyConsumption"
                except Exception:
                    pynvml.nvmlDeviceGetPowerUsage(handle)
                    self.method, self.meter = "sampled", "NVML nvmlDeviceGetPowerUsage"
                return
            except Exception as exc:  # no nvidia-ml-py or no NVML: try the generic power hook below
                self.reason = f"NVML unavailable: {type(exc).__name__}: {exc}"
        if name == "cpu":
            self._rapl, why = _rapl_domains(powercap)
            if self._rapl:
                self.method = "counter"
                self.meter = "RAPL " + ", ".join(str(d / "energy_uj") for d in self._rapl)
                return
            self.reason = why
            return
        try:
            watts = self.backend.power_watts()
        except Exception as exc:
            watts = None
            self.reason = self.reason or f"power_watts raised {type(exc).__name__}: {exc}"
        if watts is not None:
            self._power = self.backend.power_watts
            self.method, self.meter = "sampled", f"{name} backend power_watts()"
            self.reason = None
            return
        self.reason = self.reason or f"the {name} backend reports no power reading"

    @property
    def available(self) -> bool:
        return self.method is not None

    def _counter_joules(self) -> float:
        if self._counter is not None:
            return self._counter()
        if self._nvml is not None:
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._nvml_handle) / 1000.0  # mJ
        return sum(int((d / "energy_uj").read_text()) for d in self._rapl) / 1e6

    def _watts(self) -> float | None:
        if self._nvml is not None:
            return self._nvml.nvmlDeviceGetPowerUsage(self._nvml_handle) / 1000.0  # mW
        if self._power is not None:
            try:
                return self._power()
            except (OSError, ValueError, subprocess.SubprocessError):
                return None  # a failed reading is no sample, never a zero
        return self.backend.power_watts()

    def _sample_loop(self) -> None:
        period = 1.0 / self.rate_hz
        while not self._stop.is_set():
            begun = time.perf_counter()
            watts = self._watts()
            if watts is not None:
                self._samples.append((time.perf_counter(), float(watts)))
            else:
                self._failed += 1
            self._stop.wait(max(0.0, period - (time.perf_counter() - begun)))

    def start(self) -> None:
        self._samples, self._joules, self._stop = [], None, threading.Event()
        self._failed = 0
        if self.method is not None:
            self.reason = None  # a reason is this run's, not an earlier run's
        self._t0 = time.perf_counter()
        self._start_counter = None
        if self.method == "counter":
            try:
                self._start_counter = self._counter_joules()
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                self.reason = f"the energy counter could not be read at the start of the run: {exc}"
        elif self.method == "sampled":
            self._thread = threading.Thread(target=self._sample_loop, daemon=True, name="energy-meter")
            self._thread.start()

    def stop(self) -> None:
        self._seconds = time.perf_counter() - self._t0
        if self.method == "counter" and self._start_counter is not None:
            try:
                delta = self._counter_joules() - self._start_counter
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                self.reason = f"the energy counter could not be read at the end of the run: {exc}"
                return
            if delta < 0 and not self._rapl:
                self.reason = "the energy counter went backwards during the run"
                return
            if delta < 0:  # RAPL wraps at max_energy_range_uj
                wrap = sum(int((d / "max_energy_range_uj").read_text()) for d in self._rapl) / 1e6
                delta += wrap
            self._joules = delta
        elif self.method == "sampled" and self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            watts = self._watts()
            if watts is not None:
                self._samples.append((time.perf_counter(), float(watts)))
            if self._failed:
                self.reason = f"{self._failed} power reading(s) failed during the run: no figure"
            elif len(self._samples) >= 2:
                self._joules = sum(
                    (t1 - t0) * (w0 + w1) / 2
                    for (t0, w0), (t1, w1) in zip(self._samples, self._samples[1:], strict=False)
                )
            else:
                self.reason = "fewer than two power samples in the run"

    def result(self, *, samples: int, tokens: int = 0) -> dict[str, Any]:
        """The run's energy record: joules and per-sample / per-token figures, or why none."""
        if self._joules is None:
            return {
                "available": False,
                "reason": self.reason or "no energy reading",
                "meter": self.meter,
                "joules": None,
                "j_per_query": None,
                "j_per_token": None,
            }
        return {
            "available": True,
            "meter": self.meter,
            "method": self.method,
            "rate_hz": self.rate_hz if self.method == "sampled" else None,
            "power_samples": len(self._samples) if self.method == "sampled" else None,
            "achieved_rate_hz": (len(self._samples) - 1) / (self._samples[-1][0] - self._samples[0][0])
            if self.method == "sampled"
            and len(self._samples) >= 2
            and self._samples[-1][0] > self._samples[0][0]
            else None,
            "window_s": self._seconds,
            "joules": self._joules,
            "mean_watts": self._joules / self._seconds if self._seconds else None,
            "j_per_query": self._joules / samples if samples else None,
            "j_per_token": self._joules / tokens if tokens else None,
        }


def _figure(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number == number and 0 <= number < float("inf") else None


def energy_record(raw: Any, *, samples: int, tokens: int = 0, read_in: str) -> dict[str, Any]:
    """An ``EnergyMeter.result`` record that came from another process, kept to its typed raw figures:
    joules, window, samples and rates are non-negative finite numbers or dropped, texts are cut short,
    and the per-query and per-token figures are this process's division by its own counts."""
    raw = raw if isinstance(raw, dict) else {}
    joules = _figure(raw.get("joules"))

    def text(key: str) -> str | None:
        value = raw.get(key)
        return value[:300] if isinstance(value, str) else None

    if joules is None:
        return {
            "available": False,
            "reason": text("reason") or "no energy reading",
            "meter": text("meter"),
            "joules": None,
            "j_per_query": None,
            "j_per_token": None,
            "read_in": read_in,
        }
    window = _figure(raw.get("window_s"))
    samples_count = raw.get("power_samples")
    return {
        "available": True,
        "meter": text("meter"),
        "method": raw.get("method") if raw.get("method") in ("counter", "sampled") else None,
        "rate_hz": _figure(raw.get("rate_hz")),
        "power_samples": samples_count
        if isinstance(samples_count, int) and not isinstance(samples_count, bool) and samples_count >= 0
        else None,
        "achieved_rate_hz": _figure(raw.get("achieved_rate_hz")),
        "window_s": window,
        "joules": joules,
        "mean_watts": joules / window if window else None,
        "j_per_query": joules / samples if samples else None,
        "j_per_token": joules / tokens if tokens else None,
        "read_in": read_in,
    }
