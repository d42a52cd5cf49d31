"""The device side of one kernel call, and the in-process device for library callers and the platform.

``execute_kernel`` is what the device process (runners/device/host.py) runs for a conformance
case: it takes the raw inputs the judge drew from the challenge, lays them out on the device
(``Kernel.arrange``), makes the device call and returns the comparable output. It never sees
a reference, a tolerance or a verdict.

``InProcessDevice`` runs the same function in the calling process. It is for the platform's own
spot check on its CPU (``runners.conformance.recompute_case``) and for tests that hand a Python
backend object to a suite; a runner host never uses it for a job (the worker and the CLI open a
``runners.device.client.DeviceClient``), and its documents say so (``process_isolation.mode``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import torch

from runners.catalog import Case, Kernel
from runners.errors import OUT_OF_MEMORY, PRODUCT_FAILURE, Classified, classify_exception, error


@dataclass
class KernelResult:
    """What came back from one device call: the output tensor, or why there is none."""

    output: torch.Tensor | None = None
    device_s: float = 0.0
    outcome: Classified | None = None  # set when output is None
    message: str | None = None
    exc_type: str | None = None  # the exception's class name, when the call raised

    @property
    def ok(self) -> bool:
        return self.output is not None


def error_message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]


def device_error(type_name: str, out_of_memory: bool) -> Classified:
    """How the judge classifies an exception the device process reports by name.

    Only out-of-memory is told apart (it stays a product failure); whatever else the device
    says (a timeout, "not supported"), a call declared supported that raised is the product's.
    """
    if out_of_memory:
        return error(OUT_OF_MEMORY, type_name[:100])
    return error(PRODUCT_FAILURE, f"{type_name[:100]} raised by a call declared supported")


def execute_kernel(backend: Any, kernel: Kernel, case: Case, raw: dict[str, Any]) -> KernelResult:
    """Moves ``raw`` (CPU inputs in the case's dtype) to the device, runs the kernel, synchronizes."""
    device = backend.device()
    try:
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in raw.items()}
        inputs = kernel.arrange(moved, case)
    except Exception as exc:  # the device's runtime failed a transfer of a supported dtype
        return KernelResult(
            outcome=classify_exception(exc, phase="device"),
            message=f"moving inputs to {device}: {error_message(exc)}",
            exc_type=type(exc).__name__,
        )
    try:
        started = time.perf_counter()
        output = kernel.run(inputs)
        backend.synchronize()
        device_s = time.perf_counter() - started
        result = kernel.comparable(output, inputs)
    except Exception as exc:
        # Declared supported (the suite checked before calling): whatever the exception says,
        # it is the product's failure, never "unsupported".
        return KernelResult(
            outcome=classify_exception(exc, phase="device"),
            message=f"device call raised {error_message(exc)}",
            exc_type=type(exc).__name__,
        )
    if not isinstance(result, torch.Tensor):
        return KernelResult(
            device_s=device_s,
            outcome=error(PRODUCT_FAILURE, "not a tensor"),
            message=f"device call returned {type(result).__name__}, not a tensor",
        )
    return KernelResult(output=result, device_s=device_s)


def loaded_packages() -> list[str]:
    """Top-level packages this process has imported, less the standard library (for the document)."""
    stdlib = set(sys.stdlib_module_names) | {"__main__", "__mp_main__"}
    names = {name.split(".")[0] for name in list(sys.modules)}
    return sorted(n for n in names if n not in stdlib and not n.startswith("_"))


class InProcessDevice:
    """A backend object driven in this process: no isolation (see the module docstring)."""

    mode = "in_process"

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.name = backend.name

    def availability(self) -> tuple[bool, str | None]:
        return self.backend.availability()

    def support_declaration(self) -> dict[str, Any]:
        return self.backend.support_declaration()

    def fingerprint(self) -> dict[str, Any]:
        return self.backend.fingerprint()

    def run_kernel(self, kernel: Kernel, case: Case, dtype: str, raw: dict[str, Any]) -> KernelResult:
        return execute_kernel(self.backend, kernel, case, raw)

    def isolation(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "verdicts_in": "judge",
            "note": "the device stack ran inside the judge's process (library call or the platform's "
            "own recompute); a runner host's worker and CLI always use a separate device process",
            "judge": {"packages": loaded_packages()},
        }

    def close(self) -> None:
        return None
