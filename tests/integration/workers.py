"""Real Celery worker processes for the integration tests: the platform's and a runner host's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    """The URL of the database this test session uses, for worker processes to share it."""
    db = connection.settings_dict
    port = db.get("PORT") or 5432
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgresql://{auth}@{db.get('HOST') or '127.0.0.1'}:{port}/{db['NAME']}"


class Worker:
    """A `celery worker` subprocess in its own process group, with its output kept for diagnosis."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                *args,
                "-l",
                "info",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"{name}-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    @property
    def output(self) -> str:
        """The last 80 lines without the heartbeats (every 2 s, they pushed a failing ingest's
        traceback out of the window and hid the cause of a test failure)."""
        lines = [line for line in self.lines if "runs.heartbeat[" not in line]
        return "\n".join(lines[-80:])

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(" ready." in line for line in self.lines):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"worker {self.name} did not start:\n{self.output}")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children), as a crash or OOM kill would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def platform_env(broker_url: str, var_dir: Path, media_root: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": "",
        "CERT_VAR_DIR": str(var_dir),
        "SECRET_KEY": "integration-test-key",
        "ARTIFACT_STORAGE_DIR": str(media_root),
    }


def platform_worker(broker_url: str, var_dir: Path, media_root: Path) -> Worker:
    return Worker(
        "platform",
        ["-A", "certification", "worker", "-Q", "platform", "--concurrency", "2"],
        platform_env(broker_url, var_dir, media_root),
    )


def runner_worker(
    broker_url: str, queue: str, runner_name: str, key_file: Path, *, output_dir: Path | None = None
) -> Worker:
    # The runner host gets the broker and its key, nothing else: no database, no Django settings.
    env = {
        "CELERY_BROKER_URL": broker_url,
        "RUNNER_NAME": runner_name,
        "RUNNER_KEY_FILE": str(key_file),
        "RUNNER_HEARTBEAT_SECONDS": "2",
    }
    if output_dir is not None:  # the host's store of raw outputs until the platform's reveal
        env["RUNNER_OUTPUT_DIR"] = str(output_dir)
    return Worker("runner", ["-A", "runners.worker", "worker", "-Q", queue, "--concurrency", "1"], env)


def wait_for(predicate, timeout: float, what: str, workers: list[Worker]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    logs = "\n\n".join(f"--- {w.name} ---\n{w.output}" for w in workers)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")
