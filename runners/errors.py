"""One taxonomy for every case that does not pass, and the one classifier that applies it.

"Unsupported" is decided *before* a case runs, from what the backend declares it supports
(``Backend.supported_dtypes`` and ``Backend.declared_unsupported_kernels``): never from the text
of an exception. A device call that raises after its kernel and dtype were declared supported is
a failure of the product, whatever its message says ("not supported", NotImplementedError, ...).

Codes (the result document's ``code``; runners/schema/result.schema.json documents them):

- ``unsupported_dtype``  the backend does not declare the dtype (status ``unsupported``)
- ``unsupported_op``     the backend declares the kernel or model unsupported, or the model
                         needs more memory than the device reports free (status ``unsupported``)
- ``product_failure``    the device or its software stack raised, returned garbage or too little
- ``out_of_memory``      the device ran out of memory on a case declared supported
- ``timeout``            a time limit passed (the job's or the case's)
- ``harness_error``      the runner itself failed (inputs, reference, scoring): nothing about the product
- ``infrastructure``     the host, backend plugin or environment is unusable (device unavailable,
                         package missing)
- ``bad_spec``           the job asked for something that does not exist or is malformed (unknown
                         kernel, an artifact that does not match its architecture or its digest)

Each code has one ``error_class`` (the older, coarser field that stays in the document): whose
fault it is. Only the two ``unsupported_*`` codes carry the class ``unsupported``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

UNSUPPORTED_DTYPE = "unsupported_dtype"
UNSUPPORTED_OP = "unsupported_op"
PRODUCT_FAILURE = "product_failure"
OUT_OF_MEMORY = "out_of_memory"
TIMEOUT = "timeout"
HARNESS_ERROR = "harness_error"
INFRASTRUCTURE = "infrastructure"
BAD_SPEC = "bad_spec"

CODES = (
    UNSUPPORTED_DTYPE,
    UNSUPPORTED_OP,
    PRODUCT_FAILURE,
    OUT_OF_MEMORY,
    TIMEOUT,
    HARNESS_ERROR,
    INFRASTRUCTURE,
    BAD_SPEC,
)
UNSUPPORTED_CODES = frozenset({UNSUPPORTED_DTYPE, UNSUPPORTED_OP})

# code -> the document's error_class (product_failure, infrastructure, unsupported, bad_spec).
ERROR_CLASS = {
    UNSUPPORTED_DTYPE: "unsupported",
    UNSUPPORTED_OP: "unsupported",
    PRODUCT_FAILURE: "product_failure",
    OUT_OF_MEMORY: "product_failure",  # declared supported: the device could not keep that promise
    TIMEOUT: "infrastructure",
    HARNESS_ERROR: "infrastructure",
    INFRASTRUCTURE: "infrastructure",
    BAD_SPEC: "bad_spec",
}

# harness: the runner's own host work; device: a call through the backend; timed: a timed block, where
# the device's calls (wrapped by ``device_call`` / ``device_backend``) mix with the harness's own
# sampling, statistics and probes, so the exception itself says which raised it.
Phase = Literal["harness", "device", "timed"]
_DEVICE_MARK = "_raised_through_a_device_call"


@dataclass(frozen=True)
class Classified:
    """What a non-passing case records: its status, code, error class and a short reason."""

    status: str
    code: str
    error_class: str
    reason: str

    def fields(self) -> dict[str, str]:
        """The case-record keys (status, code, error_class, reason)."""
        return {
            "status": self.status,
            "code": self.code,
            "error_class": self.error_class,
            "reason": self.reason,
        }


def unsupported(code: str, reason: str) -> Classified:
    """A case the backend declared it does not support; decided before anything runs."""
    if code not in UNSUPPORTED_CODES:
        raise ValueError(f"{code!r} is not an unsupported code")
    return Classified("unsupported", code, "unsupported", reason)


def error(code: str, reason: str) -> Classified:
    """A case that ran (or should have) and did not produce a judged result."""
    if code not in CODES or code in UNSUPPORTED_CODES:
        raise ValueError(f"{code!r} is not an error code")
    return Classified("error", code, ERROR_CLASS[code], reason)


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return True
    # Celery's soft time limit, without importing Celery (a hardware host may lack it in tests).
    return type(exc).__name__ == "SoftTimeLimitExceeded"


def classify_exception(exc: BaseException, *, phase: Phase) -> Classified:
    """The code of an exception raised while a case ran.

    ``phase`` says who was running: ``harness`` for the runner's own host work (inputs, float64
    reference, scoring), ``device`` for anything that went through the backend, ``timed`` for a timed
    block that mixes both: there only an exception raised through a device call (``device_call``,
    ``device_backend``) is the product's, any other is a ``harness_error``. The exception's
    message is never read to decide: a NotImplementedError or a "not supported" message from a
    device call declared supported is a ``product_failure``.
    """
    name = type(exc).__name__
    if _is_timeout(exc):
        return error(TIMEOUT, name)
    if phase == "timed" and not raised_on_device(exc):
        return error(HARNESS_ERROR, f"{name} raised by the runner's own code inside a timed block")
    if phase == "harness":
        return error(HARNESS_ERROR, name)
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return error(OUT_OF_MEMORY, name)
    return error(PRODUCT_FAILURE, f"{name} raised by a call declared supported")


def declared_unsupported(declaration: dict[str, Any], kernel: str, dtype: str) -> Classified | None:
    """Whether the backend's declaration (``Backend.support_declaration``) leaves this case out.

    The runner calls this before running a case; the platform's spot check calls it again on the
    document's ``support`` section to confirm every ``unsupported`` case is covered by it.
    """
    if dtype != "*" and dtype not in (declaration.get("dtypes") or []):
        return unsupported(UNSUPPORTED_DTYPE, f"{dtype} is not among the dtypes the backend declares")
    kernels = declaration.get("unsupported_kernels") or {}
    for key in (f"{kernel}/{dtype}", kernel):
        if key in kernels:
            return unsupported(UNSUPPORTED_OP, f"declared unsupported: {str(kernels[key])[:200]}")
    return None


def raised_on_device(exc: BaseException) -> bool:
    """Whether ``exc`` came out of a call wrapped by ``device_call`` (or a cause of it did)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if getattr(current, _DEVICE_MARK, False):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _mark(exc: BaseException) -> None:
    try:
        setattr(exc, _DEVICE_MARK, True)
    except (AttributeError, TypeError):  # an exception type with __slots__: left unmarked
        pass


