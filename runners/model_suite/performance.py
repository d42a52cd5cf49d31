"""Timed runs of one model in one dtype: latency, throughput sweep, TTFT, decode, memory, power."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from runners.measurements import measurement
from runners.model_suite.workloads import Workload
from runners.models.loading import LoadedModel
from runners.models.reference import float64_copy
from runners.timing import TimingPolicy, measure, measure_with_output

ACCURACY_BATCH = 4
GENERATED_TOKENS = 8


def _chunks(count: int, size: int) -> list[range]:
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


@dataclass
class ModelRun:
    """One model placed on the device in one dtype, with what its timed runs need."""

    model: LoadedModel
    workload: Workload
    module: nn.Module
    forward: Callable[..., torch.Tensor]  # the module as the backend prepared it
    backend: Any
    device: torch.device
    dtype: torch.dtype
    policy: TimingPolicy
    quick: bool

    def batches(self, size: int) -> list[tuple[torch.Tensor, ...]]:
        return [
            self.workload.make_batch(list(chunk), self.device, self.dtype)
            for chunk in _chunks(self.workload.size, size)
        ]

    @torch.inference_mode()
    def run_all(self, batches: Sequence[tuple[torch.Tensor, ...]]) -> list[torch.Tensor]:
        return [self.forward(*batch) for batch in batches]

    def accuracy_outputs(self) -> torch.Tensor:
        """Every item's output, untimed (MLPerf's accuracy mode), on the host in float64."""
        outputs = self.run_all(self.batches(ACCURACY_BATCH))
        return torch.cat([o.detach().to("cpu", torch.float64) for o in outputs])

    def generation_agreement(self) -> float:
        """Fraction of greedily generated tokens equal to the float64 model's."""
        prompt = self.workload.make_batch(range(min(2, self.workload.size)), torch.device("cpu"), self.dtype)[
            0
        ]
        with torch.inference_mode():
            expected = float64_copy(self.model.module, type(self.model.module), self.model.config).generate(
                prompt, GENERATED_TOKENS
            )
            got = self.module.generate(prompt.to(self.device), GENERATED_TOKENS).cpu()
        return float((got == expected).double().mean())

    def caching_inputs(self, count: int) -> list[tuple[torch.Tensor, ...]]:
        """``count + 1`` distinct equal-shape batches: [0] is repeated, the rest are fresh."""
        size = min(4, self.workload.size)
        return [self.workload.make_fresh(v, size, self.device, self.dtype) for v in range(count + 1)]


def measure_model(run: ModelRun) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """The model's performance measurements, and its outputs logged during the timed run."""
    name, dtype = run.model.spec.name, str(run.dtype).removeprefix("torch.")
    base = {
        "model": name,
        "architecture": run.model.architecture.name,
        "params_count": run.model.parameter_count,
    }
    items: list[dict[str, Any]] = []

    single = run.workload.make_batch([0], run.device, run.dtype)
    with torch.inference_mode():
        stats = measure(lambda: run.forward(*single), backend=run.backend, policy=run.policy)
    items.append(
        measurement(
            name=f"{name} latency",
            kind="model_latency",
            unit="s",
            value=stats.median,
            dtype=dtype,
            params={**base, "batch": 1},
            stats=stats,
        )
    )

    sweep = [b for b in ((1, 4) if run.quick else (1, 4, 16)) if b <= run.workload.size]
    logged = torch.empty(0)
    for index, batch_size in enumerate(sweep):
        batches = run.batches(batch_size)
        last = index == len(sweep) - 1
        if last:
            run.backend.reset_peak_memory()
        stats, outputs = measure_with_output(
            lambda batches=batches: run.run_all(batches), backend=run.backend, policy=run.policy
        )
        items_per_s = run.workload.size / stats.median
        items.append(
            measurement(
                name=f"{name} throughput b{batch_size}",
                kind="model_throughput",
                unit="items/s",
                value=items_per_s,
                dtype=dtype,
                params={
                    **base,
                    "batch": batch_size,
                    "items": run.workload.size,
                    "tokens_per_s": items_per_s * run.workload.tokens_per_item,
                },
                stats=stats,
            )
        )
        if last:
            # The outputs of the timed run itself, for the output-consistency check.
            try:
                logged = torch.cat([o.detach().to("cpu", torch.float64) for o in outputs])  # type: ignore[union-attr]
            except (RuntimeError, TypeError, AttributeError):
                logged = torch.empty(0)  # malformed outputs: nothing logged, so TEST01 fails
            items.extend(_memory_and_power(run, name, dtype, base, batch_size, stats.median))
    if run.workload.kind == "decoder":
        items.extend(_decoder_timings(run, name, dtype, base))
    return items, logged


def _memory_and_power(
    run: ModelRun, name: str, dtype: str, base: dict[str, Any], batch_size: int, epoch_s: float
) -> list[dict[str, Any]]:
    peak = run.backend.memory_info().get("peak_allocated_bytes")
    watts = run.backend.power_watts()
    params = {**base, "batch": batch_size}
    return [
        measurement(
            name=f"{name} peak memory", kind="memory", unit="bytes", value=peak, dtype=dtype, params=params
        ),
        measurement(name=f"{name} power", kind="power", unit="W", value=watts, dtype=dtype, params=params),
        measurement(
            name=f"{name} energy per item",
            kind="energy",
            unit="J/item",
            value=None if watts is None else watts * epoch_s / run.workload.size,
            dtype=dtype,
            params=params,
        ),
    ]


@torch.inference_mode()
def _decoder_timings(run: ModelRun, name: str, dtype: str, base: dict[str, Any]) -> list[dict[str, Any]]:
    """Time to first token (prefill + first argmax) and decode tokens/s over a KV cache."""
    module = run.module
    items = []
    for batch_size in (1, min(4, run.workload.size)):
        prompt = run.workload.make_batch(range(batch_size), run.device, run.dtype)[0]
        length = prompt.shape[1]
        cache = module.new_cache(batch_size, length + GENERATED_TOKENS)

        def first_token(prompt: torch.Tensor = prompt, cache: Any = cache) -> torch.Tensor:
            cache.length = 0  # reuse the preallocated cache: allocation is not part of TTFT
            return run.forward(prompt, cache)[:, -1].argmax(-1, keepdim=True)

        ttft = measure(first_token, backend=run.backend, policy=run.policy)
        token = first_token()

        def next_token(token: torch.Tensor = token, cache: Any = cache, length: int = length) -> torch.Tensor:
            cache.length = length  # always the same context length, so every step costs the same
            return run.forward(token, cache)

        step = measure(next_token, backend=run.backend, policy=run.policy)
        params = {**base, "batch": batch_size, "prompt_tokens": length, "context": length + 1}
        items.append(
            measurement(
                name=f"{name} ttft b{batch_size}",
                kind="ttft",
                unit="s",
                value=ttft.median,
                dtype=dtype,
                params=params,
                stats=ttft,
            )
        )
        items.append(
            measurement(
                name=f"{name} decode b{batch_size}",
                kind="decode",
                unit="tokens/s",
                value=batch_size / step.median,
                dtype=dtype,
                params=params,
                stats=step,
            )
        )
        if batch_size == run.workload.size or run.workload.size == 1:
            break
    return items
