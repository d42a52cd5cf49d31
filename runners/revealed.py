"""Judging revealed outputs from the challenge alone: the platform's side of commit and reveal.

The platform imports this module (runners/ is importable by Django, never the other way round) to
re-decide what the runner decided about each output it asked for: it regenerates the inputs from the
job's challenge with the runners' own catalog and benchmark definitions, computes the float64
reference on its own CPU, and judges the revealed tensor with the catalog's tolerance, the same
`compare` the runner used. Nothing here runs a device kernel; only references are computed.

Each output id names what it is (runners/commitment.py): ``conformance/<kernel>/<dtype>/<case>``,
``performance/<benchmark>/<dtype>/<accuracy|roundN>``, ``model/<model>/<dtype>/<accuracy|label>``,
``serving/<model>/<dtype>/<accuracy|tag@position>``.
`judge_output` returns the server's status beside the runner's for the same output.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from runners.performance.benchmarks import Benchmark

# The most input elements the platform generates to recompute one output's reference (its CPU time).
MAX_REFERENCE_ELEMENTS = 1 << 27
_MEASUREMENT_EXTRAS = {
    "kernel",
    "case",
    "flops",
    "bytes",
    "achieved_tflops",
    "achieved_gbs",
    "seconds",
    "event_value",
}


class NotJudgeable(ValueError):
    """The platform cannot recompute this output (unknown name, or too costly); the message says why."""


@dataclass
class RevealContext:
    """What judging several outputs of one document shares: the document, the job's plan, loaded models."""

    document: dict[str, Any]
    plan: dict[str, Any]
    models: dict[tuple[str, ...], Any] = field(default_factory=dict)  # (kind, name[, dtype]) -> built once
    # Model name -> the weights file on this host (the platform's registered artifact), read instead
    # of the path in the plan; load_model still checks its sha256 against the plan's.
    weights: dict[str, str] = field(default_factory=dict)
    # References the platform computed before the document arrived (`reference_parts`, made while the
    # runner ran, from the same challenge), by key (`reference_key`); judging uses them instead of
    # computing them again, and notes in `used` which output was judged on which (precomputed/inline).
    precomputed: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    used: dict[str, str] = field(default_factory=dict)

    @property
    def challenge(self) -> str:
        return str(self.plan.get("challenge") or (self.document.get("spec") or {}).get("challenge"))


def split_id(output_id: str) -> tuple[str, str, str, str]:
    """(suite, name, dtype, sample) of an output id; a benchmark name may not contain '/'."""
    parts = str(output_id).split("/")
    if len(parts) < 4 or parts[0] not in ("conformance", "performance", "model", "serving"):
        raise NotJudgeable(f"not an output id: {output_id!r}")
    if parts[0] == "conformance":
        return parts[0], parts[1], parts[2], "/".join(parts[3:])
    return parts[0], "/".join(parts[1:-2]), parts[-2], parts[-1]


def _verdict(server: str, runner: str | None, **detail: Any) -> dict[str, Any]:
    return {"server_status": server, "runner_status": runner, "agrees": server == runner, **detail}


def _json_stats(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in stats.items()}


class LoadedOnUse:
    """A planned model whose weights file is read (its sha256 checked and the module built) only when
    something uses the module or the weights: judging against a precomputed reference needs the config
    and the workload's inputs and scoring, not the weights (issue 13: each model or serving reveal read
    and built the vendor's whole model). A failure to load then is the platform's, as when loading first."""

    def __init__(self, spec: Any) -> None:
        from runners.models.loading import architecture_for, parse_config

        self.spec = spec
        self.architecture = architecture_for(spec)
        self.config = parse_config(self.architecture, spec.config, what=spec.name)
        self._loaded: Any = None

    def _load(self) -> Any:
        from runners.models import ModelError, load_model

        if self._loaded is None:
            try:
                self._loaded = load_model(self.spec)
            except (ModelError, ImportError, OSError) as exc:
                raise NotJudgeable(
                    f"the platform cannot build {self.spec.name}'s reference: {type(exc).__name__}: {exc}"
                ) from None
        return self._loaded

    def __getattr__(self, name: str) -> Any:  # module, weights, fp8, reference_state, place, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._load(), name)


# Conformance --------------------------------------------------------------------------------------


def conformance_expected(
    kernel: Any, case: Any, dtype: str, challenge: str
) -> tuple[torch.Tensor, Any, torch.dtype, torch.Tensor | None]:
    """The float64 reference of one case rounded to its output dtype, its tolerance, that dtype and
    the kernel's componentwise allowance: the same steps as runners.conformance.run_case, from the
    challenge alone (the case's dimensions drawn from the challenge first, as the runner drew them)."""
    from runners.catalog import case_generator
    from runners.conformance import _widen

    case = case.draw(challenge, kernel.name)
    raw = kernel.generate(case, dtype, case_generator(challenge, kernel.name, case.name, dtype))
    host_inputs = kernel.arrange(dict(raw), case)
    out_dtype = kernel.output_dtype(dtype)
    wide = {k: _widen(v) for k, v in host_inputs.items()}
    expected = kernel.reference(wide).to(out_dtype)
    bound = kernel.error_bound(wide, case, dtype)
    return expected, kernel.tolerance(case, dtype), out_dtype, bound


