"""The suites a runner can execute, by name: spec and backend in, result document out.

One registry for the CLI and the Celery worker; a host may register a vendor-specific suite.
Each suite reports `progress(done, total, label)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runners.conformance import Progress, run_conformance
from runners.model_suite import run_model
from runners.performance import run_performance


def run_serving(
    spec: dict[str, Any], backend: Any, progress: Progress | None = None, *, commitment: Any = None
) -> dict[str, Any]:
    """The serving suite (runners/serving), imported on use: it needs mlcommons-loadgen."""
    from runners.serving import run_serving as serving

    return serving(spec, backend, progress, commitment=commitment)


def run_collectives(spec: dict[str, Any], backend: Any, progress: Progress | None = None) -> dict[str, Any]:
    """The collectives suite (runners/collectives), imported on use: it spawns one process per device."""
    from runners.collectives import run_collectives as collectives

    return collectives(spec, backend, progress)


# (spec, backend, progress) -> document; the committing suites also take `commitment=` (keyword).
Suite = Callable[..., dict[str, Any]]

SUITES: dict[str, Suite] = {
    "conformance": run_conformance,
    "performance": run_performance,
    "model": run_model,
    "serving": run_serving,
    "collectives": run_collectives,
}


# The suites whose judged outputs are committed for the platform's reveal (runners/commitment.py).
COMMITTING_SUITES = frozenset({"conformance", "performance", "model", "serving"})


def run_suite(
    spec: dict[str, Any], *, backend: Any, progress: Callable[..., None], commitment: Any = None
) -> dict[str, Any]:
    """Run the spec's suite; `progress(fraction, message)` gets the share of work done.

    `commitment` (runners.commitment.OutputCommitment) receives the digest of every judged output and
    keeps the raw outputs for the platform's reveal; without one the document still commits, but the
    outputs are not kept."""
    suite = SUITES.get(str(spec.get("suite")))
    if suite is None:
        raise ValueError(f"unknown suite {spec.get('suite')!r}; this runner knows {sorted(SUITES)}")
    report = lambda done, total, label: progress(done / max(total, 1), label)  # noqa: E731
    if commitment is None or spec.get("suite") not in COMMITTING_SUITES:
        return suite(spec, backend, report)
    return suite(spec, backend, report, commitment=commitment)
