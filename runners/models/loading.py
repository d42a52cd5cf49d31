"""From a model spec (data only: architecture id, config, safetensors weights) to a module.

Weights are read only through safetensors, whose format is a JSON header plus raw tensor
bytes: nothing in a weights file can execute. Pickle-based files (``torch.save``) are
refused before any parsing. Every model runs the weights of its file, and only those: no
config key or spec field replaces them (built-in demo models are seeded files written to disk
first, runners/models/seeded.py). The file is read once; its sha256 is computed over the bytes
that are parsed, and the result document records it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors_bytes
from torch import nn
from torch.overrides import TorchFunctionMode

from runners.catalog.quantized import Fp8Product
from runners.models.bert import BertConfig, BertEncoder
from runners.models.deepseek import DeepseekV3Config, DeepseekV3Decoder
from runners.models.errors import (
    ChecksumMismatchError,
    ConfigMismatchError,
    DoesNotFitError,
    MissingWeightsError,
    UnknownArchitectureError,
    WeightsFile,
    WeightsFormatError,
)
from runners.models.fp8 import SCALE_SUFFIX, Fp8Checkpoint, is_fp8_weight, scale_shape, split_checkpoint
from runners.models.layouts import LAYOUTS
from runners.models.llama import LlamaConfig, LlamaDecoder
from runners.models.resnet import ResNetClassifier, ResNetConfig

# Beyond the weights, room for activations, workspace and the allocator's rounding.
MEMORY_HEADROOM = 1.25
_MAX_HEADER_BYTES = 100 * 1024 * 1024
MAX_LAYERS = 1024  # deeper than any published model of these architectures


@dataclass(frozen=True)
class Architecture:
    """A registered architecture id: how to read its config and build its module.

    ``layout`` documents the tensors a weights file must hold, as (name pattern, shape) with
    symbols from the config; the check itself uses the names and shapes of the module the
    config builds (``expected_tensors``), and a test keeps the two in agreement.
    """

    name: str
    task: str
    config_type: Any
    module_type: type[nn.Module]
    symbols: str = ""
    layout: tuple[tuple[str, str], ...] = ()


ARCHITECTURES: dict[str, Architecture] = {
    name: Architecture(name, task, config_type, module_type, LAYOUTS[name].symbols, LAYOUTS[name].tensors)
    for name, task, config_type, module_type in (
        ("bert-encoder", "sentence-embedding", BertConfig, BertEncoder),
        ("llama-decoder", "text-generation", LlamaConfig, LlamaDecoder),
        ("deepseek-v3", "text-generation", DeepseekV3Config, DeepseekV3Decoder),
        ("resnet-cnn", "image-classification", ResNetConfig, ResNetClassifier),
    )
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


@dataclass
class LoadedModel:
    """A validated float32 master copy on the host; ``place`` makes device/dtype copies.

    ``weights`` is the file the module's tensors came from, with the sha256 of its bytes.
    """

    spec: ModelSpec
    architecture: Architecture
    config: Any
    module: nn.Module
    weights: WeightsFile
    # An FP8 checkpoint's codes and block scales as read (runners/models/fp8.py); None for others.
    fp8: Fp8Checkpoint | None = None

    def reference_state(self) -> dict[str, torch.Tensor]:
        """The weights in float64 for a reference: the module's, with an FP8 checkpoint's weights
        dequantized exactly from their codes and scales (not from the float32 host copy's rounding)."""
        state = {name: t.detach().to(torch.float64) for name, t in self.module.state_dict().items()}
        if self.fp8 is not None:
            state.update(self.fp8.dequantized(torch.float64))
        return state

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def place(
        self,
        device: torch.device,
        dtype: torch.dtype,
        *,
        free_bytes: int | None,
        fp8_product: Fp8Product | None = None,
    ) -> nn.Module:
        """A copy in ``dtype`` on ``device``; DoesNotFitError before allocating if too big. An FP8
        checkpoint runs on the block-scaled FP8 path with ``fp8_product`` (the backend's probed FP8
        GEMM, runners/backends/base.py ``Backend.fp8_gemm``), else dequantized (runners/models/fp8.py)."""
        check_fits(self.parameter_count, dtype, free_bytes, what=f"{self.spec.name} in {dtype}")
        copy = self.architecture.module_type(self.config)
        copy.load_state_dict(self.module.state_dict())
        try:
            placed = copy.to(device=device, dtype=dtype).eval()
            if self.fp8 is not None and fp8_product is not None:  # the codes and scales as stored
                self.fp8.install(placed, device, fp8_product)
            elif self.fp8 is not None:  # dequantized on the device from the codes and scales as stored
                placed.load_state_dict(self.fp8.for_run(device, dtype), strict=False)
            return placed
        except torch.OutOfMemoryError as exc:
            raise DoesNotFitError(f"{self.spec.name}: out of device memory: {exc}") from exc


def architecture_for(spec: ModelSpec) -> Architecture:
    try:
        return ARCHITECTURES[spec.architecture]
    except KeyError:
        raise UnknownArchitectureError(
            f"unknown architecture {spec.architecture!r}; registered: {sorted(ARCHITECTURES)}"
        ) from None


def parse_config(architecture: Architecture, config: dict[str, Any], *, what: str) -> Any:
    try:
        return architecture.config_type.from_dict(config)
    except (TypeError, ValueError) as exc:
        raise ConfigMismatchError(f"{what}: invalid config: {exc}") from exc


def expected_tensors(
    architecture: str, config: dict[str, Any]
) -> tuple[dict[str, tuple[int, ...]], tuple[str, ...]]:
    """The tensor names and shapes a weights file for ``architecture`` with ``config`` must hold,
    and the names it may hold besides; raises UnknownArchitectureError or ConfigMismatchError."""
    arch = architecture_for(ModelSpec(name=architecture, architecture=architecture))
    parsed = parse_config(arch, config, what=architecture)
    depth = _depth(parsed)
    if depth > MAX_LAYERS:  # building the module, even on the meta device, takes time per layer
        raise ConfigMismatchError(f"{architecture}: {depth} layers; at most {MAX_LAYERS} are accepted")
    try:
        shapes = expected_shapes(arch, parsed)
    except (TypeError, ValueError, RuntimeError) as exc:  # e.g. a zero or negative dimension
        raise ConfigMismatchError(f"{architecture}: invalid config: {exc}") from exc
    return shapes, tuple(getattr(arch.module_type, "optional_keys", ()))


def _depth(config: Any) -> int:
    layers = getattr(config, "num_hidden_layers", None)
    if isinstance(layers, int):
        return layers + int(getattr(config, "num_nextn_predict_layers", 0) or 0)
    blocks = getattr(config, "blocks", None)
    return sum(b for b in blocks if isinstance(b, int)) if isinstance(blocks, tuple) else 0


def first_tensor_mismatch(
    stored: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]], optional: tuple[str, ...]
) -> str | None:
    """The first way (in name order) the stored tensors differ from the expected ones, or None. An FP8
    checkpoint's ``<weight>_scale_inv`` (runners/models/fp8.py) belongs where ``<weight>`` is an FP8
    weight of the architecture, with one scale per 128x128 block."""
    scales = {
        name + SCALE_SUFFIX: scale_shape(shape)
        for name, shape in expected.items()
        if is_fp8_weight(name) and len(shape) == 2
    }
    for name in sorted(set(stored) & set(scales)):
        if tuple(stored[name]) != scales[name]:
            return f"tensor {name} has shape {list(stored[name])}, one scale per 128x128 block is {list(scales[name])}"
    stored = {name: shape for name, shape in stored.items() if name not in scales}
    for name in sorted(expected):
        if name not in stored:
            return f"tensor {name} is missing (expected shape {list(expected[name])})"
        if tuple(stored[name]) != expected[name]:
            return f"tensor {name} has shape {list(stored[name])}, the config implies {list(expected[name])}"
    for name in sorted(stored):
        if name not in expected and name not in optional:
            return f"tensor {name} is not part of this architecture"
    return None


