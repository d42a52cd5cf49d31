"""The conformance suite: every (kernel, dtype, case) on the device against a float64 CPU reference.

A case's inputs are drawn on the CPU from a generator seeded by (challenge, kernel, case,
dtype), so the platform can recompute any case from the challenge alone (`recompute_case`).
One failing or crashing case never stops the suite: it becomes that case's record.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from runners.backends import get_backend
from runners.catalog import Case, Kernel, UnknownKernel, case_generator, get_kernel, torch_dtype
from runners.catalog import all_kernels as catalog_kernels
from runners.commitment import OutputCommitment, conformance_output_id
from runners.device import as_device
from runners.errors import (
    BAD_SPEC,
    INFRASTRUCTURE,
    PRODUCT_FAILURE,
    TIMEOUT,
    Classified,
    classify_exception,
    declared_unsupported,
    error,
)
from runners.math_modes import with_pinned_math_modes
from runners.progress import label as progress_label

Progress = Callable[[int, int, str], None]


@dataclass
class SuiteTimer:
    """Wall-clock split of a run: the float64 reference vs the device calls vs the rest."""

    reference_s: float = 0.0
    device_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def as_dict(self) -> dict[str, float]:
        return {
            "total_s": round(time.perf_counter() - self.started, 4),
            "reference_s": round(self.reference_s, 4),
            "device_s": round(self.device_s, 4),
        }


def tensor_digest(*tensors: torch.Tensor) -> str:
    """sha256 of the tensors' raw bytes in order (CPU, contiguous, native dtype)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        if flat.numel():
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def inputs_digest(inputs: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    for key in sorted(inputs):
        value = inputs[key]
        digest.update(key.encode())
        if isinstance(value, torch.Tensor):
            digest.update(f"{tuple(value.shape)}{value.dtype}".encode())
            digest.update(tensor_digest(value).encode())
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def _widen(value: Any) -> Any:
    """The float64 / int64 CPU copy of an input that the reference computes on."""
    if not isinstance(value, torch.Tensor):
        return value
    value = value.detach().to("cpu")
    if value.is_floating_point():
        return value.to(torch.float64)
    if value.dtype in (torch.int8, torch.int16, torch.int32, torch.uint8):
        return value.to(torch.int64)
    return value


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


# Elements compared per slice: the float64 slices of the comparison (output, reference, budget and a
# few temporaries, ~0.6 MB) stay in a core's L2 cache, so its dozen elementwise passes read cache, not
# memory (the large cases hold 8M elements, 64 MB per float64 pass); and a slice is below torch's
# intra-op grain size (at::internal::GRAIN_SIZE, 32768), so each pass runs on one thread without an
# OpenMP fork and join per operation. Measured on this 2-core host (bench/conformance_time.py).
COMPARE_SLICE = 1 << 14


def compare(
    output: torch.Tensor,
    expected: torch.Tensor,
    atol: float,
    rtol: float,
    bound: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Error statistics of `output` against `expected` (already rounded to the output dtype).

    NaN must meet NaN and an infinity the same infinity; finite pairs must satisfy
    |out - ref| <= atol + rtol * |ref| + bound, where `bound` is the kernel's componentwise
    allowance (Kernel.error_bound, e.g. gamma_k |A||B|), broadcast to the output; a NaN in it
    counts as no allowance. Computed slice by slice (COMPARE_SLICE elements): every statistic is a
    maximum or a count, so the slices give exactly what one pass over the whole would.
    """
    flat_out = output.detach().to("cpu").reshape(-1)
    flat_ref = expected.detach().to("cpu").reshape(-1)
    flat_extra = None
    if bound is not None:
        flat_extra = bound.detach().to("cpu").expand(expected.shape).reshape(-1)
    total = flat_out.numel()
    if total == 0:
        return {"max_abs": 0.0, "max_rel": 0.0, "mismatch_fraction": 0.0, "mismatches": 0}
    max_abs = max_rel = worst = 0.0
    mismatches = 0
    for start in range(0, total, COMPARE_SLICE):
        piece = slice(start, start + COMPARE_SLICE)
        extra = None if flat_extra is None else flat_extra[piece]
        stats = _compare_slice(flat_out[piece], flat_ref[piece], atol, rtol, extra)
        mismatches += stats[0]
        max_abs, max_rel, worst = max(max_abs, stats[1]), max(max_rel, stats[2]), max(worst, stats[3])
    return {
        "max_abs": _finite_or_none(max_abs),
        "max_rel": _finite_or_none(max_rel),
        "tolerance_ratio": _finite_or_none(worst),
        "mismatch_fraction": mismatches / total,
        "mismatches": mismatches,
    }


def _compare_slice(
    output: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float, bound: torch.Tensor | None
) -> tuple[int, float, float, float]:
    """(mismatches, max |out - ref| over finite pairs, max relative error where ref != 0, the worst
    element's error as a share of its own allowance) of one slice; see compare."""
    # In place where the operands allow it and with no pass over the slice that a statistic does not
    # need: 30% faster than the plain expressions (bench/compare_time.py; the same statistics, bit for
    # bit, on NaN, infinities, signed zeros, subnormals and NaN allowances). The platform judges every
    # revealed output with it too (issue 13).
    out = output.to(torch.float64)
    ref = expected.to(torch.float64)
    diff = out.sub(ref).abs_()
    ref_abs = ref.abs()
    budget = ref_abs.mul(rtol).add_(atol)
    if bound is not None:
        budget.add_(bound.to(torch.float64).nan_to_num(nan=0.0))
    finite = diff.isfinite()  # false where some NaN or infinity is on either side
    special_bad = False
    if bool(finite.all()):
        mismatches = diff.numel() - int((diff <= budget).sum())  # a NaN difference is never <=
    else:
        special = finite.logical_not_()
        out_s, ref_s = out[special], ref[special]
        agree = (out_s.isnan() & ref_s.isnan()) | (out_s == ref_s)
        good = diff <= budget
        good[special] = agree
        special_bad = not bool(agree.all())
        diff.masked_fill_(special, 0.0)
        mismatches = diff.numel() - int(good.sum())
    rel = diff.div(ref_abs).nan_to_num_(nan=0.0, posinf=0.0)  # relative error where ref != 0
    # The worst element's error as a share of its own allowance (1.0 = on the limit): max_abs and
    # max_rel may come from different elements, so neither gives this on its own. Special elements
    # carry diff 0 here; one that disagrees makes the worst ratio infinite. A zero allowance gives
    # infinity for any error (x / 0) and 0 for none (0 / 0, NaN).
    ratio = diff.div(budget).nan_to_num_(nan=0.0, posinf=math.inf)
    worst = math.inf if special_bad else float(ratio.max())
    return mismatches, float(diff.max()), float(rel.max()), worst


def _number(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else str(value)  # nan, inf, -inf


def describe_mismatches(
    output: torch.Tensor,
    expected: torch.Tensor,
    stats: dict[str, Any],
    inputs: dict[str, Any],
    bound: torch.Tensor | None = None,
) -> str:
    """The failure message: how many elements are outside tolerance and, for the two failures that a
    count alone hides, an example with its values. A NaN or infinity where the reference has another
    value (e.g. gelu(+inf) returned NaN) has no finite error, so max_abs says 0 there; a zero where
    the reference is not zero is a flush to zero (the subnormal edge case's finding). The example
    names the input values at the same position where an input has the output's shape (elementwise
    kernels). Only called for a failed case."""
    message = f"{stats['mismatches']} of {output.numel()} elements outside tolerance"
    out = output.detach().to("cpu", torch.float64)
    ref = expected.detach().to("cpu", torch.float64)
    if out.numel() == 0 or out.shape != ref.shape:
        return message
    special = ~(out - ref).isfinite()
    placement = special & ~((out.isnan() & ref.isnan()) | (out == ref))
    budget = ref.abs() * stats["rtol"] + stats["atol"]
    if bound is not None:
        budget = budget + torch.nan_to_num(bound.detach().to("cpu", torch.float64), nan=0.0)
    flushed = (out == 0) & (ref.abs() > budget) & ref.isfinite()  # a zero outside tolerance
    notes = []
    for label, mask in (
        ("NaN/Inf placement differs from the reference", placement),
        ("flushed to zero", flushed),
    ):
        count = int(mask.sum())
        if not count:
            continue
        index = tuple(int(i) for i in mask.nonzero()[0])
        given = [
            f"{name}={_number(float(value[index]))}"
            for name, value in inputs.items()
            if isinstance(value, torch.Tensor) and tuple(value.shape) == tuple(out.shape)
        ]
        where = f"element {list(index)}" + (f" ({', '.join(given)})" if given else "")
        notes.append(
            f"{label} at {count}: e.g. {where} gave {_number(float(out[index]))}, "
            f"reference {_number(float(ref[index]))}"
        )
    return "; ".join([message, *notes])


def _record(
    kernel: str,
    dtype: str,
    case: str,
    status: str,
    *,
    message: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kernel": kernel,
        "dtype": dtype,
        "case": case,
        "status": status,
        "error_class": None,
        "code": None,
        "reason": None,
        "message": message,
        "stats": None,
        "output_digest": None,
        "shape": None,
        "flops": None,
        "bytes": None,
    }
    record.update(extra)
    return record


def _outcome(
    kernel: str, dtype: str, case: str, outcome: Classified, message: str, **extra: Any
) -> dict[str, Any]:
    """The record of a case that did not produce a judged result: its status, code and reason."""
    return _record(kernel, dtype, case, message=message, **outcome.fields(), **extra)


def _error_message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]


def run_case(
    kernel: Kernel,
    case: Case,
    dtype: str,
    challenge: str,
    backend: Any,
    timer: SuiteTimer | None = None,
    commitment: OutputCommitment | None = None,
) -> dict[str, Any]:
    """Runs one case end to end and returns its record; never raises for a kernel's fault.

    The judge's half runs here: inputs from the challenge, the float64 reference, the comparison.
    The device's half (layout, device call) runs behind ``device.run_kernel``: in the device
    process for a ``DeviceClient``, in this process for a Backend object (runners/device). A case
    whose dimensions are still ranges is drawn from the challenge first; the record carries the
    drawn dimensions (`dims`). A case judged pass or fail has its output committed (digest in
    ``commitment``, raw output kept in its store) for the platform's reveal.
    """
    timer = timer or SuiteTimer()
    device = as_device(backend)
    case = case.draw(challenge, kernel.name)
    base: dict[str, Any] = {
        "edge": case.edge,
        "dims": dict(case.dims),
        "flops": kernel.flops(case),
        "bytes": kernel.bytes(case, dtype),
    }
    try:
        raw = kernel.generate(case, dtype, case_generator(challenge, kernel.name, case.name, dtype))
        input_digest = inputs_digest(raw)
        host_inputs = kernel.arrange(dict(raw), case)
        started = time.perf_counter()
        out_dtype = kernel.output_dtype(dtype)
        wide = {k: _widen(v) for k, v in host_inputs.items()}
        expected = kernel.reference(wide).to(out_dtype)
        bound = kernel.error_bound(wide, case, dtype)
        timer.reference_s += time.perf_counter() - started
        tolerance = kernel.tolerance(case, dtype)
    except Exception as exc:
        return _outcome(
            kernel.name,
            dtype,
            case.name,
            classify_exception(exc, phase="harness"),
            f"building inputs or reference: {_error_message(exc)}",
            **base,
        )
    base.update(input_digest=input_digest, reference_digest=tensor_digest(expected))
    called = device.run_kernel(kernel, case, dtype, raw)
    timer.device_s += called.device_s
    if called.output is None:
        outcome = called.outcome or error(PRODUCT_FAILURE, "no output")
        return _outcome(kernel.name, dtype, case.name, outcome, called.message or outcome.reason, **base)
    result = called.output.detach().to("cpu")
    base.update(shape=list(result.shape), output_digest=tensor_digest(result))
    if tuple(result.shape) != tuple(expected.shape):
        return _outcome(
            kernel.name,
            dtype,
            case.name,
            error(PRODUCT_FAILURE, "wrong shape"),
            f"wrong shape {tuple(result.shape)}, expected {tuple(expected.shape)}",
            **base,
        )
    if result.dtype != out_dtype:
        return _outcome(
            kernel.name,
            dtype,
            case.name,
            error(PRODUCT_FAILURE, "wrong dtype"),
            f"wrong dtype {result.dtype}, expected {out_dtype}",
            **base,
        )
    stats = compare(result, expected, tolerance.atol, tolerance.rtol, bound)
    if commitment is not None:
        commitment.record(conformance_output_id(kernel.name, dtype, case.name), result)
    stats.update(
        atol=tolerance.atol,
        rtol=tolerance.rtol,
        tolerance_source=tolerance.source,
        componentwise=bound is not None,
    )
    passed = stats["mismatches"] == 0
    message = None if passed else describe_mismatches(result, expected, stats, host_inputs, bound)
    return _record(
        kernel.name, dtype, case.name, "pass" if passed else "fail", message=message, stats=stats, **base
    )


def planned_cases(
    kernels: Iterable[str] | None,
    dtypes: Iterable[str] | None,
    cases: Iterable[str] | None = None,
    challenge: str | None = None,
) -> tuple[list[tuple[Kernel, str, Case]], list[dict[str, Any]]]:
    """The (kernel, dtype, case) triples a spec selects, and error records for unknown names.

    With `challenge`, every case comes with its dimensions drawn from it (Case.draw): the runner
    and the platform (apps/runs/services/coverage.py) draw the same shapes from the same challenge.
    """
    errors: list[dict[str, Any]] = []
    selected: list[Kernel] = []
    for name in kernels if kernels else [k.name for k in catalog_kernels()]:
        try:
            selected.append(get_kernel(name))
        except UnknownKernel:
            errors.append(
                _outcome(name, "*", "*", error(BAD_SPEC, "unknown kernel"), f"unknown kernel {name!r}")
            )
    wanted = list(dtypes) if dtypes else None
    for dtype in wanted or []:
        try:
            torch_dtype(dtype)
            known = any(dtype in k.dtypes for k in catalog_kernels())
        except ValueError:
            known = False
        if not known:
            errors.append(
                _outcome(
                    "*",
                    dtype,
                    "*",
                    error(BAD_SPEC, "unknown dtype"),
                    f"unknown dtype {dtype!r}: no catalog kernel runs it",
                )
            )
    plan = [
        (kernel, dtype, case if challenge is None else case.draw(challenge, kernel.name))
        for kernel in selected
        for dtype in kernel.dtypes
        if wanted is None or dtype in wanted
        for case in kernel.cases_for(dtype)
        if not cases or case.name in cases
    ]
    return plan, errors


@with_pinned_math_modes
def run_conformance(
    spec: dict[str, Any],
    backend: Any,
    progress: Progress | None = None,
    *,
    commitment: OutputCommitment | None = None,
) -> dict[str, Any]:
    """Runs the conformance suite the spec describes on `backend`; returns the result document.

    `backend` is a ``runners.device.client.DeviceClient`` (the vendor's stack in its own process;
    what the worker and the CLI pass) or a Backend object run in this process (runners/device).
    """
    from runners.document import build_document, now_iso

    commitment = commitment if commitment is not None else OutputCommitment()
    started_at = now_iso()
    timer = SuiteTimer()
    backend = as_device(backend)
    plan, cases = planned_cases(spec.get("kernels"), spec.get("dtypes"), spec.get("cases"), spec["challenge"])
    available, reason = backend.availability()
    # Unsupported is decided here, before any case runs, from what the backend declares.
    declaration = backend.support_declaration() if available else {"dtypes": [], "unsupported_kernels": {}}
    deadline = spec.get("limits", {}).get("time_s")
    for done, (kernel, dtype, case) in enumerate(plan, start=1):
        label = f"{kernel.name}/{dtype}/{case.name}"
        if progress:
            progress(done - 1, len(plan), label)
        if not available:
            cases.append(
                _outcome(
                    kernel.name,
                    dtype,
                    case.name,
                    error(INFRASTRUCTURE, "device unavailable"),
                    f"backend {backend.name} unavailable: {reason}",
                    dims=dict(case.dims),
                )
            )
        elif (outcome := declared_unsupported(declaration, kernel.name, dtype)) is not None:
            cases.append(
                _outcome(
                    kernel.name,
                    dtype,
                    case.name,
                    outcome,
                    f"{backend.name}: {outcome.reason}",
                    dims=dict(case.dims),
                )
            )
        elif deadline is not None and time.perf_counter() - timer.started > deadline:
            cases.append(
                _outcome(
                    kernel.name,
                    dtype,
                    case.name,
                    error(TIMEOUT, "job time limit"),
                    f"time limit of {deadline}s reached before this case",
                    dims=dict(case.dims),
                )
            )
        else:
            cases.append(run_case(kernel, case, dtype, spec["challenge"], backend, timer, commitment))
    if progress:
        progress(len(plan), len(plan), progress_label("done"))
    timings = timer.as_dict()
    transfer_s = getattr(backend, "transfer_s", None)
    if transfer_s is not None:
        timings["transfer_s"] = round(transfer_s, 4)
    return build_document(
        "conformance",
        spec,
        backend.fingerprint(),
        cases,
        timings,
        started_at,
        support=declaration,
        process_isolation=backend.isolation(),
        commitment=commitment.section(),
    )


def recompute_case(
    kernel: str | Kernel, dtype: str, case: str | Case, challenge: str, device: str = "cpu"
) -> dict[str, Any]:
    """Recomputes one case from the challenge alone, for the platform's server-side spot check.

    `input_digest` depends only on the challenge (the CPU generator is the same everywhere)
    and must equal the runner's; `reference_digest` is the float64 reference rounded to the
    output dtype, equal to the runner's unless the two hosts' float64 BLAS differ in the last
    bit before that rounding; `output_digest` and `stats` are this host's own device result
    (for a cpu target, the same torch build gives the same digest).
    """
    kernel_obj = kernel if isinstance(kernel, Kernel) else get_kernel(kernel)
    case_obj = case if isinstance(case, Case) else kernel_obj.case(case)
    return run_case(
        kernel_obj, case_obj.draw(challenge, kernel_obj.name), dtype, challenge, get_backend(device)
    )