def device_call(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a call into the vendor's backend) with whatever it raises marked as the device's."""
    if getattr(fn, "_device_call", False):
        return fn

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            _mark(exc)
            raise

    call._device_call = True  # type: ignore[attr-defined]
    return call


class _DeviceEvent:
    """A backend's timing event whose record and elapsed_ms are device calls."""

    def __init__(self, event: Any) -> None:
        self._event = event

    def record(self) -> None:
        device_call(self._event.record)()

    def elapsed_ms(self, end: Any) -> float:
        other = end._event if isinstance(end, _DeviceEvent) else end
        return device_call(self._event.elapsed_ms)(other)


class _DeviceBackend:
    """A backend seen by the runner's timing and probing code: every method it calls is a device call,
    and the events it hands out record and read as device calls, so an exception in a timed block
    can be told apart from one in the harness's own code (``classify_exception(phase="timed")``)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def event(self) -> _DeviceEvent:
        return _DeviceEvent(device_call(self._backend.event)())

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._backend, name)
        return device_call(attribute) if callable(attribute) else attribute


def device_backend(backend: Any) -> Any:
    """``backend`` with its calls marked as the device's (see ``_DeviceBackend``); None stays None."""
    if backend is None or isinstance(backend, _DeviceBackend):
        return backend
    return _DeviceBackend(backend)
