"""Two processes on a runner host: the judge, and the device process that runs the vendor's stack.

Which process may load what:

==========================  ===============================  =====================================
                            judge (parent: worker, CLI)      device process (runners.device.host)
==========================  ===============================  =====================================
runner signing key          yes (RunnerIdentity, in memory)  never: not in its environment, argv or
                                                             descriptors; Landlock hides the file
job spec and challenge      yes                              only what a request carries
catalog inputs              draws them from the challenge    receives them as tensors
float64 references          computes them                    never
tolerances, verdicts        ``runners.conformance.compare``  never (patching its own copy of
                                                             ``runners.conformance`` changes nothing)
backend plugin / entry      never imported                   ``runners.backends.get_backend``
point, driver, runtime
kernel device calls         never                            ``Kernel.arrange``/``run``/``comparable``
broker, platform URL        yes                              never (scrubbed from its environment)
==========================  ===============================  =====================================

Only tensors (raw bytes with dtype and shape) and JSON values (timings, the fingerprint, the
support declaration) cross, in the frames of runners/device/protocol.py; nothing is unpickled.

The conformance suite is split this way: every device call goes through
``DeviceClient.run_kernel`` and the judge compares the returned tensor. The performance and model
suites still run whole in the device process (``DeviceClient.run_suite``): their timed loops and
their TEST01/TEST04 verdicts are computed there, then the judge validates and signs the document,
which says so (``process_isolation.verdicts_in = "device"``). The key stays out of reach in
every suite; moving their verdicts to the judge is the next step (see issue 13).

Torch's own device-extension autoload (``torch.backends`` entry points) is turned off in the
judge (runners/__init__.py) and left as the host has it in the device process.
"""

from __future__ import annotations

from typing import Any

from runners.device.local import InProcessDevice, KernelResult

__all__ = [
    "InProcessDevice",
    "KernelResult",
    "as_device",
    "is_isolated",
    "open_device",
    "suite_in_device_process",
]


def as_device(backend: Any) -> Any:
    """A device to run kernels on: a ``DeviceClient`` as is, a Backend object wrapped in-process."""
    if hasattr(backend, "run_kernel") and hasattr(backend, "isolation"):
        return backend
    return InProcessDevice(backend)


def open_device(name: str, *, protected_paths: Any = ()) -> Any:
    """A ``DeviceClient`` for backend ``name`` (raises runners.device.client.UnknownDevice)."""
    from runners.device.client import DeviceClient

    return DeviceClient(name, protected_paths=protected_paths)


def is_isolated(backend: Any) -> bool:
    """True for a device process client (it can run a whole suite over there)."""
    return hasattr(backend, "run_suite") and hasattr(backend, "isolation")


def suite_in_device_process(spec: dict[str, Any], device: Any, progress: Any = None) -> dict[str, Any]:
    """Runs a performance or model suite whole in the device process; the judge then puts back the
    spec it was given, records the process split, and validates the document before anyone signs it."""
    from runners.document import DocumentInvalid, validate_document

    document = device.run_suite(spec, progress)
    if document.get("suite") != spec.get("suite"):
        raise DocumentInvalid(f"the device process returned a {document.get('suite')!r} document")
    document["spec"] = spec
    document["fingerprint"] = device.fingerprint()
    document["process_isolation"] = device.isolation(verdicts_in="device")
    validate_document(document)
    return document