class _SkipInitialisation(TorchFunctionMode):
    """Leaves out torch.nn.init's fills while a module is built on the meta device only to read its
    tensor names and shapes. A meta tensor holds no values, so the fills compute nothing, yet
    ``normal_`` (nn.Embedding's default) on a meta tensor runs through torch._refs, whose first call
    in a process imports torch._dynamo: 4-5 s on an idle core, 12-18 s on this loaded 2-core host,
    paid by the first upload check of each web or test process. The mode is thread-local (unlike
    patching torch.nn.init), so a concurrent real initialisation is untouched."""

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        if getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else (kwargs or {})["tensor"]
        return func(*args, **(kwargs or {}))


def expected_shapes(architecture: Architecture, config: Any) -> dict[str, tuple[int, ...]]:
    """Names and shapes the config implies, from a module built on the meta device (no memory); kept
    for a config seen before (architectures and configs are frozen: the shapes are a function of them).
    Building the module, even on the meta device, was half of loading a small model, which the platform
    does for each reveal of a model or serving job (issue 13)."""
    try:
        return dict(_meta_shapes(architecture, config))
    except TypeError:  # a config that cannot be a key (unhashable): built every time
        return dict(_meta_shapes.__wrapped__(architecture, config))


@functools.lru_cache(maxsize=16)
def _meta_shapes(architecture: Architecture, config: Any) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"), _SkipInitialisation():
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


