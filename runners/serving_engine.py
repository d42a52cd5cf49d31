"""The model forward of the serving suite, apart from LoadGen and its systems under test.

A SUT (runners/serving/sut.py) schedules: it takes LoadGen's queries, batches them (dynamic,
static or continuous batching), reports first tokens and completions to LoadGen and keeps what it
served for the accuracy mode and TEST01. What it asks of the device goes through an *engine*, one
call per batched forward:

- ``forward_rows(indices)``: one batched forward of single-forward models; the rows on the host
  (float32);
- ``static_prefill(indices)`` then ``static_decode()``: static batching of greedy generation over
  one preallocated KV cache (the first tokens, then every generated token of the batch);
- ``slot_reset(max_batch)``, ``slot_prefill(indices, rows)``, ``slot_decode(last, free)``:
  continuous batching over a cache of independent rows (runners/models/llama.py ``SlotCache``).

``ServingEngine`` runs them in the calling process on the backend's device. In the device-process
mode (runners/device) the same engine runs in the device process (``runners.device.host``, ops
``serving_open`` and ``serving_call``) and the judge holds a ``RemoteEngine`` that sends each call
as a frame of tensors: LoadGen, the SUTs, the float64 reference, the accuracy score and TEST01 stay
in the judge, and only the forward runs where the vendor's stack is loaded. Both engines return
the same host tensors, so the SUTs and every verdict are the same code in both modes.

(This module is outside runners/serving so that the device process imports no LoadGen.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch

from runners.errors import Classified

# What a RemoteEngine may ask of the device process's engine (runners/device/host.py checks it).
ENGINE_METHODS = frozenset(
    {"forward_rows", "static_prefill", "static_decode", "slot_reset", "slot_prefill", "slot_decode"}
)


class DeviceServingError(RuntimeError):
    """The device process could not open or run a served model; ``outcome`` is how the case records it."""

    def __init__(self, message: str, outcome: Classified) -> None:
        super().__init__(message)
        self.outcome = outcome


def _indices(values: Sequence[int], size: int) -> list[int]:
    out = [int(v) for v in values]
    if not out or any(v < 0 or v >= size for v in out):
        raise ValueError(f"sample indices {out[:8]} outside 0..{size - 1}")
    return out


class ServingEngine:
    """One model placed on the device, in this process: its prepared forward and the workload's inputs.

    ``inputs`` are the workload's whole batch (``Workload.make_batch(range(size), ...)``) already on
    the device; sample ``i`` is row ``i`` of each."""

    def __init__(
        self,
        module: Any,
        forward: Callable[..., torch.Tensor],
        inputs: tuple[torch.Tensor, ...],
        *,
        decoder: bool,
        output_tokens: int,
    ) -> None:
        self.module, self.forward = module, forward
        self.decoder = decoder
        self.output_tokens = int(output_tokens)
        self.size = int(inputs[0].shape[0])
        self.device = inputs[0].device
        if decoder:
            self.prompts = inputs[0]
        else:
            self.rows = [tuple(t[i : i + 1] for t in inputs) for i in range(self.size)]
        self._static_cache: dict[int, Any] = {}
        self._static: tuple[Any, torch.Tensor, list[torch.Tensor]] | None = None
        self._slots: Any = None
        self._slot_rows = 0

    # single-forward models ------------------------------------------------------------------------
    @torch.inference_mode()
    def forward_rows(self, indices: Sequence[int]) -> torch.Tensor:
        chosen = _indices(indices, self.size)
        args = tuple(torch.cat([self.rows[i][k] for i in chosen]) for k in range(len(self.rows[chosen[0]])))
        out = self.forward(*args)
        return out.detach().to("cpu", torch.float32).contiguous()  # synchronizes the device

    # static batching -------------------------------------------------------------------------------
    @torch.inference_mode()
    def static_prefill(self, indices: Sequence[int]) -> torch.Tensor:
        chosen = _indices(indices, self.size)
        cache = self._static_cache.get(len(chosen))
        if cache is None:
            cache = self._static_cache[len(chosen)] = self.module.new_cache(
                len(chosen), self.prompts.shape[1] + self.output_tokens
            )
        cache.length = 0
        prompt = self.prompts[torch.tensor(chosen, device=self.device)]
        token = self.forward(prompt, cache)[:, -1].argmax(-1, keepdim=True)
        self._static = (cache, token, [token])
        return token.detach().to("cpu", torch.int64).reshape(-1)  # synchronizes: the first tokens exist

    @torch.inference_mode()
    def static_decode(self) -> torch.Tensor:
        if self._static is None:
            raise RuntimeError("static_decode without a static_prefill")
        cache, token, generated = self._static
        self._static = None
        for _ in range(self.output_tokens - 1):
            token = self.forward(token, cache)[:, -1].argmax(-1, keepdim=True)
            generated.append(token)
        return torch.cat(generated, dim=1).detach().to("cpu", torch.int64).contiguous()

    # continuous batching ---------------------------------------------------------------------------
    def slot_reset(self, max_batch: int) -> torch.Tensor:
        self._slot_rows = max(1, int(max_batch))
        self._slots = self.module.new_slot_cache(self._slot_rows, self.prompts.shape[1] + self.output_tokens)
        return torch.zeros(0, dtype=torch.int64)

    @torch.inference_mode()
    def slot_prefill(self, indices: Sequence[int], rows: Sequence[int]) -> torch.Tensor:
        if self._slots is None:
            raise RuntimeError("slot_prefill without a slot_reset")
        chosen = _indices(indices, self.size)
        rows = [int(r) for r in rows]
        if len(rows) != len(chosen) or any(not 0 <= r < self._slot_rows for r in rows):
            raise ValueError("one free cache row per admitted request")
        prompt = self.prompts[torch.tensor(chosen, device=self.device)]
        prefill = self.module.new_cache(len(chosen), prompt.shape[1])
        first = self.forward(prompt, prefill)[:, -1].argmax(-1).detach().to("cpu", torch.int64)
        self._slots.admit(rows, prefill)
        return first

    @torch.inference_mode()
    def slot_decode(self, last: torch.Tensor, free: Sequence[int]) -> torch.Tensor:
        """One decode step of every row (``last`` [max_batch] the rows' last tokens); rows in ``free``
        compute too, and are then put back to position 0 so they never run past the cache."""
        if self._slots is None or tuple(last.shape) != (self._slot_rows,):
            raise ValueError("slot_decode takes one last token per cache row")
        logits = self.forward(last.to(self.device, torch.long).view(-1, 1), self._slots)
        chosen = logits[:, -1].argmax(-1).detach().to("cpu", torch.int64)
        rows = [int(r) for r in free if 0 <= int(r) < self._slot_rows]
        if rows:
            self._slots.positions[torch.tensor(rows, device=self._slots.positions.device)] = 0
        return chosen

    def close(self) -> None:
        self._slots = self._static = None
        self._static_cache.clear()


class RemoteEngine:
    """The judge's handle on a ``ServingEngine`` that lives in the device process.

    Each call is one request frame and one reply (runners/device/protocol.py): indices and rows as
    JSON, the decode step's last tokens as a tensor, the result as a tensor the judge reads itself.
    A SUT's worker thread is the only caller while a LoadGen test runs; the lock keeps the pipe to
    one request at a time should any other thread ask too."""

    def __init__(self, client: Any, handle: int, *, decoder: bool, output_tokens: int, size: int) -> None:
        self.client, self.handle = client, handle
        self.decoder, self.output_tokens, self.size = decoder, int(output_tokens), int(size)
        self._lock = threading.Lock()
        self.calls = 0
        self.rows = 0
        self._static_batch = 0

    def _call(
        self, method: str, params: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None
    ) -> Any:
        with self._lock:
            self.calls += 1
            return self.client.serving_call(self.handle, method, params, tensors)

    def forward_rows(self, indices: Sequence[int]) -> torch.Tensor:
        out = self._call("forward_rows", {"indices": [int(i) for i in indices]})
        if out.dim() < 1 or out.shape[0] != len(indices):
            raise DeviceServingError(
                f"the device returned {tuple(out.shape)} for {len(indices)} samples",
                _product_failure("wrong output shape"),
            )
        return out.to(torch.float32)

    def static_prefill(self, indices: Sequence[int]) -> torch.Tensor:
        self._static_batch = len(indices)
        return self._tokens(
            self._call("static_prefill", {"indices": [int(i) for i in indices]}), (len(indices),)
        )

    def static_decode(self) -> torch.Tensor:
        return self._tokens(self._call("static_decode", {}), (self._static_batch, self.output_tokens))

    def slot_reset(self, max_batch: int) -> torch.Tensor:
        self.rows = max(1, int(max_batch))
        return self._call("slot_reset", {"max_batch": self.rows})

    def slot_prefill(self, indices: Sequence[int], rows: Sequence[int]) -> torch.Tensor:
        params = {"indices": [int(i) for i in indices], "rows": [int(r) for r in rows]}
        return self._tokens(self._call("slot_prefill", params), (len(indices),))

    def slot_decode(self, last: torch.Tensor, free: Sequence[int]) -> torch.Tensor:
        out = self._call("slot_decode", {"free": [int(r) for r in free]}, {"last": last.to(torch.int64)})
        return self._tokens(out, (self.rows,))

    @staticmethod
    def _tokens(out: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Token ids as the SUT uses them: int64 of the expected shape (anything else is the device's failure)."""
        if out.dtype not in (torch.int64, torch.int32) or tuple(out.shape) != shape:
            raise DeviceServingError(
                f"the device returned {out.dtype} {tuple(out.shape)} where token ids {shape} were due",
                _product_failure("not token ids"),
            )
        return out.to(torch.int64)

    def close(self) -> None:
        self.client.serving_close(self.handle)


def _product_failure(reason: str) -> Classified:
    from runners.errors import PRODUCT_FAILURE, error

    return error(PRODUCT_FAILURE, reason)


class RemoteMeter:
    """The device's energy meter (runners/energy.py) run in the device process around each timed run.

    Same interface as ``EnergyMeter`` (start, stop, result). The meter's driver (NVML, amd-smi,
    npu-smi, RAPL) is read where the vendor's stack is loaded; the judge keeps only the typed raw
    figures that come back (joules, window, sample count, meter name) and computes the per-query and
    per-token figures from its own counts of what LoadGen completed."""

    def __init__(self, client: Any, handle: int, rate_hz: float) -> None:
        self.client, self.handle, self.rate_hz = client, handle, float(rate_hz)
        self._record: dict[str, Any] = {}

    def start(self) -> None:
        self._record = {}
        self.client.serving_meter(self.handle, "start", {})

    def stop(self) -> None:
        self._record = self.client.serving_meter(self.handle, "stop", {})

    def result(self, *, samples: int, tokens: int = 0) -> dict[str, Any]:
        from runners.energy import energy_record

        return energy_record(self._record, samples=samples, tokens=tokens, read_in="device process")
