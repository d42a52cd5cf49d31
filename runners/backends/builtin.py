"""Backends for the devices upstream PyTorch drives itself: cpu, cuda (and ROCm), xpu, mps."""

from __future__ import annotations

import platform
import re
import resource
from pathlib import Path
from typing import Any

import torch

from runners.backends.base import (
    Backend,
    DeviceEvent,
    TimingEvent,
    distribution_version,
    host_cpu_model,
    read_version_file,
)

# Where the kernel drivers publish their versions (readable without root on most hosts).
NVIDIA_DRIVER_FILE = "/proc/driver/nvidia/version"
AMDGPU_DRIVER_FILE = "/sys/module/amdgpu/version"


def _read_meminfo() -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    values[key] = int(parts[0]) * 1024  # /proc/meminfo counts kB
    except OSError:
        pass
    return values


def _parse_cache_size(text: str) -> int | None:
    text = text.strip().upper()
    multipliers = {"K": 1024, "M": 1024**2, "G": 1024**3}
    if text and text[-1] in multipliers and text[:-1].isdigit():
        return int(text[:-1]) * multipliers[text[-1]]
    return int(text) if text.isdigit() else None


class CpuBackend(Backend):
    """The host CPU. Always available; timing uses the monotonic clock (no device queue)."""

    name = "cpu"

    def _check_available(self) -> tuple[bool, str | None]:
        return True, None

    def device(self, index: int = 0) -> torch.device:
        return torch.device("cpu")

    def device_count(self) -> int:
        return 1

    def synchronize(self) -> None:
        # CPU kernels run synchronously in the calling thread.
        return None

    def memory_info(self) -> dict[str, int | None]:
        meminfo = _read_meminfo()
        # ru_maxrss is the process's peak resident set in kB on Linux; the closest thing the
        # CPU has to a peak allocation, reported under its own key so nobody mistakes it.
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return {
            "total_bytes": meminfo.get("MemTotal"),
            "free_bytes": meminfo.get("MemAvailable"),
            "allocated_bytes": None,
            "peak_allocated_bytes": None,
            "process_peak_rss_bytes": peak_rss,
        }

    def last_level_cache_bytes(self) -> int | None:
        best_level, best_size = -1, None
        for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
            try:
                level = int((index / "level").read_text())
                kind = (index / "type").read_text().strip()
                size = _parse_cache_size((index / "size").read_text())
            except (OSError, ValueError):
                continue
            if kind != "Instruction" and size is not None and level > best_level:
                best_level, best_size = level, size
        return best_size

    def device_name(self) -> str | None:
        return host_cpu_model()

    def device_identity(self) -> dict[str, str]:
        # /proc/cpuinfo's "model name" (the CPU has no PCI address of its own).
        return {"name": host_cpu_model()}

    def capability(self) -> str | None:
        # The SIMD level PyTorch dispatches to (AVX2, AVX512, ...) changes results and speed.
        return str(torch.backends.cpu.get_cpu_capability())

    def runtime_version(self) -> str | None:
        return f"threads={torch.get_num_threads()}"


class CudaBackend(Backend):
    """NVIDIA GPUs, and AMD GPUs on ROCm builds (which PyTorch exposes as torch.cuda)."""

    name = "cuda"
    module_name = "cuda"

    def has_timing_events(self) -> bool:
        return self.is_available()

    def event(self) -> TimingEvent:
        return DeviceEvent(torch.cuda.Event(enable_timing=True), self)

    def memory_info(self) -> dict[str, int | None]:
        free, total = torch.cuda.mem_get_info()
        return {
            "total_bytes": int(total),
            "free_bytes": int(free),
            "allocated_bytes": int(torch.cuda.memory_allocated()),
            "peak_allocated_bytes": int(torch.cuda.max_memory_allocated()),
        }

    def reset_peak_memory(self) -> None:
        torch.cuda.reset_peak_memory_stats()

    def last_level_cache_bytes(self) -> int | None:
        size = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", None)
        return int(size) if size else None

    def power_watts(self) -> float | None:
        try:
            import pynvml  # optional: only hosts with nvidia-ml-py report power
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
            return pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0  # milliwatts
        except Exception:
            return None

    def supported_dtypes(self) -> list[str]:
        dtypes = super().supported_dtypes()
        if torch.version.cuda is not None and torch.cuda.is_available():
            # float8 matmuls need Ada/Hopper (sm_89+); casting alone works everywhere, but a
            # certified "float8" claim should mean the tensor cores do it.
            if torch.cuda.get_device_capability(0) < (8, 9):
                dtypes = [d for d in dtypes if not d.startswith("float8")]
            if not torch.cuda.is_bf16_supported():
                dtypes = [d for d in dtypes if d != "bfloat16"]
        return dtypes

    def device_name(self) -> str | None:
        return torch.cuda.get_device_name(0)

    def device_identity(self) -> dict[str, str]:
        """Name, PCI bus id and UUID from the device properties; the board serial from NVML where
        installed (NVIDIA only; many consumer boards report none)."""
        props = torch.cuda.get_device_properties(0)
        identity = {"name": str(props.name)}
        # torch's stubs do not declare the PCI fields (older builds lack them): read them by name.
        domain, bus, device = (
            getattr(props, attr, None) for attr in ("pci_domain_id", "pci_bus_id", "pci_device_id")
        )
        if domain is not None and bus is not None and device is not None:
            identity["pci_bus_id"] = pci_address(domain, bus, device)
        uuid = getattr(props, "uuid", None)
        if uuid:
            identity["uuid"] = str(uuid)
        if torch.version.hip is None:
            serial = _nvml_serial(torch.cuda.current_device())
            if serial:
                identity["serial"] = serial
        return identity

    def capability(self) -> str | None:
        props = torch.cuda.get_device_properties(0)
        arch = getattr(props, "gcnArchName", None)  # ROCm reports gfx90a and friends
        if torch.version.hip and arch:
            return str(arch)
        major, minor = torch.cuda.get_device_capability(0)
        return f"sm_{major}{minor}"

    def driver_version(self) -> str | None:
        """The kernel driver's version: NVML where installed, else the driver's own file.

        ROCm: the amdgpu module's version file (absent for an in-kernel amdgpu, then None and
        the field is listed as not checkable in the fingerprint).
        """
        if torch.version.hip:
            return read_version_file(AMDGPU_DRIVER_FILE)
        try:
            import pynvml
        except ImportError:
            return nvidia_driver_from_proc(NVIDIA_DRIVER_FILE)
        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)

    def runtime_version(self) -> str | None:
        if torch.version.hip:
            return f"hip {torch.version.hip}"
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        return f"cuda {torch.version.cuda}" + (f", cudnn {cudnn}" if cudnn else "")

    def plugin_versions(self) -> dict[str, str]:
        versions = {}
        for dist in ("triton", "pytorch-triton-rocm", "nvidia-cublas-cu12", "nvidia-cudnn-cu12"):
            version = distribution_version(dist)
            if version:
                versions[dist] = version
        return versions


