"""Errors a model spec can cause; each is recorded in the result, never fatal to the worker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WeightsFile:
    """A weights file as the runner read it: the digest is over the very bytes it parsed."""

    path: Path
    sha256: str
    size: int


class ModelError(Exception):
    """A model could not be loaded or run.

    ``code`` is the result document's code (runners/errors.py), ``error_class`` its coarser
    class, ``reason`` the specific cause. A bad artifact or spec is the submitter's input
    (``bad_spec``), not a failure of the product nor of the infrastructure. ``weights`` is the
    file that was read, where one was, so the document records its digest even on failure.
    """

    code = "bad_spec"
    error_class = "bad_spec"
    reason = "model_error"

    def __init__(self, message: str, *, weights: WeightsFile | None = None) -> None:
        super().__init__(message)
        self.weights = weights


class UnknownArchitectureError(ModelError):
    reason = "unknown_architecture"


class MissingWeightsError(ModelError):
    """The spec names no weights file: no weights are ever made up in its place."""

    reason = "no_weights"


class WeightsFormatError(ModelError):
    """The weights file is not a readable safetensors file (pickles are never opened)."""

    reason = "weights_not_safetensors"


class ChecksumMismatchError(ModelError):
    reason = "checksum_mismatch"


class ConfigMismatchError(ModelError):
    """Tensor names or shapes in the weights disagree with what the config implies."""

    reason = "config_mismatch"


class DoesNotFitError(ModelError):
    """The model needs more memory than the device reports free: it cannot be certified on it."""

    code = "out_of_memory"
    error_class = "product_failure"
    reason = "does_not_fit"
