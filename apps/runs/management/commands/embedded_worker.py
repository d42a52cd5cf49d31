"""Run the embedded default's background workers (the platform's and this machine's runner)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.runs.embedded import embedded_worker_running, embedded_workers_supervise


class Command(BaseCommand):
    help = (
        "Without CELERY_BROKER_URL: run the platform worker (with the schedules) and the local runner's "
        "worker on the broker in files under var/broker, until stopped or the parent process ends."
    )

    def add_arguments(self, parser):
        parser.add_argument("--log-level", default="warning", help="the Celery workers' log level")

    def handle(self, *args, log_level: str, **options):
        if not settings.CELERY_EMBEDDED:
            raise CommandError(
                "CELERY_BROKER_URL is set: run `celery -A certification worker -Q platform` and "
                "the runner hosts' workers instead (README, Production)."
            )
        if embedded_worker_running():
            self.stdout.write("The embedded worker of this checkout is already running.")
            return
        self.stdout.write(f"Embedded worker: broker in {settings.EMBEDDED_BROKER_DIR}")
        embedded_workers_supervise(log_level=log_level)