def _conformance(
    context: RevealContext, name: str, dtype: str, sample: str, tensor: torch.Tensor
) -> dict[str, Any]:
    from runners.catalog import UnknownKernel, get_kernel
    from runners.conformance import compare

    record = next(
        (
            c
            for c in context.document.get("cases") or []
            if isinstance(c, dict)
            and (c.get("kernel"), c.get("dtype"), c.get("case")) == (name, dtype, sample)
        ),
        None,
    )
    runner = record.get("status") if record else None
    try:
        kernel = get_kernel(name)
        case = kernel.case(sample)
    except (UnknownKernel, KeyError):
        raise NotJudgeable(f"the catalog has no case {name}/{dtype}/{sample}") from None
    key = reference_key(f"conformance/{name}/{dtype}/{sample}")
    parts = context.precomputed.get(key)
    context.used[key] = "inline" if parts is None else "precomputed"
    if parts is None:
        parts = _conformance_parts(kernel, case, dtype, context.challenge)
    expected, bound, out_dtype = parts["expected"], parts.get("bound"), parts["expected"].dtype
    if tensor.dtype != out_dtype or tuple(tensor.shape) != tuple(expected.shape):
        return _verdict(
            "fail",
            runner,
            detail=f"revealed {tuple(tensor.shape)} {tensor.dtype}, the case makes {tuple(expected.shape)} {out_dtype}",
        )
    stats = compare(tensor, expected, parts["atol"], parts["rtol"], bound)
    status = "pass" if stats["mismatches"] == 0 else "fail"
    return _verdict(status, runner, stats=_json_stats(stats))


def _conformance_parts(kernel: Any, case: Any, dtype: str, challenge: str) -> dict[str, Any]:
    expected, tolerance, _, bound = conformance_expected(kernel, case, dtype, challenge)
    parts: dict[str, Any] = {"expected": expected, "atol": tolerance.atol, "rtol": tolerance.rtol}
    if bound is not None:
        parts["bound"] = bound
    return parts


def judgeable_conformance(name: str, sample: str) -> str | None:
    from runners.catalog import UnknownKernel, get_kernel

    try:
        get_kernel(name).case(sample)
    except (UnknownKernel, KeyError):
        return "the catalog has no such case"
    return None


# Performance --------------------------------------------------------------------------------------


def _consistency_items(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-run TEST01 items of a document (runners.measurements.integrity_section)."""
    section = (document.get("integrity") or {}).get("output_consistency") or {}
    items = section.get("items") if isinstance(section, dict) else None
    return [item for item in items or [] if isinstance(item, dict)]


def _consistency_item(document: dict[str, Any], name: str, dtype: str) -> dict[str, Any] | None:
    for part in _consistency_items(document):
        for item in part.get("benchmarks") or []:
            if isinstance(item, dict) and item.get("benchmark") == name and item.get("dtype") == dtype:
                return item
    return None


def _measurement_of(document: dict[str, Any], name: str, dtype: str) -> dict[str, Any] | None:
    return next(
        (
            m
            for m in document.get("measurements") or []
            if isinstance(m, dict) and m.get("name") == name and m.get("dtype") == dtype
        ),
        None,
    )


def _int(params: dict[str, Any], key: str) -> int:
    value = params.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise NotJudgeable(f"the measurement states no {key}")
    return value


def _benchmark_elements(kind: str, params: dict[str, Any]) -> int:
    """Input elements the platform draws again to rebuild a benchmark's reference (its CPU cost)."""
    if kind == "gemm":
        return params.get("M", 0) * params.get("K", 0) + params.get("K", 0) * params.get("N", 0)
    if kind == "conv":
        image = math.prod(params.get(k, 1) for k in ("N", "C", "H", "W"))
        return image + params.get("O", 0) * params.get("C", 0) * params.get("R", 1) ** 2
    if kind == "bandwidth":
        return 3 * params.get("elements", 0)
    if kind == "attention":
        heads, dim = params.get("heads", 0), params.get("head_dim", 0)
        if params.get("phase") == "prefill":
            return 3 * heads * params.get("seq", 0) * dim
        return heads * dim + 2 * params.get("kv_heads", 0) * params.get("context", 0) * dim
    return 0


def benchmark_of(document: dict[str, Any], name: str, dtype: str, challenge: str) -> Any:
    """The performance benchmark a measurement of the document names, rebuilt from its parameters
    (the runners' own definitions), refused when recomputing its reference would be too costly."""
    from runners.catalog.base import Case
    from runners.performance import benchmarks as defs

    measurement = _measurement_of(document, name, dtype)
    if measurement is None:
        raise NotJudgeable(f"no measurement {name} {dtype}")
    kind, params = measurement.get("kind"), measurement.get("params") or {}
    bench: Benchmark | None
    if kind in ("gemm", "conv"):
        kernel = defs._catalog_kernel(str(params.get("kernel")))
        if kernel is None:
            raise NotJudgeable(f"no catalog kernel {params.get('kernel')!r}")
        dims = {k: v for k, v in params.items() if k not in _MEASUREMENT_EXTRAS}
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in dims.values()):
            raise NotJudgeable("the measurement's dimensions are not whole numbers")
        elements = _benchmark_elements(kind, dims)
        if elements > MAX_REFERENCE_ELEMENTS:
            raise NotJudgeable(f"{elements} input elements to regenerate, above the platform's budget")
        bench = defs.catalog_benchmark(kernel, Case(str(params.get("case")), dims), dtype, kind, challenge)
    elif kind == "bandwidth":
        elements = _int(params, "elements")
        if elements * 3 > MAX_REFERENCE_ELEMENTS:
            raise NotJudgeable(f"{elements} elements per operand, above the platform's budget")
        bench = next(
            (
                b
                for b in defs.bandwidth_benchmarks(elements * 4, challenge)
                if b.params.get("operation") == params.get("operation")
            ),
            None,
        )
    elif kind == "attention":
        heads, head_dim = _int(params, "heads"), _int(params, "head_dim")
        if params.get("phase") == "prefill":
            seq = _int(params, "seq")
            benches = defs.attention_benchmarks(seq, 1, heads, heads, head_dim, [dtype], challenge)
            elements = 3 * heads * seq * head_dim
        else:
            context_len, kv_heads = _int(params, "context"), _int(params, "kv_heads")
            benches = defs.attention_benchmarks(1, context_len, heads, kv_heads, head_dim, [dtype], challenge)
            elements = heads * head_dim + 2 * kv_heads * context_len * head_dim
        if elements > MAX_REFERENCE_ELEMENTS:
            raise NotJudgeable(f"{elements} input elements to regenerate, above the platform's budget")
        bench = next((b for b in benches if b.name == name), None)
    else:
        raise NotJudgeable(f"a {kind} measurement has no reference")
    if bench is None or bench.name != name or bench.reference is None:
        raise NotJudgeable(f"the parameters of {name} do not rebuild that benchmark")
    if bench.flops != params.get("flops") or bench.bytes != params.get("bytes"):
        raise NotJudgeable(f"the FLOP or byte count of {name} is not the benchmark's")
    return bench


