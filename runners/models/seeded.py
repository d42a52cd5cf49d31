"""Seeded weights written to a real safetensors file: the built-in models of standalone runs and the demo.

Nothing reads a seed in place of a file. A seeded model is a file like any other: written
once (content-addressed by its sha256), then loaded, hashed and recorded exactly as uploaded
weights are; the platform's demo uploads the same files through the model registry.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from safetensors.torch import save as safetensors_bytes

from runners.models.fp8 import plant_activation_outliers, quantize_weights
from runners.models.init_weights import synthetic_state_dict
from runners.models.loading import ModelSpec, architecture_for, expected_shapes, parse_config


def seeded_weights_bytes(
    architecture: str, config: dict[str, Any], *, seed: int, fp8: bool = False, outliers: bool = False
) -> bytes:
    """The safetensors bytes of seeded float32 weights for ``architecture`` with ``config``; with
    ``fp8``, as an FP8 checkpoint (DeepSeek-V3's E4M3 weights with 128x128 block scales,
    runners/models/fp8.py); with ``outliers``, the dense layer's activation outlier channels planted
    first (the FP8 test model, runners/models/fp8.py ``plant_activation_outliers``)."""
    arch = architecture_for(ModelSpec(name=architecture, architecture=architecture))
    shapes = expected_shapes(arch, parse_config(arch, config, what=architecture))
    state = synthetic_state_dict(shapes, seed)
    if outliers:
        state = plant_activation_outliers(state)
    if fp8:
        return safetensors_bytes(quantize_weights(state), metadata={"seed": str(seed), "fp8": "e4m3"})
    return safetensors_bytes(state, metadata={"seed": str(seed)})


def write_seeded_weights(
    architecture: str,
    config: dict[str, Any],
    *,
    seed: int,
    directory: Path,
    fp8: bool = False,
    outliers: bool = False,
) -> tuple[Path, str]:
    """Write (once) the seeded weights file under ``directory``; returns its path and sha256."""
    data = seeded_weights_bytes(architecture, config, seed=seed, fp8=fp8, outliers=outliers)
    digest = hashlib.sha256(data).hexdigest()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{digest}.safetensors"
    if not path.is_file() or path.stat().st_size != len(data):
        handle, partial = tempfile.mkstemp(dir=directory, suffix=".part")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(partial, path)
    return path, digest


def seeded_model_entry(
    name: str,
    architecture: str,
    config: dict[str, Any],
    *,
    seed: int,
    directory: Path,
    task: str | None = None,
    version: str = "1",
    fp8: bool = False,
    outliers: bool = False,
) -> dict[str, Any]:
    """A ``models`` spec item whose weights are a seeded file written under ``directory`` (an FP8
    checkpoint with ``fp8``; with ``outliers``, the FP8 test model's outlier channels planted)."""
    path, digest = write_seeded_weights(
        architecture, config, seed=seed, directory=directory, fp8=fp8, outliers=outliers
    )
    entry = {
        "name": name,
        "version": version,
        "architecture": architecture,
        "config": dict(config),
        "weights_path": str(path),
        "sha256": digest,
    }
    return {**entry, "task": task} if task else entry
