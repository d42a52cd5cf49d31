"""The platform's Celery app: ingestion, sweeps and schedules on the `platform` queue."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "certification.settings")

app = Celery("certification")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
