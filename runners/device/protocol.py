"""The wire format between the judge (parent) and the device process (child): typed frames, no pickle.

One frame is

    8 bytes   big-endian length H of the header
    H bytes   the header: a UTF-8 JSON object (no NaN), with a ``tensors`` list of
              ``{"name": str, "dtype": str, "shape": [int, ...]}``
    ...       each tensor's raw little-endian bytes, C-contiguous, in the order of ``tensors``

Nothing else crosses: no Python object is ever rebuilt from the peer's bytes but JSON values and
tensors of the dtypes in ``DTYPES`` whose byte count the reader computes itself from the shape.
Every frame read is checked (sizes, dtypes, shapes, names), and any violation raises
``ProtocolError``: the parent treats a child that breaks the format as a failed device call.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
from io import FileIO
from typing import Any, Protocol

import torch

# The only dtypes a tensor may have on the wire (the catalog's dtypes, their float64/int64
# widenings, and the index and mask types kernels take).
DTYPES: dict[str, torch.dtype] = {
    name: getattr(torch, name)
    for name in (
        "float64",
        "float32",
        "float16",
        "bfloat16",
        "float8_e4m3fn",
        "float8_e5m2",
        "int64",
        "int32",
        "int16",
        "int8",
        "uint8",
        "bool",
    )
    if isinstance(getattr(torch, name, None), torch.dtype)
}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}

MAX_HEADER_BYTES = 16 * 2**20
# One frame's tensors together: more than any catalog case or benchmark output moves.
MAX_PAYLOAD_BYTES = 16 * 2**30
# Tensors of one frame. A reply that holds more (a model suite's outputs and TEST04 probes over many
# models and dtypes) goes in several frames: ``write_reply`` sends the leading ``MAX_TENSORS`` at a time
# as ``tensors`` events and the reader merges them (``merge_tensors``), at most ``MAX_REPLY_TENSORS``.
MAX_TENSORS = 256
MAX_REPLY_TENSORS = 64 * MAX_TENSORS
MAX_DIMS = 16
_LENGTH = struct.Struct(">Q")
_CHUNK = 64 * 2**20


class ProtocolError(RuntimeError):
    """A frame that breaks the format, or a peer that closed the pipe mid-frame."""


class PeerClosed(ProtocolError):
    """The peer closed the pipe between frames (the child exited or was killed)."""


class FrameSink(Protocol):
    """Where frames are written: an unbuffered binary stream (a pipe's FileIO, a BytesIO in tests)."""

    def write(self, data: memoryview, /) -> int | None: ...

    def flush(self) -> None: ...


class FrameSource(Protocol):
    """Where frames are read from: a binary stream with ``readinto`` (FileIO, BytesIO)."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's raw bytes, CPU and C-contiguous (no copy when it already is)."""
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    if flat.numel() == 0:
        return memoryview(b"")
    if sys.byteorder != "little":  # pragma: no cover - no big-endian accelerator host exists
        raise ProtocolError("the wire format is little-endian")
    return flat.view(torch.uint8).numpy().data.cast("B")


def _write_all(stream: FrameSink, data: memoryview | bytes) -> None:
    view = memoryview(data).cast("B")
    while view.nbytes:
        written = stream.write(view[:_CHUNK])
        if written is None or written <= 0:
            raise ProtocolError("the pipe refused bytes")
        view = view[written:]


def write_frame(
    stream: FrameSink, header: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None
) -> None:
    """Writes one frame; ``header`` must not hold a ``tensors`` key of its own."""
    tensors = tensors or {}
    if "tensors" in header:
        raise ValueError("the header's 'tensors' key is the protocol's")
    described, payloads = [], []
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise ProtocolError(f"{name}: {type(tensor).__name__} is not a tensor")
        if tensor.dtype not in DTYPE_NAMES:
            raise ProtocolError(f"{name}: dtype {tensor.dtype} cannot cross the process boundary")
        described.append({"name": name, "dtype": DTYPE_NAMES[tensor.dtype], "shape": list(tensor.shape)})
        payloads.append(tensor_bytes(tensor))
    text = json.dumps({**header, "tensors": described}, allow_nan=False, separators=(",", ":")).encode()
    if len(text) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(text)} bytes exceeds {MAX_HEADER_BYTES}")
    _write_all(stream, _LENGTH.pack(len(text)))
    _write_all(stream, text)
    for payload in payloads:
        _write_all(stream, payload)
    stream.flush()


