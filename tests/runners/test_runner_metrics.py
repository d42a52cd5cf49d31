"""The runner worker's own Prometheus endpoint (RUNNER_METRICS_PORT, runners/metrics.py; issue 18).

Run in a fresh interpreter: prometheus-client picks its value store at import, and this test process
imported it long ago (django-prometheus). There, as under Celery's prefork pool, the jobs run in a
forked child process and the heartbeats in the main one, which serves the sum of both.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

WORKER = r"""
import json, multiprocessing, sys, urllib.request
from runners import worker, metrics

class Identity:
    @staticmethod
    def from_env():
        return None

def child(outcome_envelope):
    worker.RunnerIdentity = Identity
    worker.run_job = lambda spec, **kwargs: outcome_envelope
    worker.execute({"job_id": 7})

port = metrics.serve()
context = multiprocessing.get_context("fork")
for envelope in ({"payload": "signed"}, None, {"payload": "signed again"}):
    process = context.Process(target=child, args=(envelope,))
    process.start()
    process.join(30)
    assert process.exitcode == 0, process.exitcode
metrics.heartbeat(sent=True)
metrics.heartbeat(sent=False)
text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
print(json.dumps({"port": port, "text": text}))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_worker_script(tmp_path, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in {"RUNNER_METRICS_PORT", "PROMETHEUS_MULTIPROC_DIR"}
    }
    env.update(environment)
    return subprocess.run(
        [sys.executable, "-c", WORKER], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def samples(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


@pytest.mark.skipif(sys.platform != "linux", reason="fork, as Celery's prefork pool")
def test_jobs_in_pool_processes_and_heartbeats_add_up_on_the_main_process_endpoint(tmp_path):
    port = free_port()
    store = tmp_path / "multiproc"
    store.mkdir()
    done = run_worker_script(tmp_path, RUNNER_METRICS_PORT=str(port), PROMETHEUS_MULTIPROC_DIR=str(store))
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["port"] == port
    values = samples(answer["text"])
    assert values['runner_jobs_total{outcome="signed"}'] == 2
    assert values['runner_jobs_total{outcome="failed"}'] == 1
    assert values["runner_job_seconds_count"] == 3
    assert values['runner_heartbeats_total{result="sent"}'] == 1
    assert values['runner_heartbeats_total{result="not_sent"}'] == 1
    assert values["runner_last_heartbeat_timestamp_seconds"] > 1.7e9
    assert list(store.iterdir())  # the values went through the multiprocess store


def test_without_the_port_nothing_is_served_or_counted(monkeypatch):
    from runners import metrics

    monkeypatch.delenv("RUNNER_METRICS_PORT", raising=False)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setattr(metrics, "_metrics", {})
    assert metrics.configure() is False and "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert metrics.serve() is None
    metrics.job_finished("signed", 1.0)
    metrics.heartbeat(sent=True)
    assert metrics._metrics == {}  # no metric was even created


def test_a_bad_port_is_refused(monkeypatch):
    from runners import metrics

    monkeypatch.setenv("RUNNER_METRICS_PORT", "70000")
    with pytest.raises(ValueError, match="not a TCP port"):
        metrics.port()
    monkeypatch.setenv("RUNNER_METRICS_PORT", "")
    assert metrics.port() is None and metrics.configure() is False
