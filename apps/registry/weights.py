"""Checks that an uploaded weights file is a well-formed safetensors file, without loading it.

The header is parsed as JSON and every tensor's dtype, shape and byte range is checked
against the file size. Nothing in the file is ever executed or unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from django.core.files.uploadhandler import TemporaryFileUploadHandler

from certification.json_limits import JSONLimitExceeded, check_json_depth

if TYPE_CHECKING:
    from apps.registry.models import ModelArtifact

# Bytes per element of each dtype safetensors defines.
DTYPE_SIZES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the limit safetensors itself enforces
# header -> tensor -> shape/offsets list: nothing valid nests deeper. Checked on the raw text first,
# because Python's json recurses per level and dies with RecursionError (not a ValueError).
MAX_HEADER_DEPTH = 3
# Shapes, offsets and sizes are u64 in safetensors: 20 digits. int() of a 5,000-digit number
# would raise ValueError past Python's 4,300-digit limit, and costs quadratic time below it.
MAX_INT_DIGITS = 20


class NotSafetensors(ValueError):
    """The file is not a well-formed safetensors file; the message says why."""


@dataclass(frozen=True)
class SafetensorsSummary:
    tensor_count: int
    parameter_count: int
    tensors: dict[str, dict]  # name -> {"dtype", "shape"}


def _is_count(value) -> bool:
    # JSON true/false parse as bool, a subclass of int; safetensors itself refuses them.
    return type(value) is int and value >= 0


def _header_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONLimitExceeded(f"an integer longer than {MAX_INT_DIGITS} digits")
    return int(text)


def _no_constant(name: str):
    raise JSONLimitExceeded(f"{name} is not a JSON number")


def inspect_safetensors(stream: BinaryIO, size: int) -> SafetensorsSummary:
    """Validate the header of a safetensors file of `size` bytes; raise NotSafetensors if it is not one."""
    stream.seek(0)
    prefix = stream.read(8)
    if len(prefix) < 8:
        raise NotSafetensors("the file is shorter than a safetensors header")
    (header_len,) = struct.unpack("<Q", prefix)
    if header_len == 0 or header_len > MAX_HEADER_BYTES or 8 + header_len > size:
        raise NotSafetensors("the header length is not plausible for this file (is it a pickle or a zip?)")
    raw = stream.read(header_len)
    try:
        text = raw.decode("utf-8")
        check_json_depth(text, max_depth=MAX_HEADER_DEPTH)
        header = json.loads(text, parse_int=_header_int, parse_constant=_no_constant)
    except JSONLimitExceeded as exc:
        raise NotSafetensors(f"the header is not safetensors JSON: {exc}") from None
    except ValueError:  # UnicodeDecodeError, json.JSONDecodeError
        raise NotSafetensors("the header is not JSON") from None
    if not isinstance(header, dict):
        raise NotSafetensors("the header is not a JSON object")

    data_len = size - 8 - header_len
    tensors: dict[str, dict] = {}
    ranges: list[tuple[int, int]] = []
    parameters = 0
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise NotSafetensors("__metadata__ must map strings to strings")
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise NotSafetensors(f"tensor {name!r} lacks dtype, shape or data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPE_SIZES:
            raise NotSafetensors(f"tensor {name!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise NotSafetensors(f"tensor {name!r} has an invalid shape")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_count(o) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_len
        ):
            raise NotSafetensors(f"tensor {name!r} points outside the file")
        elements = math.prod(shape)
        if offsets[1] - offsets[0] != elements * DTYPE_SIZES[dtype]:
            raise NotSafetensors(f"tensor {name!r}: byte range does not match dtype and shape")
        ranges.append((offsets[0], offsets[1]))
        parameters += elements
        tensors[name] = {"dtype": dtype, "shape": shape}
    if not tensors:
        raise NotSafetensors("the file holds no tensors")
    # Tensors must tile the data section exactly: no overlaps, no hidden bytes.
    position = 0
    for begin, end in sorted(ranges):
        if begin != position:
            raise NotSafetensors("tensor byte ranges overlap or leave gaps")
        position = end
    if position != data_len:
        raise NotSafetensors("the data section does not match the tensors the header declares")
    return SafetensorsSummary(tensor_count=len(tensors), parameter_count=parameters, tensors=tensors)


class HashingUploadHandler(TemporaryFileUploadHandler):
    """Streams an upload to a temporary file, computing its sha256 and size on the way."""

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self._sha256 = hashlib.sha256()

    def receive_data_chunk(self, raw_data, start):
        self._sha256.update(raw_data)
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size):
        uploaded = super().file_complete(file_size)
        uploaded.sha256 = self._sha256.hexdigest()
        return uploaded


def sha256_of(uploaded) -> str:
    """The digest the upload handler computed, or one computed now by streaming the stored chunks."""
    digest = getattr(uploaded, "sha256", None)
    if digest:
        return digest
    sha = hashlib.sha256()
    for chunk in uploaded.chunks():
        sha.update(chunk)
    return sha.hexdigest()


# DeepSeek-V3's FP8 checkpoint format (runners/models/fp8.py; deepseek-ai/DeepSeek-V3 README_WEIGHTS.md):
# an E4M3 weight ``<name>`` stored beside a float32 ``<name>_scale_inv``, one scale per 128x128 block.
FP8_WEIGHT_DTYPE = "F8_E4M3"
FP8_SCALE_DTYPE = "F32"
FP8_SCALE_SUFFIX = "_scale_inv"


def fp8_weight_names(tensors: dict[str, dict[str, Any]]) -> list[str]:
    """The FP8 weights of a safetensors header's tensors (name -> {"dtype", "shape"}): every F8_E4M3
    tensor with its F32 ``<name>_scale_inv`` beside it, read from the header as data."""
    return sorted(
        name
        for name, entry in tensors.items()
        if entry.get("dtype") == FP8_WEIGHT_DTYPE
        and (tensors.get(name + FP8_SCALE_SUFFIX) or {}).get("dtype") == FP8_SCALE_DTYPE
    )


def stored_fp8_weight_names(artifact: ModelArtifact) -> list[str]:
    """The FP8 weights of a registered model artifact, from the header of its stored file (parsed and
    checked by ``inspect_safetensors``, never loaded): what decides whether a model run is an FP8 one."""
    with artifact.weights.open("rb") as stream:
        return fp8_weight_names(inspect_safetensors(cast(BinaryIO, stream), artifact.weights_size).tensors)