def write_reply(
    stream: FrameSink, header: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None
) -> None:
    """Writes one reply, however many tensors it holds: all but the last ``MAX_TENSORS`` of them go
    ahead in ``{"event": "tensors"}`` frames, which the reader merges into the reply's."""
    items = list((tensors or {}).items())
    if len(items) > MAX_REPLY_TENSORS:
        raise ProtocolError(f"a reply of {len(items)} tensors exceeds {MAX_REPLY_TENSORS}")
    while len(items) > MAX_TENSORS:
        write_frame(stream, {"event": "tensors"}, dict(items[:MAX_TENSORS]))
        items = items[MAX_TENSORS:]
    write_frame(stream, header, dict(items))


def merge_tensors(into: dict[str, torch.Tensor], more: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``into`` with the tensors of one more frame of the same reply (``write_reply``)."""
    if len(into) + len(more) > MAX_REPLY_TENSORS:
        raise ProtocolError(f"a reply of more than {MAX_REPLY_TENSORS} tensors")
    if into.keys() & more.keys():
        raise ProtocolError("a reply named one tensor twice")
    into.update(more)
    return into


def _read_exact(stream: FrameSource, size: int, *, start: bool = False) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = stream.readinto(view[got : got + _CHUNK])
        if not n:
            if start and got == 0:
                raise PeerClosed("the peer closed the pipe")
            raise ProtocolError(f"the peer closed the pipe after {got} of {size} bytes")
        got += n
    return buffer


def _shape(value: Any, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > MAX_DIMS:
        raise ProtocolError(f"{name}: shape must be a list of at most {MAX_DIMS} sizes")
    if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in value):
        raise ProtocolError(f"{name}: shape sizes must be non-negative integers")
    return tuple(value)


def read_frame(stream: FrameSource) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Reads one frame: its header (without ``tensors``) and its tensors by name (CPU, owned)."""
    (length,) = _LENGTH.unpack(bytes(_read_exact(stream, _LENGTH.size, start=True)))
    if length > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {length} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(_read_exact(stream, length)).decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    described = header.pop("tensors", [])
    if not isinstance(described, list) or len(described) > MAX_TENSORS:
        raise ProtocolError(f"'tensors' must be a list of at most {MAX_TENSORS} entries")
    specs: list[tuple[str, torch.dtype, tuple[int, ...], int]] = []
    total = 0
    for entry in described:
        if not isinstance(entry, dict) or set(entry) != {"name", "dtype", "shape"}:
            raise ProtocolError("a tensor entry is {name, dtype, shape}")
        name, dtype_name = entry["name"], entry["dtype"]
        if not isinstance(name, str) or not name or len(name) > 200 or any(name == s[0] for s in specs):
            raise ProtocolError("tensor names must be distinct non-empty strings")
        if dtype_name not in DTYPES:
            raise ProtocolError(f"{name}: dtype {dtype_name!r} is not allowed on the wire")
        dtype = DTYPES[dtype_name]
        shape = _shape(entry["shape"], name)
        nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        total += nbytes
        if total > MAX_PAYLOAD_BYTES:
            raise ProtocolError(f"frame payload exceeds {MAX_PAYLOAD_BYTES} bytes")
        specs.append((name, dtype, shape, nbytes))
    tensors: dict[str, torch.Tensor] = {}
    for name, dtype, shape, nbytes in specs:
        if nbytes == 0:
            tensors[name] = torch.empty(shape, dtype=dtype)
            continue
        raw = _read_exact(stream, nbytes)
        tensors[name] = torch.frombuffer(raw, dtype=torch.uint8).view(dtype).reshape(shape)
    return header, tensors


def _no_constant(name: str) -> Any:
    raise ProtocolError(f"{name} is not allowed in a header")


def pipe_streams(read_fd: int, write_fd: int) -> tuple[FileIO, FileIO]:
    """Unbuffered binary streams over two file descriptors (the child's protocol channel)."""
    return os.fdopen(read_fd, "rb", buffering=0), os.fdopen(write_fd, "wb", buffering=0)