def judgeable_performance(document: dict[str, Any], name: str, dtype: str, challenge: str) -> str | None:
    item = _consistency_item(document, name, dtype)
    if item is None or not isinstance(item.get("against_reference"), dict):
        return "no reference check in the document for this benchmark"
    try:
        benchmark_of(document, name, dtype, challenge)
    except NotJudgeable as exc:
        return str(exc)
    return None


def _runner_sample_status(item: dict[str, Any] | None, section: str, label: str) -> str | None:
    """The runner's verdict on one sample: "fail" when its section lists that sample among the
    failures, "pass" when the section passes as a whole, None when the document cannot say."""
    part = (item or {}).get(section) if section else item
    if not isinstance(part, dict):
        return None
    if any(isinstance(d, dict) and d.get("sample") == label for d in part.get("details") or []):
        return "fail"
    if part.get("verdict") == "pass":
        return "pass"
    mismatches = part.get("mismatches")
    details = part.get("details") or []
    # Every failure is listed (details keep at most 10): a sample not among them passed.
    return "pass" if isinstance(mismatches, int) and len(details) >= mismatches else None


def _performance(
    context: RevealContext, name: str, dtype: str, sample: str, tensor: torch.Tensor
) -> dict[str, Any]:
    from runners.conformance import compare

    bench = benchmark_of(context.document, name, dtype, context.challenge)
    key = reference_key(f"performance/{name}/{dtype}/{sample}")
    parts = context.models.get(("performance", key))
    if parts is None:
        ahead = context.precomputed.get(key)
        # Precomputed for the benchmark of that name the plan names: used only when the measurement
        # rebuilds the same benchmark (its FLOP and byte counts), else computed now.
        if ahead is not None and (ahead.get("flops"), ahead.get("bytes")) == (bench.flops, bench.bytes):
            parts = ahead
        context.used[key] = "inline" if parts is None else "precomputed"
        parts = parts if parts is not None else _performance_parts(bench)
        context.models[("performance", key)] = parts
    item = _consistency_item(context.document, name, dtype)
    runner = _runner_sample_status(item, "against_reference", f"{name}:{dtype}@{sample}")
    expected = parts["expected"]
    if tensor.dtype != expected.dtype or tuple(tensor.shape) != tuple(expected.shape):
        return _verdict(
            "fail",
            runner,
            detail=f"revealed {tuple(tensor.shape)} {tensor.dtype}, the reference is {tuple(expected.shape)} {expected.dtype}",
        )
    stats = compare(tensor, expected, parts["atol"], parts["rtol"], parts.get("bound"))
    return _verdict("pass" if stats["mismatches"] == 0 else "fail", runner, stats=_json_stats(stats))


def _performance_parts(bench: Benchmark) -> dict[str, Any]:
    """A benchmark's reference as `reference_parts` stores it: the float64 check of its own input
    (rounded to the output dtype), its tolerance and bound, and the FLOP and byte counts it is for."""
    if bench.reference is None:
        raise NotJudgeable(f"{bench.name} has no reference")
    check = bench.reference()
    parts: dict[str, Any] = {
        "expected": check.expected,
        "atol": check.tolerance.atol,
        "rtol": check.tolerance.rtol,
        "flops": bench.flops,
        "bytes": bench.bytes,
    }
    if check.bound is not None:
        parts["bound"] = check.bound
    return parts


def planned_performance(plan: dict[str, Any]) -> dict[str, Benchmark]:
    """The performance benchmarks the job's plan names before its device runs, by reference key,
    those whose reference the platform would recompute (MAX_REFERENCE_ELEMENTS)."""
    from runners.performance import planned_benchmarks

    if not plan.get("challenge"):
        return {}
    backend = str((plan.get("target") or {}).get("backend") or plan.get("device") or "")
    return {
        f"performance/{b.name}/{b.dtype}": b
        for b in planned_benchmarks(plan, backend)
        if b.reference is not None and planned_cost(b) <= MAX_REFERENCE_ELEMENTS
    }


def planned_cost(bench: Benchmark) -> int:
    """What recomputing a planned benchmark's reference costs: `reference_cost` of its outputs."""
    numbers: dict[str, Any] = {
        k: v for k, v in bench.params.items() if isinstance(v, int) and not isinstance(v, bool)
    }
    numbers["phase"] = bench.params.get("phase")
    return _benchmark_elements(bench.kind, numbers)


# Models -------------------------------------------------------------------------------------------


