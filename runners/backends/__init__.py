"""Device backends: one interface for every device PyTorch can drive.

Built in: cpu, cuda (also ROCm), xpu, mps, and PrivateUse1 plugins (npu, mlu, hpu, or any
name the running torch has registered). Third parties add a backend without touching the
platform by declaring an entry point in the group `accelerator_certification.backends`
whose object is a Backend subclass, a Backend instance, or a zero-argument factory.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import torch

from runners.backends.base import (
    CANDIDATE_DTYPES,
    Backend,
    ClockEvent,
    DeviceEvent,
    TimingEvent,
    host_facts,
)
from runners.backends.builtin import CpuBackend, CudaBackend, MpsBackend, XpuBackend
from runners.backends.privateuse1 import KNOWN_PLUGINS, PrivateUse1Backend

ENTRY_POINT_GROUP = "accelerator_certification.backends"

__all__ = [
    "CANDIDATE_DTYPES",
    "ENTRY_POINT_GROUP",
    "Backend",
    "BrokenBackend",
    "ClockEvent",
    "CpuBackend",
    "CudaBackend",
    "DeviceEvent",
    "MpsBackend",
    "PrivateUse1Backend",
    "TimingEvent",
    "UnknownBackend",
    "XpuBackend",
    "get_backend",
    "host_facts",
    "list_backends",
]

# ROCm builds drive AMD GPUs through torch.cuda; "rocm" is accepted as a spelling of it.
_BUILTIN_FACTORIES = {
    "cpu": CpuBackend,
    "cuda": CudaBackend,
    "rocm": CudaBackend,
    "xpu": XpuBackend,
    "mps": MpsBackend,
}


class UnknownBackend(ValueError):
    """No built-in, plugin or entry-point backend has this name."""


class BrokenBackend(Backend):
    """Stands in for an entry point that failed to load, so listing never crashes."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self._reason = reason

    def _check_available(self) -> tuple[bool, str | None]:
        return False, self._reason


def _entry_points() -> list[EntryPoint]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def _load_entry_point(entry_point: EntryPoint) -> Backend:
    try:
        loaded = entry_point.load()
        backend = loaded() if callable(loaded) and not isinstance(loaded, Backend) else loaded
        if not isinstance(backend, Backend):
            raise TypeError(f"{entry_point.value} gave {type(backend).__name__}, not a Backend")
        if backend.name != entry_point.name:
            backend.name = entry_point.name  # the entry point's name is what specs refer to
        return backend
    except Exception as exc:
        return BrokenBackend(
            entry_point.name, f"entry point {entry_point.value}: {type(exc).__name__}: {exc}"
        )


def _registered_privateuse1_name() -> str | None:
    name = torch._C._get_privateuse1_backend_name()
    return None if name in ("privateuseone", "privateuse1") else name


def get_backend(name: str) -> Backend:
    """The backend called `name`; raises UnknownBackend when nothing provides it.

    Entry points win over built-ins so a vendor can ship a better backend for its device.
    """
    for entry_point in _entry_points():
        if entry_point.name == name:
            return _load_entry_point(entry_point)
    if name in _BUILTIN_FACTORIES:
        return _BUILTIN_FACTORIES[name]()
    if name in KNOWN_PLUGINS or name == _registered_privateuse1_name():
        return PrivateUse1Backend(name)
    known = sorted({*_BUILTIN_FACTORIES, *KNOWN_PLUGINS, *(ep.name for ep in _entry_points())})
    raise UnknownBackend(f"unknown backend {name!r}; known: {', '.join(known)}")


def list_backends() -> list[Backend]:
    """Every backend this host could offer, available or not (ask each `availability()`)."""
    names = ["cpu", "cuda", "xpu", "mps", *KNOWN_PLUGINS]
    registered = _registered_privateuse1_name()
    if registered and registered not in names:
        names.append(registered)
    for entry_point in _entry_points():
        if entry_point.name not in names:
            names.append(entry_point.name)
    return [get_backend(name) for name in names]
