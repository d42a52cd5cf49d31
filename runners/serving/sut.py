"""Systems under test that LoadGen drives: one model placed on the device, served by a worker thread.

LoadGen calls ``issue(samples)`` from its own thread and must not be blocked; each SUT queues the
samples and a worker thread answers them:

- ``BatchingSUT`` (encoders, classifiers): dynamic batching. The worker takes whatever has queued,
  up to ``max_batch`` samples, runs one batched forward, copies the outputs to the host (which
  synchronizes the device) and completes every sample with its own output row.
- ``DecoderSUT`` (decoder LLMs): static batching over the KV cache. The worker takes up to
  ``max_batch`` queued prompts, prefills them together into one preallocated cache, reports each
  sample's first token to LoadGen (``FirstTokenComplete``: time to first token), then decodes the
  batch token by token over that cache and completes each sample with all its tokens and their
  count (LoadGen's token-latency mode: time per output token, tokens per second).

Every answered output is kept per sample index when ``record`` is set (LoadGen's accuracy mode), so
the harness compares what the device served with the float64 reference; a device that serves stale
or wrong outputs fails there, however fast it is.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import mlperf_loadgen as lg
import numpy as np
import torch

_STOP = object()


class _WorkerSUT:
    def __init__(self, *, max_batch: int, record: bool = False) -> None:
        self.max_batch = max(1, int(max_batch))
        self.record = record
        self.outputs: dict[int, torch.Tensor] = {}
        self.completed_samples = 0
        self.completed_tokens = 0
        self.batches = 0
        self.error: BaseException | None = None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=type(self).__name__)
        self._thread.start()

    # LoadGen's callbacks ------------------------------------------------------------------------
    def issue(self, samples: Sequence[Any]) -> None:
        for sample in samples:
            self._queue.put(sample)

    def flush(self) -> None:
        pass

    # ------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=60)

    def reset_counters(self) -> None:
        self.completed_samples = self.completed_tokens = self.batches = 0

    def _take(self) -> list[Any] | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)
                break
            batch.append(item)
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._serve(batch)
            except BaseException as exc:  # LoadGen waits for every sample: answer them empty, remember why
                self.error = self.error or exc
                empty = [lg.QuerySampleResponse(s.id, 0, 0) for s in batch]
                lg.QuerySamplesComplete(empty)
            self.batches += 1

    def _serve(self, batch: list[Any]) -> None:
        raise NotImplementedError


class BatchingSUT(_WorkerSUT):
    """Dynamic batching of single-forward models; ``inputs[i]`` are sample i's tensors on the device."""

    def __init__(
        self,
        forward: Callable[..., torch.Tensor],
        inputs: Sequence[tuple[torch.Tensor, ...]],
        *,
        max_batch: int,
        record: bool = False,
    ) -> None:
        self.forward = forward
        self.inputs = list(inputs)
        super().__init__(max_batch=max_batch, record=record)

    @torch.inference_mode()
    def _serve(self, batch: list[Any]) -> None:
        indices = [s.index for s in batch]
        args = tuple(
            torch.cat([self.inputs[i][k] for i in indices]) for k in range(len(self.inputs[indices[0]]))
        )
        out = self.forward(*args)
        host = out.detach().to("cpu", torch.float32).contiguous()  # synchronizes the device
        rows = [np.ascontiguousarray(host[j].numpy()) for j in range(len(batch))]
        if self.record:
            for j, index in enumerate(indices):
                self.outputs[index] = host[j].to(torch.float64)
        responses = [
            lg.QuerySampleResponse(sample.id, row.ctypes.data, row.nbytes)
            for sample, row in zip(batch, rows, strict=True)
        ]
        lg.QuerySamplesComplete(responses)
        self.completed_samples += len(batch)


class DecoderSUT(_WorkerSUT):
    """Static batching of greedy generation over a preallocated KV cache (see the module docstring)."""

    def __init__(
        self,
        module: Any,
        forward: Callable[..., torch.Tensor],
        prompts: torch.Tensor,
        *,
        output_tokens: int,
        max_batch: int,
        record: bool = False,
    ) -> None:
        self.module = module
        self.forward = forward
        self.prompts = prompts
        self.output_tokens = int(output_tokens)
        self._caches: dict[int, Any] = {}
        super().__init__(max_batch=max_batch, record=record)

    def _cache(self, batch: int) -> Any:
        cache = self._caches.get(batch)
        if cache is None:
            cache = self._caches[batch] = self.module.new_cache(
                batch, self.prompts.shape[1] + self.output_tokens
            )
        cache.length = 0
        return cache

    @torch.inference_mode()
    def _serve(self, batch: list[Any]) -> None:
        indices = [s.index for s in batch]
        prompt = self.prompts[torch.tensor(indices, device=self.prompts.device)]
        cache = self._cache(len(batch))
        token = self.forward(prompt, cache)[:, -1].argmax(-1, keepdim=True)
        first = token.detach().to("cpu", torch.int64)  # synchronizes: the first token exists now
        first_rows = [np.ascontiguousarray(first[j].numpy()) for j in range(len(batch))]
        lg.FirstTokenComplete(
            [
                lg.QuerySampleResponse(s.id, row.ctypes.data, row.nbytes, 1)
                for s, row in zip(batch, first_rows, strict=True)
            ]
        )
        generated = [token]
        for _ in range(self.output_tokens - 1):
            token = self.forward(token, cache)[:, -1].argmax(-1, keepdim=True)
            generated.append(token)
        tokens = torch.cat(generated, dim=1).detach().to("cpu", torch.int64).contiguous()
        rows = [np.ascontiguousarray(tokens[j].numpy()) for j in range(len(batch))]
        if self.record:
            for j, index in enumerate(indices):
                self.outputs[index] = tokens[j].clone()
        lg.QuerySamplesComplete(
            [
                lg.QuerySampleResponse(s.id, row.ctypes.data, row.nbytes, self.output_tokens)
                for s, row in zip(batch, rows, strict=True)
            ]
        )
        self.completed_samples += len(batch)
        self.completed_tokens += len(batch) * self.output_tokens