def _model_workload(context: RevealContext, name: str) -> tuple[Any, Any]:
    """(workload, float64 reference of every item) of a planned model, built once per document."""
    key = ("model", name)
    if key in context.models:
        return context.models[key]
    from runners.model_suite.workloads import workload_for
    from runners.models import ModelError, ModelSpec, load_model

    entry = next(
        (m for m in context.plan.get("models") or [] if isinstance(m, dict) and m.get("name") == name), None
    )
    if entry is None:
        raise NotJudgeable(f"the job's plan has no model {name!r}")
    quick = bool((context.plan.get("options") or {}).get("quick"))
    if name in context.weights:
        entry = {**entry, "weights_path": context.weights[name]}
    parts = context.precomputed.get(reference_key(f"model/{name}"))
    context.used[reference_key(f"model/{name}")] = "inline" if parts is None else "precomputed"
    try:
        spec = ModelSpec.from_dict(entry)
        # With the reference precomputed, the weights are read only if the workload needs them.
        loaded: Any = load_model(spec) if parts is None else LoadedOnUse(spec)
        workload = workload_for(loaded, context.challenge, quick=quick)
        reference = workload.reference() if parts is None else parts["reference"]
    except (ModelError, ImportError, OSError) as exc:
        raise NotJudgeable(
            f"the platform cannot build {name}'s reference: {type(exc).__name__}: {exc}"
        ) from None
    context.models[key] = (workload, reference)
    context.models[("model_loaded", name)] = loaded
    return workload, reference


def _sample_items(context: RevealContext, name: str, dtype: str, sample: str, size: int) -> list[int]:
    from runners.integrity import sample_indices
    from runners.model_suite.performance import TEST01_SAMPLES

    if sample.startswith("latency@"):
        return [0]
    if _throughput_sample(sample):
        return sample_indices(context.challenge, size, TEST01_SAMPLES, salt=f"model:{name}:{dtype}")
    raise NotJudgeable(f"unknown model sample {sample!r}")


def _throughput_sample(sample: str) -> bool:
    """A throughput run's TEST01 sample (``b4@round2``), as opposed to a decoder's ``ttft b1@round0`` or
    ``decode b1@round0`` next-token logits."""
    return sample.startswith("b") and "@" in sample


_DECODER_SAMPLE = re.compile(r"(?P<kind>ttft|decode) b(?P<batch>[1-9][0-9]{0,3})@round[0-9]{1,6}")


def _decoder_sample(sample: str) -> tuple[str, int] | None:
    """A decoder's time-to-first-token or decode-step sample (``ttft b4@round2``: ("ttft", 4)), else None."""
    match = _DECODER_SAMPLE.fullmatch(sample)
    return (match.group("kind"), int(match.group("batch"))) if match else None


def model_sample_judgeable(sample: str) -> str | None:
    """Why the platform does not re-judge this model output, or None when it does: the accuracy
    output, a latency sample, a throughput run's TEST01 sample, a decoder's first-token and decode-step
    samples (session 29; before, judged on the runner host only). A first-token sample's prompts are
    the workload's, so its float64 logits are the model reference's at the prompt's last position; a
    decode step continues the device's own first token, which the platform knows where the float64
    first token is decided in the dtype (`_decode_step`)."""
    if (
        sample == "accuracy"
        or sample.startswith("latency@")
        or _throughput_sample(sample)
        or _decoder_sample(sample) is not None
    ):
        return None
    return f"the platform does not recompute the model sample {sample!r} (the runner host's judge does)"


def _claims_checked(
    verdict: dict[str, Any],
    score: dict[str, Any],
    claimed: Any,
    record: dict[str, Any] | None,
    context: RevealContext,
    name: str,
    dtype: str,
) -> dict[str, Any]:
    """``verdict`` with ``agrees`` False where the document's figures are not the revealed output's: the
    score's value, and its mean logit cosine where the score has one (both where the case records it and
    where the judge reads it, the accuracy measurement's params)."""
    if not isinstance(claimed, int | float) or not math.isclose(
        float(claimed), score["value"], rel_tol=1e-9, abs_tol=1e-12
    ):
        verdict.update(
            agrees=False,
            detail=f"the document reports {score['metric']} {claimed}, the output gives {score['value']}",
        )
    cosine = score.get("logit_cosine_mean")
    measured = (_measurement_of(context.document, f"{name} accuracy", dtype) or {}).get("params") or {}
    for claimed_cosine in (
        ((record or {}).get("metrics") or {}).get("logit_cosine_mean"),
        measured.get("logit_cosine_mean"),
    ):
        if (
            cosine is not None
            and verdict["agrees"]
            and not (
                isinstance(claimed_cosine, int | float)
                and math.isclose(float(claimed_cosine), cosine, rel_tol=1e-9, abs_tol=1e-12)
            )
        ):
            verdict.update(
                agrees=False,
                detail=f"the document reports logit_cosine_mean {claimed_cosine}, the output gives {cosine}",
            )
    return verdict


def _model(
    context: RevealContext, name: str, dtype: str, sample: str, tensor: torch.Tensor
) -> dict[str, Any]:
    workload, reference = _model_workload(context, name)
    if sample == "accuracy":
        record = next(
            (
                c
                for c in context.document.get("cases") or []
                if isinstance(c, dict) and (c.get("kernel"), c.get("dtype")) == (name, dtype)
            ),
            None,
        )
        runner = (record or {}).get("status")
        if tuple(tensor.shape) != tuple(reference.shape) or not tensor.is_floating_point():
            return _verdict(
                "fail",
                runner,
                detail=f"revealed {tuple(tensor.shape)}, the workload makes {tuple(reference.shape)}",
            )
        score = workload.score(tensor.to(torch.float64), reference, dtype)
        claimed = ((record or {}).get("metrics") or {}).get("value")
        verdict = _verdict(
            "pass" if score["meets_informational_bar"] else "fail",
            runner,
            metric=score["metric"],
            value=score["value"],
            runner_value=claimed,
        )
        return _claims_checked(verdict, score, claimed, record, context, name, dtype)
    item = next(
        (
            c
            for c in _consistency_items(context.document)
            if c.get("model") == name and c.get("dtype") == dtype
        ),
        None,
    )
    runner = _runner_sample_status(item, "", sample)
    decoder = _decoder_sample(sample)
    if decoder is not None and decoder[0] == "ttft":
        return _first_token(workload, reference, dtype, decoder[1], tensor, runner)
    if decoder is not None:
        return _decode_step(context, name, workload, reference, dtype, decoder[1], tensor, runner)
    items = _sample_items(context, name, dtype, sample, workload.size)
    if (
        tensor.dim() == 0
        or tensor.shape[0] != len(items)
        or tuple(tensor.shape[1:]) != tuple(reference.shape[1:])
    ):
        return _verdict("fail", runner, detail=f"revealed {tuple(tensor.shape)} for {len(items)} item(s)")
    score = workload.score(tensor.to(torch.float64), reference[torch.tensor(items)], dtype)
    return _verdict(
        "pass" if score["meets_informational_bar"] else "fail",
        runner,
        metric=score["metric"],
        value=score["value"],
    )


