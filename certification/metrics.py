"""Prometheus metrics at /metrics: django-prometheus's request, response and database metrics, and the
platform's own, read from the database at each scrape:

- certification_jobs{state, target}: jobs by state and hardware target;
- certification_queue_oldest_job_age_seconds{target}: age of the oldest queued job per target;
- certification_runner_last_seen_age_seconds{runner}: seconds since each runner's last signed message;
- certification_certificates{status}: certificates by status;
- certification_ingestion_seconds and certification_spot_check_seconds (histograms): observed by the
  platform's Celery workers, which serve them on PLATFORM_METRICS_PORT when it is set.

Target slugs are vendors' private data, so /metrics answers only a request bearing METRICS_TOKEN, or,
without a token configured, a direct request from this host (loopback, no X-Forwarded-For).
With several gunicorn workers set PROMETHEUS_MULTIPROC_DIR so that every worker's counters are summed.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator

import prometheus_client
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily

# The histograms live apart (they import no app) so that the apps that observe them stay below this
# module's layer; imported here so that /metrics serves them.
from certification.instruments import INGESTION_SECONDS, SPOT_CHECK_SECONDS  # noqa: F401

LOOPBACK = {"127.0.0.1", "::1"}


class PlatformCollector:
    """Gauges computed from the database when scraped (a handful of grouped queries)."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric names, without touching the database (prometheus_client asks at registration)."""
        yield GaugeMetricFamily("certification_jobs", "Jobs by state and target", labels=["state", "target"])
        yield GaugeMetricFamily(
            "certification_queue_oldest_job_age_seconds", "Age of the oldest queued job", labels=["target"]
        )
        yield GaugeMetricFamily(
            "certification_runner_last_seen_age_seconds", "Runner last seen age", labels=["runner"]
        )
        yield GaugeMetricFamily("certification_certificates", "Certificates by status", labels=["status"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db.models import Count, Min

        from apps.certificates.models import Certificate
        from apps.registry.models import Runner
        from apps.runs.models import Job, JobState

        now = timezone.now()
        jobs = GaugeMetricFamily("certification_jobs", "Jobs by state and target", labels=["state", "target"])
        for row in Job.objects.values("state", "campaign__target__slug").annotate(n=Count("id")).order_by():
            jobs.add_metric([row["state"], row["campaign__target__slug"]], row["n"])
        yield jobs
        oldest = GaugeMetricFamily(
            "certification_queue_oldest_job_age_seconds",
            "Age of the oldest queued job per target",
            labels=["target"],
        )
        queued = (
            Job.objects.filter(state=JobState.QUEUED, queued_at__isnull=False)
            .values("campaign__target__slug")
            .annotate(first=Min("queued_at"))
            .order_by()
        )
        for first in queued:
            oldest.add_metric([first["campaign__target__slug"]], (now - first["first"]).total_seconds())
        yield oldest
        seen = GaugeMetricFamily(
            "certification_runner_last_seen_age_seconds",
            "Seconds since each runner's last signed message",
            labels=["runner"],
        )
        for name, last in Runner.objects.filter(last_heartbeat_at__isnull=False).values_list(
            "name", "last_heartbeat_at"
        ):
            if last is not None:  # filtered above; the column is nullable
                seen.add_metric([name], (now - last).total_seconds())
        yield seen
        certificates = GaugeMetricFamily(
            "certification_certificates", "Certificates by status", labels=["status"]
        )
        for status in Certificate.objects.values("status").annotate(n=Count("id")).order_by():
            certificates.add_metric([status["status"]], status["n"])
        yield certificates


_collector = PlatformCollector()
prometheus_client.REGISTRY.register(_collector)


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode())
    return request.META.get("REMOTE_ADDR") in LOOPBACK and "X-Forwarded-For" not in request.headers


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse(
            "Forbidden: /metrics needs METRICS_TOKEN.\n", status=403, content_type="text/plain"
        )
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(_collector)
    else:
        registry = prometheus_client.REGISTRY
    return HttpResponse(
        prometheus_client.generate_latest(registry), content_type=prometheus_client.CONTENT_TYPE_LATEST
    )


def serve_worker_metrics(port: int | None) -> None:
    """A Celery worker's own metrics (the histograms above) on `port`, when one is configured."""
    if port:
        prometheus_client.start_http_server(port)
