"""Model architectures in plain PyTorch, loaded from data only (safetensors + config).

The names below are imported when first used (PEP 562): the platform reads `runners.models.layouts`
and `runners.models.errors` without importing torch, which the loaders need."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from runners.models.errors import (
    ChecksumMismatchError,
    ConfigMismatchError,
    DoesNotFitError,
    MissingWeightsError,
    ModelError,
    UnknownArchitectureError,
    WeightsFormatError,
)

if TYPE_CHECKING:
    from runners.models.loading import ARCHITECTURES, LoadedModel, ModelSpec, load_model
    from runners.models.minilm import minilm_model_entry

_LAZY = {
    "ARCHITECTURES": "runners.models.loading",
    "LoadedModel": "runners.models.loading",
    "ModelSpec": "runners.models.loading",
    "load_model": "runners.models.loading",
    "minilm_model_entry": "runners.models.minilm",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
