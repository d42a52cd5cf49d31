"""Errors a model spec can cause; each is recorded in the result, never fatal to the worker."""

from __future__ import annotations


class ModelError(Exception):
    """A model could not be loaded or run; ``code`` names the reason for the evidence.

    ``error_class`` follows the result document's taxonomy: a bad artifact or spec is the
    submitter's input, not a failure of the product nor of the infrastructure.
    """

    code = "model_error"
    error_class = "bad_spec"


class UnknownArchitectureError(ModelError):
    code = "unknown_architecture"
    error_class = "unsupported"


class WeightsFormatError(ModelError):
    """The weights file is not a readable safetensors file (pickles are never opened)."""

    code = "weights_not_safetensors"


class ChecksumMismatchError(ModelError):
    code = "checksum_mismatch"


class ConfigMismatchError(ModelError):
    """Tensor names or shapes in the weights disagree with what the config implies."""

    code = "config_mismatch"


class DoesNotFitError(ModelError):
    """The model needs more memory than the device has."""

    code = "does_not_fit"
    error_class = "unsupported"
