"""Device energy over one timed LoadGen run, from a meter the host really has, or `unavailable`.

- CUDA with NVML (`nvidia-ml-py`): the board's cumulative energy counter
  (nvmlDeviceGetTotalEnergyConsumption, Volta and later) read at both ends of the run; where the
  counter is missing, power (nvmlDeviceGetPowerUsage) sampled at ``rate_hz`` and integrated
  (trapezoid rule).
- Any other backend that reports power (``Backend.power_watts``): sampled and integrated likewise.
- CPU: RAPL package counters under /sys/class/powercap (intel-rapl:N/energy_uj), where readable.
- Otherwise the measurement says `unavailable` with the reason: no figure is invented, no TDP
  stands in for a measurement.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

POWERCAP = Path("/sys/class/powercap")
DEFAULT_RATE_HZ = 10.0


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

    def __init__(self, backend: Any, *, rate_hz: float = DEFAULT_RATE_HZ, powercap: Path = POWERCAP) -> None:
        self.backend = backend
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
        self._choose(powercap)

    def _choose(self, powercap: Path) -> None:
        name = getattr(self.backend, "name", "")
        if name == "cuda":
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
            watts, self.reason = None, f"power_watts raised {type(exc).__name__}: {exc}"
        if watts is not None:
            self.method, self.meter = "sampled", f"{name} backend power_watts()"
            return
        self.reason = self.reason or f"the {name} backend reports no power reading"

    @property
    def available(self) -> bool:
        return self.method is not None

    def _counter_joules(self) -> float:
        if self._nvml is not None:
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._nvml_handle) / 1000.0  # mJ
        return sum(int((d / "energy_uj").read_text()) for d in self._rapl) / 1e6

    def _watts(self) -> float | None:
        if self._nvml is not None:
            return self._nvml.nvmlDeviceGetPowerUsage(self._nvml_handle) / 1000.0  # mW
        return self.backend.power_watts()

    def _sample_loop(self) -> None:
        period = 1.0 / self.rate_hz
        while not self._stop.is_set():
            watts = self._watts()
            if watts is not None:
                self._samples.append((time.perf_counter(), float(watts)))
            self._stop.wait(period)

    def start(self) -> None:
        self._samples, self._joules, self._stop = [], None, threading.Event()
        self._t0 = time.perf_counter()
        if self.method == "counter":
            self._start_counter = self._counter_joules()
        elif self.method == "sampled":
            self._thread = threading.Thread(target=self._sample_loop, daemon=True, name="energy-meter")
            self._thread.start()

    def stop(self) -> None:
        self._seconds = time.perf_counter() - self._t0
        if self.method == "counter" and self._start_counter is not None:
            delta = self._counter_joules() - self._start_counter
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
            if len(self._samples) >= 2:
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
            "window_s": self._seconds,
            "joules": self._joules,
            "mean_watts": self._joules / self._seconds if self._seconds else None,
            "j_per_query": self._joules / samples if samples else None,
            "j_per_token": self._joules / tokens if tokens else None,
        }
