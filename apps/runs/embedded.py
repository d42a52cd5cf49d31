"""The embedded default's worker processes: the platform's and this machine's runner, on the broker in
files under var/broker. They are the same `celery worker` commands a production deployment runs
against Redis or RabbitMQ, started as subprocesses by `manage.py embedded_worker` (`make run`) or, for
its own duration, by `manage.py certify` when none is running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

from apps.registry.models import Runner

# What the runner host's process must not inherit: it holds no database credentials nor platform secrets.
_PLATFORM_ONLY_ENV = ("DATABASE_URL", "SECRET_KEY", "SECRET_KEY_FILE", "DJANGO_SETTINGS_MODULE")


def embedded_pid_file() -> Path:
    return Path(settings.EMBEDDED_BROKER_DIR) / "worker.pid"


def embedded_worker_running() -> bool:
    """True when an `embedded_worker` supervisor of this checkout is alive."""
    try:
        pid = int(embedded_pid_file().read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def embedded_runner_queues() -> list[str]:
    runner = Runner.objects.filter(name=settings.EMBEDDED_RUNNER_NAME).first()
    if runner is None:
        return []
    return sorted(target.queue for target in runner.targets.all())


class EmbeddedWorkers:
    """Starts and stops the two worker processes; `check()` restarts the runner's when its queues change."""

    def __init__(self, *, log_level: str = "warning", stdout=None) -> None:
        self.log_level, self.stdout = log_level, stdout
        self.platform: subprocess.Popen | None = None
        self.runner: subprocess.Popen | None = None
        self.runner_queues: list[str] = []

    def _spawn(self, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(  # noqa: S603 - argv of this interpreter and Celery, no shell
            [
                sys.executable,
                "-m",
                "celery",
                *args,
                "-l",
                self.log_level,
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=self.stdout,
            stderr=subprocess.STDOUT if self.stdout else None,
            start_new_session=True,
        )

    def start(self) -> EmbeddedWorkers:
        from certification.celery import embedded_broker_ready

        embedded_broker_ready()
        # -B: the embedded platform worker also runs the schedules (sweeps, expiry, surveillance).
        self.platform = self._spawn(
            [
                "-A",
                "certification",
                "worker",
                "-Q",
                "platform",
                "--concurrency",
                "1",
                "-B",
                "-n",
                f"platform-embedded-{os.getpid()}@%h",
            ],
            dict(os.environ),
        )
        self.check()
        return self

    def check(self) -> bool:
        """Whether every started process is alive; (re)starts the runner's for the current target queues."""
        queues = embedded_runner_queues()
        if queues != self.runner_queues or (self.runner is not None and self.runner.poll() is not None):
            self._stop(self.runner)
            self.runner, self.runner_queues = None, queues
            if queues:
                env = {k: v for k, v in os.environ.items() if k not in _PLATFORM_ONLY_ENV}
                env.update(
                    CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
                    CELERY_BROKER_TRANSPORT_OPTIONS=json.dumps(settings.CELERY_BROKER_TRANSPORT_OPTIONS),
                    RUNNER_NAME=settings.EMBEDDED_RUNNER_NAME,
                    RUNNER_KEY_FILE=str(settings.EMBEDDED_RUNNER_KEY_FILE),
                )
                # --statedb: revocations (cancelled jobs) outlive a restart of the runner's worker.
                self.runner = self._spawn(
                    [
                        "-A",
                        "runners.worker",
                        "worker",
                        "-Q",
                        ",".join(queues),
                        "--concurrency",
                        "1",
                        "--statedb",
                        str(Path(settings.EMBEDDED_BROKER_DIR) / "runner-worker.state"),
                        "-n",
                        f"runner-embedded-{os.getpid()}@%h",
                    ],
                    env,
                )
        return self.platform is not None and self.platform.poll() is None

    @staticmethod
    def _stop(*processes: subprocess.Popen | None, grace_s: float = 8.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL for what is still running after `grace_s`: a job cut
        short this way is requeued with a fresh challenge by the stuck-job sweep."""
        running = [p for p in processes if p is not None and p.poll() is None]
        for process in running:
            os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in running:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def stop(self) -> None:
        self._stop(self.runner, self.platform)

    def __enter__(self) -> EmbeddedWorkers:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def embedded_workers_supervise(*, log_level: str = "warning", check_every_s: float = 10.0) -> None:
    """Run the embedded workers until SIGTERM/SIGINT, the parent process ends, or the platform worker dies."""
    pid_file = embedded_pid_file()
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(os.getpid()))
    parent = os.getppid()
    stopping = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.append(True))
    workers = EmbeddedWorkers(log_level=log_level)
    try:
        workers.start()
        last_check = time.monotonic()
        while not stopping and os.getppid() == parent:
            time.sleep(0.5)
            if time.monotonic() - last_check >= check_every_s:
                last_check = time.monotonic()
                if not workers.check():
                    break
    finally:
        workers.stop()
        if pid_file.read_text().strip() == str(os.getpid()):
            pid_file.unlink(missing_ok=True)
