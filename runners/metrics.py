"""The runner worker's own Prometheus metrics, served on RUNNER_METRICS_PORT when it is set (issue 18).

    runner_jobs_total{outcome}                 jobs this worker finished: signed (an envelope sent),
                                               failed (a signed failure reported), error (the task
                                               raised or passed its hard time limit)
    runner_job_seconds                         wall time of each job (histogram)
    runner_heartbeats_total{result}            heartbeats sent or not sent (broker down, device listing)
    runner_last_heartbeat_timestamp_seconds    Unix time of the last heartbeat sent

Celery runs each job in a pool process and the heartbeats in the worker's main process, so the
counters use prometheus-client's multiprocess mode: every process writes its values to files under
PROMETHEUS_MULTIPROC_DIR (a fresh temporary folder unless the environment names one), and the main
process's endpoint adds them up. `configure()` must run before anything imports prometheus_client:
the library picks its value store once, at import.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

PORT_VARIABLE = "RUNNER_METRICS_PORT"
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
OUTCOMES = ("signed", "failed", "error")
# Jobs last from seconds (a smoke suite) to hours (a full program on a slow device).
JOB_SECONDS_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)

_metrics: dict[str, Any] = {}


def port() -> int | None:
    """The port from RUNNER_METRICS_PORT, or None when metrics are off; a bad value is an error."""
    text = os.environ.get(PORT_VARIABLE, "").strip()
    if not text:
        return None
    value = int(text)
    if not 1 <= value <= 65535:
        raise ValueError(f"{PORT_VARIABLE}={text}: not a TCP port")
    return value


def configure() -> bool:
    """Choose the multiprocess store (before prometheus_client's import); True when metrics are on."""
    if port() is None:
        return False
    if not os.environ.get(MULTIPROC_VARIABLE):
        os.environ[MULTIPROC_VARIABLE] = tempfile.mkdtemp(prefix="runner-metrics-")
    return True


def _get(name: str) -> Any:
    if not _metrics:
        from prometheus_client import Counter, Gauge, Histogram

        _metrics["jobs"] = Counter("runner_jobs", "Jobs this runner worker finished, by outcome", ["outcome"])
        _metrics["job_seconds"] = Histogram(
            "runner_job_seconds", "Wall time of a job on this runner worker", buckets=JOB_SECONDS_BUCKETS
        )
        _metrics["heartbeats"] = Counter(
            "runner_heartbeats", "Heartbeats this runner worker sent or failed to send", ["result"]
        )
        _metrics["last_heartbeat"] = Gauge(
            "runner_last_heartbeat_timestamp_seconds",
            "Unix time of the last heartbeat sent",
            multiprocess_mode="max",
        )
    return _metrics[name]


def job_finished(outcome: str, seconds: float | None) -> None:
    if port() is None:
        return
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown job outcome {outcome!r}")
    _get("jobs").labels(outcome=outcome).inc()
    if seconds is not None:
        _get("job_seconds").observe(max(0.0, seconds))


def heartbeat(sent: bool) -> None:
    if port() is None:
        return
    _get("heartbeats").labels(result="sent" if sent else "not_sent").inc()
    if sent:
        _get("last_heartbeat").set(time.time())


def serve() -> int | None:
    """Start the endpoint in this (the worker's main) process; returns its port, None when off."""
    chosen = port()
    if chosen is None:
        return None
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(chosen, registry=registry)
    return chosen
