"""The safetensors check reads only the header and the file size; it never loads or unpickles."""

from __future__ import annotations

import io
import json
import struct

import pytest
import torch
from safetensors.torch import save

from apps.registry.weights import NotSafetensors, inspect_safetensors
from tests.factories import safetensors_bytes


def inspect(content: bytes):
    return inspect_safetensors(io.BytesIO(content), len(content))


@pytest.mark.parametrize(
    "dtype",
    [
        torch.float32,
        torch.float16,
        torch.bfloat16,
        torch.int8,
        torch.uint8,
        torch.int64,
        torch.bool,
        torch.float8_e4m3fn,
        torch.float8_e5m2,
        torch.float64,
        torch.int32,
        torch.int16,
    ],
)
def test_files_written_by_safetensors_pass_for_every_dtype(dtype):
    content = save(
        {"a": torch.zeros(3, 5, dtype=dtype), "b": torch.ones(2, dtype=dtype)}, metadata={"format": "pt"}
    )
    summary = inspect(content)
    assert summary.tensor_count == 2
    assert summary.parameter_count == 17
    assert summary.tensors["a"]["shape"] == [3, 5]


def test_a_scalar_and_an_empty_tensor_pass():
    summary = inspect(save({"scalar": torch.tensor(1.0), "empty": torch.zeros(0, 4)}))
    assert summary.parameter_count == 1


def test_the_summary_reports_the_factory_files_tensors():
    summary = inspect(safetensors_bytes(0))
    assert set(summary.tensors) == {"embed.weight", "head.bias"}
    assert summary.tensors["head.bias"]["dtype"] == "F16"


def test_the_header_length_is_checked_before_anything_is_read():
    class Exploding(io.BytesIO):
        def read(self, size=-1):
            if size > 1024:
                raise AssertionError("read a claimed huge header")
            return super().read(size)

    content = struct.pack("<Q", 2**40) + b"{}" * 10
    with pytest.raises(NotSafetensors, match="header length"):
        inspect_safetensors(Exploding(content), len(content))


def test_a_valid_header_with_a_missing_body_is_refused():
    content = safetensors_bytes(0)
    header_len = struct.unpack("<Q", content[:8])[0]
    with pytest.raises(NotSafetensors):
        inspect(content[: 8 + header_len])


def test_a_utf8_header_with_non_ascii_names_passes():
    content = save({"poids.énorme": torch.zeros(2)})
    assert "poids.énorme" in inspect(content).tensors


def test_a_header_that_is_json_but_not_utf8_is_refused():
    raw = json.dumps({"a": 1}).encode("utf-16")
    with pytest.raises(NotSafetensors, match="not JSON"):
        inspect(struct.pack("<Q", len(raw)) + raw)
