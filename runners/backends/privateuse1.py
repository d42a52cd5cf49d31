"""Out-of-tree devices (PrivateUse1): Ascend npu, Cambricon mlu, ... through their plugin.

A plugin such as torch_npu registers the device name with torch and adds a `torch.<name>`
module shaped like torch.cuda. This backend imports the plugin, then talks to the device
through `torch.accelerator` where that works and through `torch.<name>` otherwise, so a new
vendor needs no code here, only its plugin installed.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import torch

from runners.backends.base import Backend, DeviceEvent, TimingEvent, distribution_version, read_version_file

# Ascend's driver package writes its version here ("Version=23.0.rc3"); torch_npu reads the same file.
ASCEND_DRIVER_FILE = "/usr/local/Ascend/driver/version.info"

# Device name -> (import name of the plugin, distribution name for its version).
KNOWN_PLUGINS: dict[str, tuple[str, str]] = {
    "npu": ("torch_npu", "torch-npu"),
    "mlu": ("torch_mlu", "torch-mlu"),
    "hpu": ("habana_frameworks.torch", "habana-torch-plugin"),
}


class PrivateUse1Backend(Backend):
    """A device supplied by a plugin; unavailable (with the reason) when the plugin is missing."""

    def __init__(self, name: str, plugin_module: str | None = None, distribution: str | None = None):
        self.name = name
        self.module_name = name
        known = KNOWN_PLUGINS.get(name)
        self.plugin_module = plugin_module or (known[0] if known else None)
        self.distribution = distribution or (known[1] if known else None)
        self._plugin_error: str | None = None
        self._plugin_loaded = False

    def _load_plugin(self) -> None:
        if self._plugin_loaded or self.plugin_module is None:
            return
        try:
            importlib.import_module(self.plugin_module)
            self._plugin_loaded = True
        except Exception as exc:  # ImportError, or a plugin failing against this torch
            self._plugin_error = f"cannot import {self.plugin_module}: {type(exc).__name__}: {exc}"

    def _module(self) -> ModuleType | None:
        self._load_plugin()
        return getattr(torch, self.name, None)

    def _accelerator_is_mine(self) -> bool:
        accelerator = getattr(torch, "accelerator", None)
        if accelerator is None or not accelerator.is_available():
            return False
        current = accelerator.current_accelerator()
        return current is not None and current.type == self.name

    def _check_available(self) -> tuple[bool, str | None]:
        self._load_plugin()
        if self._plugin_error:
            return False, self._plugin_error
        if self._accelerator_is_mine():
            return True, None
        module = getattr(torch, self.name, None)
        if module is None:
            return False, f"no torch.{self.name} module (plugin not installed or not registered)"
        if not module.is_available():
            return False, f"torch.{self.name}.is_available() is False"
        return True, None

    def device_count(self) -> int:
        if not self.is_available():
            return 0
        if self._accelerator_is_mine():
            return int(torch.accelerator.device_count())
        return super().device_count()

    def synchronize(self) -> None:
        if self._accelerator_is_mine():
            torch.accelerator.synchronize()
        else:
            super().synchronize()

    def has_timing_events(self) -> bool:
        module = self._module()
        return self.is_available() and module is not None and hasattr(module, "Event")

    def event(self) -> TimingEvent:
        module = self._module()
        if module is not None and hasattr(module, "Event"):
            return DeviceEvent(module.Event(enable_timing=True), self)
        return super().event()

    def memory_info(self) -> dict[str, int | None]:
        info = super().memory_info()
        module: Any = self._module()
        if module is None:
            return info
        if hasattr(module, "mem_get_info"):
            free, total = module.mem_get_info()
            info["free_bytes"], info["total_bytes"] = int(free), int(total)
        if hasattr(module, "memory_allocated"):
            info["allocated_bytes"] = int(module.memory_allocated())
        if hasattr(module, "max_memory_allocated"):
            info["peak_allocated_bytes"] = int(module.max_memory_allocated())
        return info

    def reset_peak_memory(self) -> None:
        module: Any = self._module()
        if module is not None and hasattr(module, "reset_peak_memory_stats"):
            module.reset_peak_memory_stats()

    def device_name(self) -> str | None:
        module: Any = self._module()
        if module is not None and hasattr(module, "get_device_name"):
            return str(module.get_device_name(0))
        return None

    def device_identity(self) -> dict[str, str]:
        """The name from the plugin (torch_npu: ``torch.npu.get_device_name``), and a PCI bus id or
        UUID where the plugin's device properties carry one."""
        identity: dict[str, str] = {}
        name = self.device_name()
        if name:
            identity["name"] = name
        module: Any = self._module()
        getter = getattr(module, "get_device_properties", None) if module is not None else None
        props = getter(0) if callable(getter) else None
        for key in ("pci_bus_id", "uuid"):
            value = getattr(props, key, None)
            if isinstance(value, str) and value:
                identity[key] = value
        return identity

    def capability(self) -> str | None:
        if hasattr(torch.accelerator, "get_device_capability") and self._accelerator_is_mine():
            return str(torch.accelerator.get_device_capability(0))
        return None

    def _cann_version(self, module: str) -> str | None:
        """torch_npu's own report of a CANN component (CANN 8.1+; empty string where it cannot tell)."""
        self._load_plugin()
        for path in ("torch_npu.utils", "torch_npu.npu.utils"):
            try:
                getter = getattr(importlib.import_module(path), "get_cann_version", None)
            except ImportError:  # an older torch_npu without this module: try the other one
                getter = None
            if getter is not None:
                return str(getter(module=module) or "") or None
        return None

    def driver_version(self) -> str | None:
        """npu: torch_npu's DRIVER version, else the driver's version.info file;
        others: ``torch.<name>.driver_version()`` where the plugin offers it."""
        if self.name == "npu":
            return self._cann_version("DRIVER") or read_version_file(ASCEND_DRIVER_FILE, "Version")
        getter = getattr(self._module(), "driver_version", None)
        return str(getter()) if callable(getter) else None

    def runtime_version(self) -> str | None:
        """npu: "cann <version>" from torch_npu; others: ``torch.version.<name>`` where the plugin sets it."""
        if self.name == "npu":
            cann = self._cann_version("CANN")
            return f"cann {cann}" if cann else None
        version = getattr(torch.version, self.name, None)
        return str(version) if version else None

    def plugin_versions(self) -> dict[str, str]:
        version = distribution_version(self.distribution) if self.distribution else None
        return {self.distribution: version} if self.distribution and version else {}