def _first_token(
    workload: Any, reference: torch.Tensor, dtype: str, batch: int, tensor: torch.Tensor, runner: str | None
) -> dict[str, Any]:
    """A decoder's time-to-first-token sample: the next-token logits of the workload's first `batch`
    prompts (the device's timed loop runs those, runners/model_suite/performance.py), judged as the
    runner host's judge judges them against the float64 model (``tokens_within_rounding``: every
    token the device picks is the reference's first, or within the dtype's rounding of it). The
    float64 logits are the model reference's at each prompt's last position (a DeepSeek reference
    holds the MTP head's logits after the main head's: the main head's last): no other computation."""

    expected = _first_token_logits(workload, reference, batch)
    if expected is None:
        return _verdict("fail", runner, detail=f"no decoder prompt batch of {batch} in the workload")
    return _next_tokens_verdict(tensor, expected, dtype, runner, "the first token's logits")


def _first_token_logits(workload: Any, reference: torch.Tensor, batch: int) -> torch.Tensor | None:
    """The float64 next-token logits after each of the workload's first `batch` prompts: the model
    reference's at the prompt's last position (a DeepSeek reference holds the MTP head's logits after the
    main head's: the main head's last). None where the workload has no such batch of decoder prompts."""
    if workload.kind != "decoder" or reference.dim() != 3 or not 1 <= batch <= reference.shape[0]:
        return None
    length = workload.make_batch(list(range(batch)), torch.device("cpu"), torch.float32)[0].shape[1]
    return reference[:batch, length - 1]


def _next_tokens_verdict(
    tensor: torch.Tensor, expected: torch.Tensor, dtype: str, runner: str | None, what: str
) -> dict[str, Any]:
    """The runner host's judge's rule for a decoder's sampled next-token logits: every token the device
    picks is the float64 reference's first, or within the dtype's rounding of it."""
    from runners.model_suite.performance import tokens_within_rounding

    if tuple(tensor.shape) != tuple(expected.shape) or not tensor.is_floating_point():
        return _verdict(
            "fail", runner, detail=f"revealed {tuple(tensor.shape)}, {what} are {tuple(expected.shape)}"
        )
    within = tokens_within_rounding(tensor, expected, getattr(torch, dtype))
    return _verdict(
        "pass" if within == 1.0 else "fail", runner, metric="tokens_within_rounding", value=within
    )


def decode_step_references(context: RevealContext, name: str) -> dict[str, torch.Tensor]:
    """The float64 logits of a planned decoder's decode step for each batch its timed loop runs
    (``decode_b<n>``): after each of the workload's first n prompts and the float64 model's own first
    token. Empty for a model that does not decode. Precomputed with the model's reference
    (`reference_parts`), else computed when a decode sample is judged."""
    from runners.model_suite.performance import decoder_batches
    from runners.model_suite.workloads import float64_model

    workload, reference = _model_workload(context, name)
    if workload.kind != "decoder":
        return {}
    loaded = context.models[("model_loaded", name)]
    f64 = float64_model(loaded, workload)
    steps: dict[str, torch.Tensor] = {}
    for batch in decoder_batches(workload.size):
        first = _first_token_logits(workload, reference, batch)
        if first is None:
            continue
        prompts = workload.make_batch(list(range(batch)), torch.device("cpu"), torch.float32)[0]
        ids = torch.cat([prompts, first.argmax(-1, keepdim=True).to(prompts.dtype)], dim=1)
        with torch.inference_mode():
            steps[f"decode_b{batch}"] = f64(ids)[:, -1].double()
    return steps


def _decode_step(
    context: RevealContext,
    name: str,
    workload: Any,
    reference: torch.Tensor,
    dtype: str,
    batch: int,
    tensor: torch.Tensor,
    runner: str | None,
) -> dict[str, Any]:
    """A decoder's decode-step sample: the next-token logits after each of the workload's first `batch`
    prompts and the device's own first token (teacher forcing: runners/model_suite/performance.py). The
    commitment does not hold that token, so the platform judges the step where the float64 first token
    is decided in the dtype (every other token's logit below the first's by more than the dtype's
    rounding, ``tokens_within_rounding``'s margin): there an honest device picked that token, and a
    device that picked another has failed already. Elsewhere the context is the device's own choice and
    the sample is not judged (NotJudgeable: recorded, never counted against the runner)."""
    from runners.model_suite.performance import rounding_margin

    first = _first_token_logits(workload, reference, batch)
    if first is None:
        return _verdict("fail", runner, detail=f"no decoder prompt batch of {batch} in the workload")
    top = first.topk(2, dim=-1).values
    margin = rounding_margin(first, getattr(torch, dtype))
    undecided = [i for i in range(batch) if float(top[i, 0] - top[i, 1]) <= float(margin[i])]
    if undecided:
        raise NotJudgeable(
            f"the float64 first token after prompt(s) {undecided} is within the {dtype} rounding of another: "
            "the decode step continues the device's own choice"
        )
    key = reference_key(f"model/{name}")
    parts = context.precomputed.get(key) or {}
    expected = parts.get(f"decode_b{batch}")
    if expected is None:
        cached = ("decode_steps", name)
        if cached not in context.models:
            context.models[cached] = decode_step_references(context, name)
        expected = context.models[cached].get(f"decode_b{batch}")
    if expected is None:
        return _verdict("fail", runner, detail=f"no decode step of batch {batch} in the workload")
    return _next_tokens_verdict(tensor, expected, dtype, runner, "the decode step's logits")


