"""From a model spec (data only: architecture id, config, safetensors weights) to a module.

Weights are read only through safetensors, whose format is a JSON header plus raw tensor
bytes: nothing in a weights file can execute. Pickle-based files (``torch.save``) are
refused before any parsing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from runners.models.bert import BertConfig, BertEncoder
from runners.models.errors import (
    ChecksumMismatchError,
    ConfigMismatchError,
    DoesNotFitError,
    ModelError,
    UnknownArchitectureError,
    WeightsFormatError,
)
from runners.models.init_weights import synthetic_state_dict
from runners.models.llama import LlamaConfig, LlamaDecoder
from runners.models.resnet import ResNetClassifier, ResNetConfig

# Beyond the weights, room for activations, workspace and the allocator's rounding.
MEMORY_HEADROOM = 1.25
_MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class Architecture:
    """A registered architecture id: how to read its config and build its module."""

    name: str
    task: str
    config_type: Any
    module_type: type[nn.Module]


ARCHITECTURES: dict[str, Architecture] = {
    "bert-encoder": Architecture("bert-encoder", "sentence-embedding", BertConfig, BertEncoder),
    "llama-decoder": Architecture("llama-decoder", "text-generation", LlamaConfig, LlamaDecoder),
    "resnet-cnn": Architecture("resnet-cnn", "image-classification", ResNetConfig, ResNetClassifier),
}


@dataclass(frozen=True)
class ModelSpec:
    """One item of a job spec's ``models`` list."""

    name: str
    architecture: str
    config: dict[str, Any] = field(default_factory=dict)
    version: str = "0"
    weights_path: str | None = None
    sha256: str | None = None
    task: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(
            name=str(data.get("name", "unnamed")),
            architecture=str(data.get("architecture", "")),
            config=dict(data.get("config") or {}),
            version=str(data.get("version", "0")),
            weights_path=data.get("weights_path"),
            sha256=data.get("sha256"),
            task=data.get("task"),
        )

    @property
    def synthetic(self) -> bool:
        return not self.weights_path or bool(self.config.get("synthetic"))


@dataclass
class LoadedModel:
    """A validated float32 master copy on the host; ``place`` makes device/dtype copies."""

    spec: ModelSpec
    architecture: Architecture
    config: Any
    module: nn.Module

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def place(self, device: torch.device, dtype: torch.dtype, *, free_bytes: int | None) -> nn.Module:
        """A copy in ``dtype`` on ``device``; DoesNotFitError before allocating if too big."""
        check_fits(self.parameter_count, dtype, free_bytes, what=f"{self.spec.name} in {dtype}")
        copy = self.architecture.module_type(self.config)
        copy.load_state_dict(self.module.state_dict())
        try:
            return copy.to(device=device, dtype=dtype).eval()
        except torch.OutOfMemoryError as exc:
            raise DoesNotFitError(f"{self.spec.name}: out of device memory: {exc}") from exc


def architecture_for(spec: ModelSpec) -> Architecture:
    try:
        return ARCHITECTURES[spec.architecture]
    except KeyError:
        raise UnknownArchitectureError(
            f"unknown architecture {spec.architecture!r}; registered: {sorted(ARCHITECTURES)}"
        ) from None


def expected_shapes(architecture: Architecture, config: Any) -> dict[str, tuple[int, ...]]:
    """Names and shapes the config implies, from a module built on the meta device (no memory)."""
    with torch.device("meta"):
        module = architecture.module_type(config)
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def check_fits(parameters: int, dtype: torch.dtype, free_bytes: int | None, *, what: str) -> None:
    if free_bytes is None:
        return  # the backend cannot tell; an allocation failure is still caught when placing
    itemsize = torch.empty((), dtype=dtype).element_size()
    needed = math.ceil(parameters * itemsize * MEMORY_HEADROOM)
    if needed > free_bytes:
        raise DoesNotFitError(
            f"{what} needs about {needed / 2**30:.2f} GiB, the device has {free_bytes / 2**30:.2f} GiB free"
        )


def host_free_bytes() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def load_model(spec: ModelSpec, *, seed: int = 0) -> LoadedModel:
    """Validate the spec and build the float32 host copy; raises a ModelError subclass."""
    architecture = architecture_for(spec)
    try:
        config = architecture.config_type.from_dict(spec.config)
    except (TypeError, ValueError) as exc:
        raise ConfigMismatchError(f"{spec.name}: invalid config: {exc}") from exc
    shapes = expected_shapes(architecture, config)
    check_fits(
        sum(math.prod(s) for s in shapes.values()),
        torch.float32,
        host_free_bytes(),
        what=f"{spec.name} (float32 host copy)",
    )
    if spec.synthetic:
        state = synthetic_state_dict(shapes, seed)
    else:
        state = read_safetensors(
            Path(str(spec.weights_path)),
            spec.sha256,
            shapes,
            optional=getattr(architecture.module_type, "optional_keys", ()),
        )
    module = architecture.module_type(config)
    module.load_state_dict(state, strict=True)
    return LoadedModel(spec, architecture, config, module.float().eval())


def read_safetensors(
    path: Path, sha256: str | None, shapes: dict[str, tuple[int, ...]], *, optional: tuple[str, ...] = ()
) -> dict[str, torch.Tensor]:
    """Float32 tensors named as ``shapes`` from a safetensors file, after checking it."""
    if not path.is_file():
        raise WeightsFormatError(f"weights file not found: {path}")
    _check_safetensors_header(path)
    if sha256:
        digest = _sha256(path)
        if digest != sha256.lower():
            raise ChecksumMismatchError(
                f"{path.name}: sha256 {digest} does not match the registered {sha256}"
            )
    try:
        with safe_open(str(path), framework="pt") as handle:
            stored = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
            _check_names_and_shapes(stored, shapes, optional)
            return {name: handle.get_tensor(name).float() for name in shapes}
    except ModelError:
        raise
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise WeightsFormatError(f"{path.name}: unreadable safetensors: {exc}") from exc


def _check_safetensors_header(path: Path) -> None:
    with path.open("rb") as handle:
        head = handle.read(9)
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise WeightsFormatError(f"{path.name} is a pickle/zip checkpoint; only safetensors is accepted")
    if len(head) < 9:
        raise WeightsFormatError(f"{path.name} is too short to be safetensors")
    (header_len,) = struct.unpack("<Q", head[:8])
    if header_len > _MAX_HEADER_BYTES or head[8:9] != b"{":
        raise WeightsFormatError(f"{path.name} does not start with a safetensors header")


def _check_names_and_shapes(
    stored: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]], optional: tuple[str, ...]
) -> None:
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected) - set(optional))
    wrong = sorted(
        f"{n}: file {stored[n]}, config {expected[n]}"
        for n in set(expected) & set(stored)
        if stored[n] != expected[n]
    )
    problems = []
    if missing:
        problems.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    if wrong:
        problems.append(f"shape mismatch {wrong[:5]}")
    if problems:
        raise ConfigMismatchError("weights do not match the config: " + "; ".join(problems))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_config_file(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
