"""Commit, then reveal: digests of every judged output in the document, the raw outputs kept aside.

The runner commits to a digest of each output it judged (every conformance case that ran to a
verdict, every output a performance, model or serving run sampled for TEST01, the outputs a
serving accuracy run answered) in the signed result
document's ``commitment`` section, and keeps the raw outputs in a local store on the runner host
(safetensors files, one folder per job attempt). Once the platform has stored the commitment it
draws a sample the runner could not predict and asks for those outputs (``runners.reveal_many``,
with the other reveals of its campaign once all its jobs' evidence is in); the
runner answers with the raw tensors, which the platform hashes again and judges itself
(runners/revealed.py holds that judging code, so server and runner agree on what a verdict is).

The digest covers a canonical byte encoding: the scheme, the dtype name, the shape, then the
contiguous elements as little-endian bytes, so the same tensor has the same digest on any host.
Nothing here is ever unpickled: the store and the reveal travel as safetensors bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch

SCHEME = "sha256-tensor-v1"
# Integer views of each element size: their numpy arrays give the raw bits in a known byte order.
_BITS_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
ATTEMPT_PATTERN = re.compile(r"^[0-9a-f]{32}$")
DEFAULT_OUTPUT_DIR = Path.home() / ".cache" / "accelerator-certification" / "outputs"
# Raw outputs older than this are pruned from the store when a new job opens it.
DEFAULT_TTL_S = 2 * 24 * 3600
# The most a reveal answer may carry (safetensors bytes, before base64).
REVEAL_MAX_BYTES = 48 * 1024 * 1024


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def canonical_bytes(tensor: torch.Tensor) -> bytes:
    """The tensor's elements in row-major order as little-endian bytes (CPU, contiguous)."""
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    if flat.is_complex():
        raise ValueError("complex outputs are not committed")
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    bits = flat.view(_BITS_VIEW[flat.element_size()]).numpy()
    return bits.astype(bits.dtype.newbyteorder("<"), copy=False).tobytes()


def output_digest(tensor: torch.Tensor) -> str:
    """sha256 over the scheme, dtype, shape and canonical bytes of one output."""
    digest = hashlib.sha256()
    header = f"{SCHEME}\n{dtype_name(tensor.dtype)}\n{json.dumps(list(tensor.shape))}\n"
    digest.update(header.encode())
    digest.update(canonical_bytes(tensor))
    return digest.hexdigest()


def named_dtype(name: Any) -> torch.dtype | None:
    """The torch dtype a commitment names (`dtype_name`'s inverse), or None when the name is no dtype
    (an unknown name, or another attribute of torch such as "nn")."""
    dtype = getattr(torch, name, None) if isinstance(name, str) and not name.startswith("_") else None
    return dtype if isinstance(dtype, torch.dtype) else None


# Each dtype's element size by the name a commitment gives it, filled as names are met (names of torch's
# dtypes only, so no input can grow it past them): the reveal's draw sizes every committed output (723 in a Baseline
# campaign) and getattr on torch was most of that.
_ITEMSIZE: dict[str, int] = {}


def output_bytes(entry: dict[str, Any]) -> int:
    """The raw size of a committed output, from its dtype and shape (what a reveal of it costs); 0 for a
    dtype that names none (ingestion refuses such a commitment before anything is priced)."""
    name = entry.get("dtype")
    if not isinstance(name, str):
        return 0
    size = _ITEMSIZE.get(name)
    if size is None:
        dtype = named_dtype(name)
        if dtype is None:
            return 0
        size = _ITEMSIZE[name] = dtype.itemsize  # a name of torch's that is a dtype: a bounded set
    count = 1
    for dim in entry.get("shape") or []:
        count *= int(dim)
    return count * size


class OutputStore:
    """The raw outputs of one job attempt on the runner host: ``root/<attempt tag>/<key>.safetensors``."""

    def __init__(self, root: Path | str, attempt: str) -> None:
        if not ATTEMPT_PATTERN.match(str(attempt)):
            raise ValueError("an attempt tag is 32 lowercase hexadecimal digits")
        self.root = Path(root)
        self.directory = self.root / attempt

    @staticmethod
    def key(output_id: str) -> str:
        return hashlib.sha256(output_id.encode()).hexdigest()[:40]

    def put(self, output_id: str, tensor: torch.Tensor) -> None:
        from safetensors.torch import save_file

        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.key(output_id)}.safetensors"
        temporary = path.with_suffix(".partial")
        save_file(
            {"output": tensor.detach().to("cpu").contiguous()}, str(temporary), metadata={"id": output_id}
        )
        os.replace(temporary, path)

    def get(self, output_id: str) -> torch.Tensor | None:
        from safetensors import safe_open

        path = self.directory / f"{self.key(output_id)}.safetensors"
        if not path.is_file():
            return None
        with safe_open(str(path), framework="pt") as handle:
            if (handle.metadata() or {}).get("id") != output_id:
                return None
            return handle.get_tensor("output")

    @staticmethod
    def prune(root: Path | str, *, max_age_s: float = DEFAULT_TTL_S, now: float | None = None) -> int:
        """Remove attempt folders untouched for ``max_age_s``; returns how many went."""
        root, now = Path(root), now if now is not None else time.time()
        removed = 0
        if not root.is_dir():
            return 0
        for folder in root.iterdir():
            if (
                folder.is_dir()
                and ATTEMPT_PATTERN.match(folder.name)
                and now - folder.stat().st_mtime > max_age_s
            ):
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed


def output_root() -> Path:
    """Where this runner host keeps raw outputs until the platform's reveal (RUNNER_OUTPUT_DIR)."""
    return Path(os.environ.get("RUNNER_OUTPUT_DIR") or DEFAULT_OUTPUT_DIR)


class OutputCommitment:
    """Collects the digest of every judged output of one run, keeping the raw output in ``store``."""

    def __init__(self, store: OutputStore | None = None) -> None:
        self.store = store
        self.entries: dict[str, dict[str, Any]] = {}

    def record(self, output_id: str, tensor: torch.Tensor) -> str:
        tensor = tensor.detach().to("cpu")
        if output_id in self.entries:
            raise ValueError(f"output {output_id!r} committed twice")
        digest = output_digest(tensor)
        self.entries[output_id] = {
            "id": output_id,
            "digest": digest,
            "dtype": dtype_name(tensor.dtype),
            "shape": list(tensor.shape),
        }
        if self.store is not None:
            self.store.put(output_id, tensor)
        return digest

    def section(self) -> dict[str, Any]:
        return {"scheme": SCHEME, "outputs": [self.entries[key] for key in sorted(self.entries)]}


# Output ids: what a reveal request names, one per suite's kind of output.
def conformance_output_id(kernel: str, dtype: str, case: str) -> str:
    return f"conformance/{kernel}/{dtype}/{case}"


def performance_output_id(benchmark: str, dtype: str, sample: str) -> str:
    return f"performance/{benchmark}/{dtype}/{sample}"


def model_output_id(model: str, dtype: str, sample: str) -> str:
    return f"model/{model}/{dtype}/{sample}"


def serving_output_id(model: str, dtype: str, sample: str) -> str:
    """``sample``: "accuracy" (every sample LoadGen's accuracy mode served, stacked in sample order) or
    "<run tag>@<completion position>" (an output kept during a timed run, runners/served_outputs.py)."""
    return f"serving/{model}/{dtype}/{sample}"


class RevealError(ValueError):
    """A reveal request or answer that cannot be honoured or read; the message says why."""


def reveal_pack(
    store: OutputStore, output_ids: list[str], *, max_bytes: int = REVEAL_MAX_BYTES
) -> dict[str, Any]:
    """The runner's answer body: the requested raw outputs as one safetensors blob (base64), and the
    ids it does not hold. Raises RevealError when the blob would pass ``max_bytes``."""
    import pybase64  # where a reveal is packed or read: never in the device process
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    for output_id in output_ids:
        tensor = store.get(output_id)
        if tensor is None:
            missing.append(output_id)
        else:
            tensors[output_id] = tensor.contiguous()
    blob = save(tensors) if tensors else b""
    if len(blob) > max_bytes:
        raise RevealError(f"the requested outputs take {len(blob)} bytes, more than {max_bytes}")
    return {
        "outputs_b64": pybase64.b64encode(blob).decode(),
        "outputs_sha256": hashlib.sha256(blob).hexdigest(),
        "missing": missing,
    }


def reveal_unpack(body: dict[str, Any], *, max_bytes: int = REVEAL_MAX_BYTES) -> dict[str, torch.Tensor]:
    """The tensors of a reveal answer, after checking its size and digest (safetensors only, no pickle)."""
    import pybase64
    from safetensors.torch import load

    encoded = body.get("outputs_b64")
    if not isinstance(encoded, str):
        raise RevealError("the answer carries no outputs")
    if len(encoded) > (max_bytes // 3 + 1) * 4:
        raise RevealError("the answer is larger than a reveal may be")
    try:
        blob = pybase64.b64decode(encoded, validate=True)  # the standard alphabet only, whole quanta
    except ValueError:  # binascii.Error, as the standard library's
        raise RevealError("the outputs are not base64") from None
    if hashlib.sha256(blob).hexdigest() != body.get("outputs_sha256"):
        raise RevealError("the outputs do not match their digest")
    if not blob:
        return {}
    try:
        return load(blob)
    except Exception as exc:  # safetensors raises its own error types for malformed headers
        raise RevealError(f"the outputs are not a safetensors file: {type(exc).__name__}") from None


class CollectingCommitment(OutputCommitment):
    """The device process's side of a commitment: it keeps every output the suite would commit, in
    order, so that they go back to the judge, which digests and stores them itself
    (runners/device: the judge's ``OutputCommitment`` is the one the document carries)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.collected: list[tuple[str, torch.Tensor]] = []

    def record(self, output_id: str, tensor: torch.Tensor) -> str:
        digest = super().record(output_id, tensor)
        self.collected.append((output_id, tensor.detach().to("cpu")))
        return digest