# Serving -------------------------------------------------------------------------------------------


def _serving_model(context: RevealContext, name: str) -> tuple[Any, Any, Any]:
    """(loaded model, workload, float64 copy) of a planned model as the serving suite drew it. The
    float64 copy is what a decoder's references and teacher-forced logits run on; an encoder's or a
    classifier's served outputs are judged against the workload's own reference and never read it,
    so none is built for them (None: issue 13, a copy of the whole model on every serving reveal)."""
    key = ("serving", name)
    if key in context.models:
        return context.models[key]
    from runners.model_suite.workloads import float64_model, workload_for
    from runners.models import ModelError, ModelSpec, load_model

    entry = next(
        (m for m in context.plan.get("models") or [] if isinstance(m, dict) and m.get("name") == name), None
    )
    if entry is None:
        raise NotJudgeable(f"the job's plan has no model {name!r}")
    if name in context.weights:
        entry = {**entry, "weights_path": context.weights[name]}
    try:
        spec = ModelSpec.from_dict(entry)
        # With the served outputs' reference precomputed, an encoder's or a classifier's weights are
        # never read; a decoder's float64 copy reads them below.
        precomputed = reference_key(f"serving/{name}") in context.precomputed
        loaded: Any = LoadedOnUse(spec) if precomputed else load_model(spec)
        workload = workload_for(
            loaded, context.challenge, quick=bool((context.plan.get("options") or {}).get("quick"))
        )
        # Only a decoder's tokens are judged against a float64 model; an encoder needs none.
        f64 = float64_model(loaded, workload) if workload.kind == "decoder" else None
    except (ModelError, ImportError, OSError) as exc:
        raise NotJudgeable(
            f"the platform cannot build {name}'s reference: {type(exc).__name__}: {exc}"
        ) from None
    context.models[key] = (loaded, workload, f64)
    return loaded, workload, f64


def _serving_output_tokens(context: RevealContext, name: str) -> int:
    """The tokens each decoder request generates: the plan's setting, else what the document records."""
    llm = ((context.plan.get("options") or {}).get("serving") or {}).get("llm") or {}
    if isinstance(llm.get("output_tokens"), int):
        return int(llm["output_tokens"])
    for record in (context.document.get("serving") or {}).get("models") or []:
        if (
            isinstance(record, dict)
            and record.get("name") == name
            and isinstance(record.get("output_tokens"), int)
        ):
            return int(record["output_tokens"])
    raise NotJudgeable(f"no output token count for {name}")


def _serving(
    context: RevealContext, name: str, dtype: str, sample: str, tensor: torch.Tensor
) -> dict[str, Any]:
    """A served output: the accuracy run's (every sample, scored as the runner scored it) or one kept
    in a timed run (its status against the float64 reference alone), re-decided from the challenge."""
    from runners.served_outputs import (
        DECIDED_ROUTING_METRIC,
        FREE_RUNNING_METRIC,
        TEACHER_FORCED_METRIC,
        sample_reference_status,
        served_routing_gaps,
        serving_accuracy_score,
        teacher_forced_logits,
    )

    loaded, workload, f64 = _serving_model(context, name)
    decoder = workload.kind == "decoder"
    key = ("serving-reference", name)
    if key not in context.models:
        parts = context.precomputed.get(reference_key(f"serving/{name}"))
        context.used[reference_key(f"serving/{name}")] = "inline" if parts is None else "precomputed"
        if parts is not None:
            context.models[key] = parts["reference"]
        else:
            context.models[key] = _serving_reference(context, name, workload, f64)
    reference = context.models[key]
    if sample == "accuracy":
        record = next(
            (
                c
                for c in context.document.get("cases") or []
                if isinstance(c, dict)
                and (c.get("kernel"), c.get("dtype"), c.get("case")) == (name, dtype, "serving_accuracy")
            ),
            None,
        )
        runner = (record or {}).get("status")
        if tuple(tensor.shape) != tuple(reference.shape):
            return _verdict(
                "fail",
                runner,
                detail=f"revealed {tuple(tensor.shape)}, the workload makes {tuple(reference.shape)}",
            )
        outputs = tensor.to(torch.long) if decoder else tensor.to(torch.float64)
        # A decoder is re-scored by the metric its document's case states: the agreement where routing
        # is decided (AIA 1.3 runners from issue 16), the teacher-forced agreement (AIA 1.3 runners
        # before it), or the free-running agreement of documents written before AIA 1.3.
        stated = ((record or {}).get("metrics") or {}).get("metric")
        prompts = workload.make_batch(range(workload.size), torch.device("cpu"), torch.float64)[0]
        vocab = int(getattr(loaded.config, "vocab_size", 0) or 0)

        def forced(index: int, tokens: torch.Tensor) -> torch.Tensor:
            return teacher_forced_logits(f64, prompts[index : index + 1], tokens, vocab)

        def gaps(index: int, tokens: torch.Tensor) -> torch.Tensor:
            return served_routing_gaps(f64, prompts[index : index + 1], tokens, vocab)

        metric = stated if stated in (FREE_RUNNING_METRIC, TEACHER_FORCED_METRIC) else DECIDED_ROUTING_METRIC
        score = serving_accuracy_score(
            decoder=decoder,
            outputs=outputs,
            reference=reference,
            dtype_name=dtype,
            score=workload.score,
            teacher_forced=forced if decoder else None,
            routing_gaps=gaps if decoder and hasattr(f64, "routing_gaps") else None,
            metric=metric,
        )
        claimed = ((record or {}).get("metrics") or {}).get("value")
        verdict = _verdict(
            "pass" if score["meets_informational_bar"] else "fail",
            runner,
            metric=score["metric"],
            value=score["value"],
            runner_value=claimed,
        )
        return _claims_checked(verdict, score, claimed, record, context, name, dtype)
    tag, _, position = sample.rpartition("@")
    item = next(
        (
            c
            for c in _consistency_items(context.document)
            if c.get("suite") == "serving" and c.get("model") == name and c.get("dtype") == dtype
        ),
        None,
    )
    run = next(
        (r for r in (item or {}).get("runs") or [] if isinstance(r, dict) and r.get("tag") == tag), None
    )
    try:
        index = int(run["indices"][run["positions"].index(int(position))])  # type: ignore[index]
    except (TypeError, KeyError, ValueError, IndexError):
        raise NotJudgeable(f"the document records no served output {sample!r}") from None
    runner = ((item or {}).get("sample_status") or {}).get(sample)
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype) or not 0 <= index < workload.size:
        raise NotJudgeable(f"cannot judge {sample!r} of {name} at {dtype}")
    if decoder:
        prompt = workload.make_batch([index], torch.device("cpu"), torch.float64)[0]
        logits = teacher_forced_logits(f64, prompt, tensor, int(loaded.config.vocab_size))
        status = sample_reference_status(
            decoder=True, output=tensor, dtype=torch_dtype, dtype_name=dtype, logits=logits
        )
    else:
        status = sample_reference_status(
            decoder=False,
            output=tensor,
            dtype=torch_dtype,
            dtype_name=dtype,
            reference_row=reference[index],
            score=workload.score,
        )
    return _verdict(status, runner, sample_index=index)


