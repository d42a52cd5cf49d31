"""The suites a runner can execute, by name: spec and backend in, result document out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Progress = Callable[..., None]  # progress(fraction, message="", eta_seconds=None)


def _conformance(spec: dict[str, Any], backend, progress: Progress) -> dict[str, Any]:
    from runners.conformance import run_conformance

    return run_conformance(spec, backend, lambda done, total, label: progress(done / max(total, 1), label))


def _performance(spec: dict[str, Any], backend, progress: Progress) -> dict[str, Any]:
    from runners.performance import run_performance

    return run_performance(spec, backend, lambda done, total, label: progress(done / max(total, 1), label))


def _model(spec: dict[str, Any], backend, progress: Progress) -> dict[str, Any]:
    from runners.model_suite import run_model

    return run_model(spec, backend, lambda done, total, label: progress(done / max(total, 1), label))


SUITES: dict[str, Callable[[dict[str, Any], Any, Progress], dict[str, Any]]] = {
    "conformance": _conformance,
    "performance": _performance,
    "model": _model,
}


def run_suite(spec: dict[str, Any], *, backend, progress: Progress) -> dict[str, Any]:
    suite = spec.get("suite")
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; this runner knows {sorted(SUITES)}")
    return SUITES[suite](spec, backend, progress)
