"""Systems under test that LoadGen drives: one model placed on the device, served by a worker thread.

LoadGen calls ``issue(samples)`` from its own thread and must not be blocked; each SUT queues the
samples and a worker thread answers them. The SUTs schedule; every forward goes through an engine
(runners/serving_engine.py): in this process on the backend's device, or in the device process
(runners/device) while the SUT, LoadGen and every verdict stay in the judge:

- ``BatchingSUT`` (encoders, classifiers): dynamic batching. The worker takes whatever has queued,
  up to ``max_batch`` samples, runs one batched forward, copies the outputs to the host (which
  synchronizes the device) and completes every sample with its own output row.
- ``DecoderSUT`` (decoder LLMs), ``batching="static"``: static batching over the KV cache. The worker takes up to
  ``max_batch`` queued prompts, prefills them together into one preallocated cache, reports each
  sample's first token to LoadGen (``FirstTokenComplete``: time to first token), then decodes the
  batch token by token over that cache and completes each sample with all its tokens and their
  count (LoadGen's token-latency mode: time per output token, tokens per second).

- ``ContinuousDecoderSUT`` (decoder LLMs), ``batching="continuous"``: continuous batching over a KV
  cache of independent rows (``SlotCache``). Between two decode steps the worker admits whatever has
  queued into free rows (their prompts prefilled together, each first token reported at once), and
  a request leaves as soon as its last token is out (completed at once, its row freed), so each
  request's time to first token and per-token times are its own, not its batch's.

Every answered output is kept per sample index when ``record`` is set (LoadGen's accuracy mode), so
the harness compares what the device served with the float64 reference; a device that serves stale
or wrong outputs fails there, however fast it is. In timed runs a ``ServedOutputSampler``
(runners/served_outputs.py) keeps a seeded few of the outputs completed (TEST01).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

import mlperf_loadgen as lg
import numpy as np
import torch

_STOP = object()


class _WorkerSUT:
    batching = "dynamic"

    def __init__(self, *, max_batch: int, record: bool = False, sampler: Any = None) -> None:
        self.max_batch = max(1, int(max_batch))
        self.record = record
        self.sampler = sampler  # a ServedOutputSampler in timed runs (TEST01), else None
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
    """Dynamic batching of single-forward models; ``engine.forward_rows`` runs one batched forward."""

    def __init__(self, engine: Any, *, max_batch: int, record: bool = False, sampler: Any = None) -> None:
        self.engine = engine
        super().__init__(max_batch=max_batch, record=record, sampler=sampler)

    def _serve(self, batch: list[Any]) -> None:
        indices = [s.index for s in batch]
        host = self.engine.forward_rows(indices)  # on the host: the device has finished
        rows = [np.ascontiguousarray(host[j].numpy()) for j in range(len(batch))]
        if self.record:
            for j, index in enumerate(indices):
                self.outputs[index] = host[j].to(torch.float64)
        if self.sampler is not None:
            for j, index in enumerate(indices):
                self.sampler.offer(index, host[j])
        responses = [
            lg.QuerySampleResponse(sample.id, row.ctypes.data, row.nbytes)
            for sample, row in zip(batch, rows, strict=True)
        ]
        lg.QuerySamplesComplete(responses)
        self.completed_samples += len(batch)


class DecoderSUT(_WorkerSUT):
    """Static batching of greedy generation over a preallocated KV cache (see the module docstring)."""

    batching = "static"

    def __init__(self, engine: Any, *, max_batch: int, record: bool = False, sampler: Any = None) -> None:
        self.engine = engine
        self.output_tokens = int(engine.output_tokens)
        super().__init__(max_batch=max_batch, record=record, sampler=sampler)

    def _serve(self, batch: list[Any]) -> None:
        indices = [s.index for s in batch]
        first = self.engine.static_prefill(indices)  # on the host: the first tokens exist now
        first_rows = [np.ascontiguousarray(first[j : j + 1].numpy()) for j in range(len(batch))]
        lg.FirstTokenComplete(
            [
                lg.QuerySampleResponse(s.id, row.ctypes.data, row.nbytes, 1)
                for s, row in zip(batch, first_rows, strict=True)
            ]
        )
        tokens = self.engine.static_decode()
        rows = [np.ascontiguousarray(tokens[j].numpy()) for j in range(len(batch))]
        if self.record:
            for j, index in enumerate(indices):
                self.outputs[index] = tokens[j].clone()
        if self.sampler is not None:
            for j, index in enumerate(indices):
                self.sampler.offer(index, tokens[j])
        lg.QuerySamplesComplete(
            [
                lg.QuerySampleResponse(s.id, row.ctypes.data, row.nbytes, self.output_tokens)
                for s, row in zip(batch, rows, strict=True)
            ]
        )
        self.completed_samples += len(batch)
        self.completed_tokens += len(batch) * self.output_tokens


class _Request:
    __slots__ = ("sample", "row", "tokens", "issued", "first_at")

    def __init__(self, sample: Any, issued: float) -> None:
        self.sample, self.issued = sample, issued
        self.row = -1
        self.tokens: list[int] = []
        self.first_at = 0.0


class ContinuousDecoderSUT(_WorkerSUT):
    """Continuous batching of greedy generation over a slot KV cache (see the module docstring).

    The worker loop: admit queued requests into free rows (one batched prefill for the newcomers,
    each first token reported to LoadGen at once), complete the requests that have all their
    tokens, then one decode step for every row in use; repeat. It blocks only when no request is in
    flight. Per request it also keeps its own time to first token and time per output token
    (``request_latencies``), measured from when LoadGen issued it: LoadGen computes the certified
    figures from its own clock; these show the batching did not share one time among a batch."""

    batching = "continuous"

    def __init__(self, engine: Any, *, max_batch: int, record: bool = False, sampler: Any = None) -> None:
        self.engine = engine
        self.output_tokens = int(engine.output_tokens)
        engine.slot_reset(max(1, int(max_batch)))  # a fresh cache of max_batch independent rows
        self.request_latencies: list[tuple[float, float]] = []  # (ttft s, tpot s) per request
        self.joins = 0  # requests admitted while others were mid-decode
        self.steps = 0
        self._issued: dict[int, float] = {}
        super().__init__(max_batch=max_batch, record=record, sampler=sampler)

    def issue(self, samples: Sequence[Any]) -> None:
        now = time.perf_counter()
        for sample in samples:
            self._issued[sample.id] = now
            self._queue.put(sample)

    def _loop(self) -> None:
        active: dict[int, _Request] = {}
        stopping = False
        while True:
            try:
                stopping = self._admit(active, block=not active and not stopping) or stopping
                if stopping and not active:
                    return
                if active:
                    self._decode(active)
            except BaseException as exc:  # LoadGen waits for every sample: answer them empty
                self.error = self.error or exc
                lg.QuerySamplesComplete([lg.QuerySampleResponse(r.sample.id, 0, 0) for r in active.values()])
                active.clear()

    def _serve(self, batch: list[Any]) -> None:
        """Serve ``batch`` to the end with no other arrival (the harness's warm-up estimates)."""
        for sample in batch:
            self._issued.setdefault(sample.id, time.perf_counter())
        pending = list(batch)
        active: dict[int, _Request] = {}
        while pending or active:
            free = [row for row in range(self.max_batch) if row not in active]
            newcomers, pending = pending[: len(free)], pending[len(free) :]
            self._prefill(active, newcomers, free)
            self._finish(active)
            if active:
                self._decode(active)

    def _admit(self, active: dict[int, _Request], *, block: bool) -> bool:
        """Takes queued samples into free rows; True when the stop marker was seen."""
        free = [row for row in range(self.max_batch) if row not in active]
        newcomers: list[Any] = []
        stop = False
        while len(newcomers) < len(free):
            try:
                item = self._queue.get() if block and not newcomers else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
                break
            newcomers.append(item)
        if newcomers:
            if active:
                self.joins += len(newcomers)
            self._prefill(active, newcomers, free)
            self.batches += 1
        self._finish(active)
        return stop

    def _prefill(self, active: dict[int, _Request], newcomers: list[Any], free: list[int]) -> None:
        if not newcomers:
            return
        rows = free[: len(newcomers)]
        first = self.engine.slot_prefill([s.index for s in newcomers], rows)  # on the host
        now = time.perf_counter()
        host = [np.ascontiguousarray(first[j : j + 1].numpy()) for j in range(len(newcomers))]
        lg.FirstTokenComplete(
            [
                lg.QuerySampleResponse(s.id, row.ctypes.data, row.nbytes, 1)
                for s, row in zip(newcomers, host, strict=True)
            ]
        )
        for j, (sample, row) in enumerate(zip(newcomers, rows, strict=True)):
            request = _Request(sample, self._issued.pop(sample.id, now))
            request.row, request.first_at = row, now
            request.tokens.append(int(first[j]))
            active[row] = request

    def _decode(self, active: dict[int, _Request]) -> None:
        """One decode step of every row in use (free rows compute too, and are ignored)."""
        last = torch.zeros(self.max_batch, dtype=torch.long)
        for row, request in active.items():
            last[row] = request.tokens[-1]
        free = [row for row in range(self.max_batch) if row not in active]
        chosen = self.engine.slot_decode(last, free)  # free rows are put back to position 0 there
        self.steps += 1
        for row, request in active.items():
            request.tokens.append(int(chosen[row]))
        self._finish(active)

    def _finish(self, active: dict[int, _Request]) -> None:
        done = [row for row, r in active.items() if len(r.tokens) >= self.output_tokens]
        if not done:
            return
        now = time.perf_counter()
        finished = [active.pop(row) for row in done]
        rows = [
            np.ascontiguousarray(np.asarray(r.tokens[: self.output_tokens], dtype=np.int64)) for r in finished
        ]
        for request, row in zip(finished, rows, strict=True):
            tokens = torch.from_numpy(row.copy())
            if self.record:
                self.outputs[request.sample.index] = tokens
            if self.sampler is not None:
                self.sampler.offer(request.sample.index, tokens)
            tpot = (now - request.first_at) / (self.output_tokens - 1) if self.output_tokens > 1 else 0.0
            self.request_latencies.append((request.first_at - request.issued, tpot))
        lg.QuerySamplesComplete(
            [
                lg.QuerySampleResponse(r.sample.id, row.ctypes.data, row.nbytes, self.output_tokens)
                for r, row in zip(finished, rows, strict=True)
            ]
        )
        self.completed_samples += len(finished)
        self.completed_tokens += len(finished) * self.output_tokens