def _serving_reference(context: RevealContext, name: str, workload: Any, f64: Any) -> torch.Tensor:
    """The served outputs' float64 reference: the decoder's greedy tokens, or the encoder's outputs."""
    from runners.served_outputs import decoder_reference_tokens

    if workload.kind == "decoder":
        prompts = workload.make_batch(range(workload.size), torch.device("cpu"), torch.float64)[0]
        return decoder_reference_tokens(f64, prompts, _serving_output_tokens(context, name))
    return workload.reference()


# Precomputing references -------------------------------------------------------------------------


def reference_key(output_id: str) -> str:
    """The key of the reference an output is judged against: the output id for a conformance case;
    ``performance/<benchmark>/<dtype>`` for a benchmark's outputs (its accuracy call and timed rounds,
    all judged against the reference of its own input); ``model/<name>`` or ``serving/<name>`` for a
    model's outputs, which share one float64 reference."""
    suite = str(output_id).split("/", 1)[0]
    if suite in ("model", "serving"):
        return "/".join(str(output_id).split("/")[:2]) if "/" in str(output_id) else str(output_id)
    if suite == "performance" and str(output_id).count("/") >= 3:  # one reference per benchmark
        return str(output_id).rsplit("/", 1)[0]
    return str(output_id)


def planned_output_ids(plan: dict[str, Any], suite: str) -> list[str]:
    """The outputs a job's plan lets the platform name before the document arrives: every planned
    conformance case (the runner judges each one it supports), and one reference key per planned
    model for the model and serving suites; for the performance suite, one reference key per
    benchmark the plan names before the device runs (runners.performance.planned_benchmarks: not the
    STREAM buffers, sized by the device's cache). Which of a benchmark's outputs the runner commits
    (its timed rounds) is the device's, so they are predicted by benchmark."""
    if suite == "performance":
        return list(planned_performance(plan))
    if suite == "conformance":
        from runners.conformance import planned_cases

        triples, _ = planned_cases(plan.get("kernels"), plan.get("dtypes"), plan.get("cases"))
        return [f"conformance/{kernel.name}/{dtype}/{case.name}" for kernel, dtype, case in triples]
    if suite in ("model", "serving"):
        return [
            f"{suite}/{m['name']}"
            for m in plan.get("models") or []
            if isinstance(m, dict) and isinstance(m.get("name"), str) and "/" not in m["name"]
        ]
    return []


def reference_parts(context: RevealContext, key: str) -> dict[str, Any]:
    """The reference of one key (`reference_key`) computed from the plan and challenge alone, exactly
    as judging would compute it inline: tensors under "expected", "bound", "reference", numbers under
    "atol" and "rtol". Raises NotJudgeable."""
    suite, _, rest = key.partition("/")
    if suite == "conformance":
        from runners.catalog import UnknownKernel, get_kernel

        name, dtype, sample = split_id(key)[1:]
        try:
            kernel = get_kernel(name)
            case = kernel.case(sample)
        except (UnknownKernel, KeyError):
            raise NotJudgeable(f"the catalog has no case {key}") from None
        return _conformance_parts(kernel, case, dtype, context.challenge)
    if suite == "model":
        _, reference = _model_workload(context, rest)
        return {"reference": reference, **decode_step_references(context, rest)}
    if suite == "serving":
        _, workload, f64 = _serving_model(context, rest)
        return {"reference": _serving_reference(context, rest, workload, f64)}
    if suite == "performance":
        bench = planned_performance(context.plan).get(key)
        if bench is None:
            raise NotJudgeable(f"the job's plan names no benchmark {key!r}")
        return _performance_parts(bench)
    raise NotJudgeable(f"no reference is computed ahead for {key!r}")


