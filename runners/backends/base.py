"""The device interface every suite talks to, and the host facts all backends share."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any, Protocol

import torch

from runners.math_modes import read_math_modes

# Dtypes the catalog knows about, in the order reports list them.
CANDIDATE_DTYPES: tuple[str, ...] = (
    "float32",
    "bfloat16",
    "float16",
    "int8",
    "float8_e4m3fn",
    "float8_e5m2",
)


class TimingEvent(Protocol):
    """A point in a device's timeline; `a.elapsed_ms(b)` is the device time from a to b."""

    def record(self) -> None: ...

    def elapsed_ms(self, end: TimingEvent) -> float: ...


class ClockEvent:
    """Timing for devices without events: drain the queue, then read a monotonic clock.

    Synchronizing at every record costs a round trip, so a suite measuring short kernels
    should time many iterations between two events rather than one.
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._ns: int | None = None

    def record(self) -> None:
        self._backend.synchronize()
        self._ns = time.perf_counter_ns()

    def elapsed_ms(self, end: TimingEvent) -> float:
        if not isinstance(end, ClockEvent) or self._ns is None or end._ns is None:
            raise RuntimeError("both events must be ClockEvents and recorded")
        return (end._ns - self._ns) / 1e6


class DeviceEvent:
    """Wraps a torch device event created with enable_timing=True (cuda, xpu, mps, plugins)."""

    def __init__(self, event: Any, backend: Backend) -> None:
        self._event = event
        self._backend = backend

    def record(self) -> None:
        self._event.record()

    def elapsed_ms(self, end: TimingEvent) -> float:
        if not isinstance(end, DeviceEvent):
            raise RuntimeError("end must be a DeviceEvent of the same backend")
        # elapsed_time requires both events to have completed on the device.
        end._event.synchronize()
        return float(self._event.elapsed_time(end._event))


class Backend:
    """One kind of device PyTorch can drive. Subclasses override what their runtime offers.

    Every method that asks the device something must tolerate a missing or broken runtime:
    `availability()` never raises, and the informational methods return None where unknown.
    """

    name: str = "base"
    # The torch submodule (torch.cuda, torch.xpu, ...) holding the device's runtime calls.
    module_name: str | None = None

    def _module(self) -> ModuleType | None:
        if self.module_name is None:
            return None
        return getattr(torch, self.module_name, None)

    def _check_available(self) -> tuple[bool, str | None]:
        module = self._module()
        if module is None:
            return False, f"this torch build has no torch.{self.module_name}"
        if not module.is_available():
            return False, f"torch.{self.module_name}.is_available() is False"
        return True, None

    def availability(self) -> tuple[bool, str | None]:
        try:
            return self._check_available()
        except Exception as exc:  # a broken driver must read as "unavailable", never a crash
            return False, f"{type(exc).__name__}: {exc}"

    def is_available(self) -> bool:
        return self.availability()[0]

    def device(self, index: int = 0) -> torch.device:
        return torch.device(self.name, index)

    def device_count(self) -> int:
        module = self._module()
        try:
            return int(module.device_count()) if module is not None and self.is_available() else 0
        except Exception:
            return 0

    def synchronize(self) -> None:
        module = self._module()
        if module is not None:
            module.synchronize()

    def has_timing_events(self) -> bool:
        return False

    def event(self) -> TimingEvent:
        return ClockEvent(self)

    def memory_info(self) -> dict[str, int | None]:
        return {
            "total_bytes": None,
            "free_bytes": None,
            "allocated_bytes": None,
            "peak_allocated_bytes": None,
        }

    def reset_peak_memory(self) -> None:
        return None

    def prepare(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """The callable the performance and model suites time, as this device's stack runs it.

        Identity by default; a plugin may compile or capture a graph here (torch.compile, CUDA
        graphs). The integrity checks (TEST01 outputs, TEST04 caching) judge what this returns.
        """
        return fn

    def last_level_cache_bytes(self) -> int | None:
        return None

    def power_watts(self) -> float | None:
        return None

    def supported_dtypes(self) -> list[str]:
        """Dtypes whose tensors can be created on the device and take part in arithmetic."""
        if not self.is_available():
            return []
        supported = []
        for name in CANDIDATE_DTYPES:
            if probe_dtype(self.device(), name):
                supported.append(name)
        return supported

    def device_name(self) -> str | None:
        return None

    def device_identity(self) -> dict[str, str]:
        """What identifies the device the suites run on (index 0), beyond its software stack: its
        name, and where the runtime can read them its PCI bus id (domain:bus:device.function),
        UUID or serial. Compared with the target's registered identity (fingerprint_check)."""
        name = self.device_name()
        return {"name": str(name)} if name else {}

    def capability(self) -> str | None:
        return None

    def driver_version(self) -> str | None:
        return None

    def runtime_version(self) -> str | None:
        return None

    def plugin_versions(self) -> dict[str, str]:
        return {}

    def fp8_product(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The device's FP8 GEMM on one K slice: a (M, K) @ b (N, K)^T, both float8_e4m3fn, float32
        out (the catalog's ``fp8_product``: torch._scaled_mm with unit scales, on the CPU the codes
        widened to float32). A plugin backend may supply its own; ``fp8_gemm`` probes whichever runs."""
        from runners.catalog.quantized import fp8_product

        return fp8_product(a, b)

    def fp8_gemm(self) -> Fp8Gemm | None:
        """The FP8 GEMM an FP8 checkpoint computes with (runners/models/fp8.py BLOCK_SCALED path), when
        ``fp8_product`` passes the probe on the device (``probe_fp8_product``), else None (the weights
        then run dequantized). Decided by running it, never by a declaration. ``kind`` says what
        computed the products: float32_widening on the CPU (no FP8 units), else device_fp8_gemm."""
        if not self.is_available():
            return None
        device = self.device()
        if not probe_fp8_product(device, self.fp8_product):
            return None
        return Fp8Gemm(self.fp8_product, "float32_widening" if device.type == "cpu" else "device_fp8_gemm")

    def declared_unsupported_kernels(self) -> dict[str, str]:
        """Catalog kernels this backend declares it does not run, with the reason: ``{name: why}``.

        A key is a kernel name (every dtype) or ``kernel/dtype``. Empty by default: upstream
        backends run every catalog kernel. Only what is declared here (and the dtypes
        ``supported_dtypes`` leaves out) may end as ``unsupported``; a kernel that raises after
        being declared supported is a product failure (runners/errors.py).
        """
        return {}

    def support_declaration(self) -> dict[str, Any]:
        """What the device declares it supports, recorded in every result document (``support``)."""
        return {
            "dtypes": list(self.supported_dtypes()),
            "unsupported_kernels": dict(self.declared_unsupported_kernels()),
        }

    def fingerprint(self) -> dict[str, Any]:
        """Facts that identify the device and software stack; compared against the target."""
        available, reason = self.availability()
        fingerprint: dict[str, Any] = {
            "backend": self.name,
            "available": available,
            "unavailable_reason": reason,
            "device_name": None,
            "device_identity": {},
            "device_count": 0,
            "capability": None,
            "driver_version": None,
            "runtime_version": None,
            "torch_version": torch.__version__,
            "plugin_versions": {},
            # Stack facts this backend has no way to report: a target registering one of them
            # cannot be checked against this runner (runners/fingerprint_check.py says so).
            "not_checkable": [],
            # The flags a suite ran under (runners/math_modes.py pins them around every suite).
            "math_modes": read_math_modes(),
            **host_facts(),
        }
        if available:
            # Each probe is guarded on its own so one missing query does not hide the rest.
            for key, probe in (
                ("device_name", self.device_name),
                ("device_identity", self.device_identity),
                ("device_count", self.device_count),
                ("capability", self.capability),
                ("driver_version", self.driver_version),
                ("runtime_version", self.runtime_version),
                ("plugin_versions", self.plugin_versions),
            ):
                try:
                    fingerprint[key] = probe()
                except Exception as exc:
                    fingerprint[key] = {} if key == "device_identity" else f"unknown ({type(exc).__name__})"
        fingerprint["not_checkable"] = [
            key for key in ("driver_version", "runtime_version") if not fingerprint.get(key)
        ]
        return fingerprint

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def probe_dtype(device: torch.device, dtype_name: str) -> bool:
    """True when a small tensor of the dtype can be made on the device and added to."""
    dtype = getattr(torch, dtype_name, None)
    if not isinstance(dtype, torch.dtype):
        return False
    try:
        x = torch.ones(4, device=device).to(dtype)
        # float8 has no arithmetic on most devices; a round trip through float32 is what the
        # catalog needs (quantized storage), so that is what is probed.
        (x.float() + 1).to(dtype).float().sum().item()
        return True
    except Exception:
        return False


@dataclass(frozen=True)
class Fp8Gemm:
    """A probed FP8 GEMM: ``product`` (a @ b^T of two E4M3 tensors, float32 out) and what computes it."""

    product: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    kind: str


def probe_fp8_product(
    device: torch.device, product: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> bool:
    """True when ``product`` of two E4M3 operands on ``device`` (M 16, K 128, N 32) returns the exact
    float32 result. The codes are small integers (|x| <= 4, exact in E4M3) whose products and sums stay
    below 2^11, exact in any accumulator of at least 12 significand bits (Hopper's FP8 tensor cores keep
    about 14, DeepSeek-V3 s3.3.2): a correct FP8 GEMM passes, one that is absent, refuses E4M3 or
    computes something else fails."""
    g = torch.Generator().manual_seed(16)
    a = torch.randint(-4, 5, (16, 128), generator=g).to(torch.float32)
    b = torch.randint(-4, 5, (32, 128), generator=g).to(torch.float32)
    try:
        got = product(a.to(torch.float8_e4m3fn).to(device), b.to(torch.float8_e4m3fn).to(device))
        return (
            isinstance(got, torch.Tensor)
            and got.dtype == torch.float32
            and tuple(got.shape) == (16, 32)
            and torch.equal(got.to("cpu"), a @ b.t())
        )
    except Exception:  # no FP8 GEMM on this device (or a broken one): the dequantized path
        return False


def read_version_file(path: str, key: str | None = None) -> str | None:
    """A version from a driver's file where readable: its first line, or the value after ``key=``."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read(4096)
    except OSError:
        return None
    for line in text.splitlines():
        line = line.strip()
        if key is None:
            return line or None
        name, sep, value = line.partition("=")
        if sep and name.strip().lower() == key.lower():
            return value.strip() or None
    return None


def distribution_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def host_cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_facts() -> dict[str, Any]:
    return {
        "host_cpu": host_cpu_model(),
        "host_cpu_count": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "numpy_version": distribution_version("numpy"),
    }