def pci_address(domain: int, bus: int, device: int, function: int = 0) -> str:
    """The canonical PCI address, domain:bus:device.function in lower-case hex (0000:1b:00.0)."""
    return f"{int(domain):04x}:{int(bus):02x}:{int(device):02x}.{int(function):x}"


def _nvml_serial(index: int) -> str | None:
    try:
        import pynvml  # optional: only hosts with nvidia-ml-py report a serial
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        serial = pynvml.nvmlDeviceGetSerial(pynvml.nvmlDeviceGetHandleByIndex(index))
    except Exception:  # no serial on this board, or NVML not usable here
        return None
    serial = serial.decode() if isinstance(serial, bytes) else str(serial)
    return serial.strip() or None


def nvidia_driver_from_proc(path: str) -> str | None:
    """The version in "NVRM version: NVIDIA UNIX [Open ]Kernel Module [for x86_64]  550.54.15  ..."
    (the number NVML reports)."""
    line = read_version_file(path)
    match = re.search(r"Kernel Module\b.*?\s(\d+\.\d+(?:\.\d+)*)\b", line or "")
    return match.group(1) if match else None


class XpuBackend(Backend):
    """Intel GPUs through upstream torch.xpu."""

    name = "xpu"
    module_name = "xpu"

    def has_timing_events(self) -> bool:
        return self.is_available()

    def event(self) -> TimingEvent:
        return DeviceEvent(torch.xpu.Event(enable_timing=True), self)

    def memory_info(self) -> dict[str, int | None]:
        props = torch.xpu.get_device_properties(0)
        info: dict[str, int | None] = {
            "total_bytes": int(props.total_memory),
            "free_bytes": None,
            "allocated_bytes": int(torch.xpu.memory_allocated()),
            "peak_allocated_bytes": int(torch.xpu.max_memory_allocated()),
        }
        if hasattr(torch.xpu, "mem_get_info"):
            info["free_bytes"] = int(torch.xpu.mem_get_info()[0])
        return info

    def reset_peak_memory(self) -> None:
        torch.xpu.reset_peak_memory_stats()

    def device_name(self) -> str | None:
        return torch.xpu.get_device_name(0)

    def capability(self) -> str | None:
        props: Any = torch.xpu.get_device_properties(0)
        return str(getattr(props, "architecture", None) or getattr(props, "platform_name", ""))

    def driver_version(self) -> str | None:
        version = getattr(torch.xpu.get_device_properties(0), "driver_version", None)
        return str(version) if version else None  # never the string "None": unknown is not checkable

    def runtime_version(self) -> str | None:
        version = getattr(torch.version, "xpu", None)
        return str(version) if version else None


class MpsBackend(Backend):
    """Apple GPUs through Metal Performance Shaders."""

    name = "mps"
    module_name = "mps"

    def _check_available(self) -> tuple[bool, str | None]:
        if not torch.backends.mps.is_available():
            built = torch.backends.mps.is_built()
            return False, "MPS not available" + ("" if built else " (torch built without MPS)")
        return True, None

    def device_count(self) -> int:
        return 1 if self.is_available() else 0

    def has_timing_events(self) -> bool:
        return self.is_available()

    def event(self) -> TimingEvent:
        return DeviceEvent(torch.mps.event.Event(enable_timing=True), self)

    def memory_info(self) -> dict[str, int | None]:
        return {
            "total_bytes": int(torch.mps.recommended_max_memory()),
            "free_bytes": None,
            "allocated_bytes": int(torch.mps.current_allocated_memory()),
            "peak_allocated_bytes": None,
        }

    def supported_dtypes(self) -> list[str]:
        # MPS has no float64, which the catalog never puts on the device anyway, and no float8.
        return [d for d in super().supported_dtypes() if not d.startswith("float8")]

    def device_name(self) -> str | None:
        return host_cpu_model()

    def runtime_version(self) -> str | None:
        # Metal ships with the operating system: its version is the macOS release.
        release = platform.mac_ver()[0]
        return f"macOS {release}" if release else None