def load_model(spec: ModelSpec) -> LoadedModel:
    """Validate the spec and build the float32 host copy from its weights file; raises a ModelError."""
    architecture = architecture_for(spec)
    config = parse_config(architecture, spec.config, what=spec.name)
    shapes = expected_shapes(architecture, config)
    if not spec.weights_path:
        raise MissingWeightsError(f"{spec.name}: the spec names no weights file; nothing is run without one")
    path = Path(str(spec.weights_path))
    size = path.stat().st_size if path.is_file() else 0
    check_fits(
        sum(math.prod(s) for s in shapes.values()),
        torch.float32,
        _minus(host_free_bytes(), size),  # the file's bytes are in memory while it is parsed
        what=f"{spec.name} (float32 host copy)",
    )
    state, weights, fp8 = read_checkpoint(
        path,
        spec.sha256,
        shapes,
        optional=getattr(architecture.module_type, "optional_keys", ()),
    )
    module = architecture.module_type(config)
    module.load_state_dict(state, strict=True)
    return LoadedModel(spec, architecture, config, module.float().eval(), weights, fp8)


def _minus(free: int | None, used: int) -> int | None:
    return None if free is None else max(0, free - used)


def read_safetensors(
    path: Path, sha256: str | None, shapes: dict[str, tuple[int, ...]], *, optional: tuple[str, ...] = ()
) -> tuple[dict[str, torch.Tensor], WeightsFile]:
    """Float32 tensors named as ``shapes`` from a safetensors file, and the file as read (an FP8
    checkpoint's weights dequantized, ``read_checkpoint``)."""
    state, weights, _ = read_checkpoint(path, sha256, shapes, optional=optional)
    return state, weights


def read_checkpoint(
    path: Path, sha256: str | None, shapes: dict[str, tuple[int, ...]], *, optional: tuple[str, ...] = ()
) -> tuple[dict[str, torch.Tensor], WeightsFile, Fp8Checkpoint | None]:
    """Float32 tensors named as ``shapes`` from a safetensors file, the file as read, and its FP8
    weights where it is an FP8 checkpoint (DeepSeek-V3's format, runners/models/fp8.py: those weights
    are in the float32 tensors dequantized, code x scale per 128x128 block).

    The file is read once: the digest is computed over the same bytes that are parsed, so a file
    changed on disk between a check and a load cannot slip in.
    """
    if not path.is_file():
        raise WeightsFormatError(f"weights file not found: {path}")
    data = path.read_bytes()
    weights = WeightsFile(path, hashlib.sha256(data).hexdigest(), len(data))
    _check_safetensors_header(path, data[:9], weights)
    if sha256 and weights.sha256 != sha256.lower():
        raise ChecksumMismatchError(
            f"{path.name}: sha256 {weights.sha256} does not match the registered {sha256}", weights=weights
        )
    try:
        loaded = load_safetensors_bytes(data)
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise WeightsFormatError(f"{path.name}: unreadable safetensors: {exc}", weights=weights) from exc
    del data
    loaded, fp8, problems = split_checkpoint(loaded, shapes)
    if problems:
        raise WeightsFormatError(f"{path.name}: FP8 checkpoint: " + "; ".join(problems[:3]), weights=weights)
    stored = {name: tuple(t.shape) for name, t in loaded.items()}
    if fp8 is not None:
        stored.update({name: tuple(t.shape) for name, t in fp8.codes.items()})
        loaded.update(fp8.dequantized(torch.float32))
    _check_names_and_shapes(stored, shapes, optional, weights)
    return {name: loaded[name].float() for name in shapes}, weights, fp8


def _check_safetensors_header(path: Path, head: bytes, weights: WeightsFile) -> None:
    # A safetensors header first: its length's low bytes may read "PK" or 0x80 (a header of 19,280 bytes,
    # or of any length = 128 mod 256), which only a file without the JSON header after them is not.
    plausible = len(head) >= 9 and struct.unpack("<Q", head[:8])[0] <= _MAX_HEADER_BYTES and head[8:9] == b"{"
    if not plausible and (head[:2] == b"PK" or head[:1] == b"\x80"):
        raise WeightsFormatError(
            f"{path.name} is a pickle/zip checkpoint; only safetensors is accepted", weights=weights
        )
    if len(head) < 9:
        raise WeightsFormatError(f"{path.name} is too short to be safetensors", weights=weights)
    (header_len,) = struct.unpack("<Q", head[:8])
    if header_len > _MAX_HEADER_BYTES or head[8:9] != b"{":
        raise WeightsFormatError(f"{path.name} does not start with a safetensors header", weights=weights)


def _check_names_and_shapes(
    stored: dict[str, tuple[int, ...]],
    expected: dict[str, tuple[int, ...]],
    optional: tuple[str, ...],
    weights: WeightsFile,
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
        raise ConfigMismatchError("weights do not match the config: " + "; ".join(problems), weights=weights)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_config_file(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
