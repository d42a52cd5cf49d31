"""The platform's Celery app: ingestion, sweeps and schedules on the `platform` queue."""

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "certification.settings")

app = Celery("certification")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _serve_metrics(**kwargs: Any) -> None:
    """Each worker process serves its metrics on the first free port from PLATFORM_METRICS_PORT."""
    from django.conf import settings

    if settings.PLATFORM_METRICS_PORT:
        from django_prometheus.exports import SetupPrometheusEndpointOnPortRange

        start = settings.PLATFORM_METRICS_PORT
        SetupPrometheusEndpointOnPortRange(range(start, start + 64))


# Connected by a call, not as a decorator: celery ships no types, and an untyped decorator would
# make the function untyped to mypy.
signals.worker_process_init.connect(_serve_metrics)


def embedded_broker_ready() -> None:
    """The embedded broker's folders exist before anything publishes to or consumes from them."""
    from pathlib import Path

    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        folder = (app.conf.broker_transport_options or {}).get(key)
        if folder and str(app.conf.broker_write_url).startswith("filesystem"):
            Path(folder).mkdir(parents=True, exist_ok=True)
