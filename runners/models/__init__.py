"""Model architectures in plain PyTorch, loaded from data only (safetensors + config)."""

from runners.models.errors import (
    ChecksumMismatchError,
    ConfigMismatchError,
    DoesNotFitError,
    MissingWeightsError,
    ModelError,
    UnknownArchitectureError,
    WeightsFormatError,
)
from runners.models.loading import ARCHITECTURES, LoadedModel, ModelSpec, load_model
from runners.models.minilm import minilm_model_entry

__all__ = [
    "ARCHITECTURES",
    "ChecksumMismatchError",
    "ConfigMismatchError",
    "DoesNotFitError",
    "MissingWeightsError",
    "LoadedModel",
    "ModelError",
    "ModelSpec",
    "UnknownArchitectureError",
    "WeightsFormatError",
    "load_model",
    "minilm_model_entry",
]