# A model output's cost: one float64 forward of the model over its workload, shared by its outputs.
MODEL_REFERENCE_COST = 1 << 20


def reference_cost(context: RevealContext, output_id: str) -> int:
    """What recomputing this output's reference costs the platform, in input elements drawn (plus the
    float64 work of a contraction, counted as FLOPs / 16): the currency of a reveal's budget."""
    try:
        suite, name, dtype, sample = split_id(output_id)
    except NotJudgeable:
        return 0
    if suite == "conformance":
        from runners.catalog import get_kernel
        from runners.catalog.base import element_size

        try:
            kernel = get_kernel(name)
            case = kernel.case(sample).draw(context.challenge, kernel.name)
            size = element_size(dtype) if dtype != "*" else 4
            return kernel.bytes(case, dtype) // max(size, 1) + kernel.flops(case) // 16
        except Exception:  # an unknown case is refused by judgeable(); its cost does not matter
            return 0
    if suite == "performance":
        measurement = _measurement_of(context.document, name, dtype) or {}
        params = measurement.get("params") or {}
        numbers: dict[str, Any] = {
            k: v for k, v in params.items() if isinstance(v, int) and not isinstance(v, bool)
        }
        numbers["phase"] = params.get("phase")
        return _benchmark_elements(str(measurement.get("kind")), numbers)
    return MODEL_REFERENCE_COST


def judgeable(context: RevealContext, output_id: str) -> str | None:
    """Why the platform would not recompute this output, or None when it can (before drawing)."""
    try:
        suite, name, dtype, sample = split_id(output_id)
    except NotJudgeable as exc:
        return str(exc)
    if suite == "conformance":
        return judgeable_conformance(name, sample)
    if suite == "performance":
        return judgeable_performance(context.document, name, dtype, context.challenge)
    if not any(isinstance(m, dict) and m.get("name") == name for m in context.plan.get("models") or []):
        return "the job's plan has no such model"
    return model_sample_judgeable(sample) if suite == "model" else None


def judge_output(context: RevealContext, output_id: str, tensor: torch.Tensor) -> dict[str, Any]:
    """The server's verdict on one revealed output beside the runner's: {"server_status",
    "runner_status", "agrees", "stats" | "detail" ...}. Raises NotJudgeable."""
    suite, name, dtype, sample = split_id(output_id)
    judge = {"conformance": _conformance, "performance": _performance, "model": _model, "serving": _serving}[
        suite
    ]
    return judge(context, name, dtype, sample, tensor)


def judged_excerpt(document: dict[str, Any], output_ids: list[str]) -> dict[str, Any]:
    """The document reduced to what `judge_output` reads of it to judge these outputs, so the platform can
    keep it beside the draw and not parse the whole document again when the answer comes (issue 13):

    - the challenge (``spec.challenge``) and the suite;
    - the case records: a conformance output's own case; a model's or a served model's records of its
      dtype (the accuracy case and its figures);
    - the measurements of a benchmark, and a model's accuracy measurement (``<model> accuracy``: its
      params carry the mean logit cosine the judge re-reads; session 27 left it out and an honest
      DeepSeek run's accuracy output read as a mismatch);
    - the TEST01 items (``integrity.output_consistency``), a benchmark's of the named benchmarks only;
    - a served model's output token count (``serving.models``).

    One home with the judges: a judge that reads more of the document must keep it here
    (tests/runners/test_revealed_excerpt.py judges every committed output of real documents, a DeepSeek
    model's among them, from the excerpt and from the whole document, and the verdicts must be equal)."""
    exact: set[tuple[Any, ...]] = set()
    whole: set[tuple[Any, ...]] = set()
    measured: set[tuple[Any, ...]] = set()
    for output_id in output_ids:
        try:
            suite, name, dtype, sample = split_id(output_id)
        except NotJudgeable:
            continue
        if suite == "conformance":
            exact.add((name, dtype, sample))
        else:
            whole.add((name, dtype))
        measured.update({(name, dtype), (f"{name} accuracy", dtype)})
    excerpt: dict[str, Any] = {"suite": document["suite"]} if "suite" in document else {}
    spec = document.get("spec")
    challenge = spec.get("challenge") if isinstance(spec, dict) else None
    excerpt["spec"] = {"challenge": challenge} if challenge is not None else {}
    cases = document.get("cases")
    if isinstance(cases, list):
        excerpt["cases"] = [
            c
            for c in cases
            if isinstance(c, dict)
            and (
                (c.get("kernel"), c.get("dtype"), c.get("case")) in exact
                or (c.get("kernel"), c.get("dtype")) in whole
            )
        ]
    measurements = document.get("measurements")
    if isinstance(measurements, list):
        excerpt["measurements"] = [
            m for m in measurements if isinstance(m, dict) and (m.get("name"), m.get("dtype")) in measured
        ]
    items = _consistency_items(document)
    if items:
        kept = []
        for item in items:
            benchmarks = item.get("benchmarks")
            if isinstance(benchmarks, list):
                item = {
                    **item,
                    "benchmarks": [
                        b
                        for b in benchmarks
                        if isinstance(b, dict) and (b.get("benchmark"), b.get("dtype")) in measured
                    ],
                }
            kept.append(item)
        excerpt["integrity"] = {"output_consistency": {"items": kept}}
    served = (
        (document.get("serving") or {}).get("models") if isinstance(document.get("serving"), dict) else None
    )
    if isinstance(served, list):
        names = {name for name, _ in whole}
        excerpt["serving"] = {
            "models": [
                {k: r[k] for k in ("name", "output_tokens") if k in r}
                for r in served
                if isinstance(r, dict) and r.get("name") in names
            ]
        }
    return excerpt
