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

Phase = Literal["harness", "device"]


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
    reference, scoring), ``device`` for anything that went through the backend. The exception's
    message is never read to decide: a NotImplementedError or a "not supported" message from a
    device call declared supported is a ``product_failure``.
    """
    name = type(exc).__name__
    if _is_timeout(exc):
        return error(TIMEOUT, name)
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
