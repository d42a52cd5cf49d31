"""Operators' probes and metrics: /healthz, /readyz (503 naming what failed), /metrics."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from certification.celery import app


@pytest.fixture
def programs(db):
    from tests.certificates.evidence import aia_program

    return aia_program()


@pytest.fixture
def real_broker(monkeypatch):
    """The Redis broker of the tests' DB 6 (a real server), or skip where none runs."""
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, db=6, socket_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    monkeypatch.setattr(app.conf, "broker_write_url", "redis://127.0.0.1:6379/6")


def test_healthz_answers_without_touching_anything(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readyz_is_ready_with_every_check_named_and_timed(client, programs, real_broker):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert set(body["checks"]) == {"database", "migrations", "broker", "signing_key", "programs"}
    for check in body["checks"].values():
        assert check["status"] == "ok" and check["latency_ms"] >= 0
    assert "connected" in body["checks"]["broker"]["detail"]


def test_readyz_is_503_naming_the_broker_when_it_is_down(client, programs, monkeypatch):
    monkeypatch.setattr(app.conf, "broker_write_url", "redis://127.0.0.1:1/0")  # nothing listens there
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["failed"] == ["broker"] and "broker" in body["message"]
    assert body["checks"]["database"]["status"] == "ok"


def test_readyz_is_503_when_the_signing_key_file_is_gone(client, programs):
    from apps.certificates.services.keys import signing_key_active, signing_key_path

    key = signing_key_active()
    signing_key_path(key.key_id).unlink()
    body = client.get("/readyz").json()
    assert "signing_key" in body["failed"] and key.key_id in body["checks"]["signing_key"]["detail"]


def test_readyz_is_503_without_a_program(client, db):
    response = client.get("/readyz")
    assert response.status_code == 503 and "programs" in response.json()["failed"]


def test_readyz_is_503_naming_a_migration_not_applied(client, programs):
    from django.db import connection

    with connection.cursor() as cursor:  # as if the newest registry migration had not run (rolled back)
        cursor.execute(
            "DELETE FROM django_migrations WHERE app = 'registry' AND name = "
            "(SELECT max(name) FROM django_migrations WHERE app = 'registry')"
        )
    response = client.get("/readyz")
    assert response.status_code == 503 and "migrations" in response.json()["failed"]
    assert "1 migrations not applied (registry." in response.json()["checks"]["migrations"]["detail"]


def _queued_job(cast, programs, queued_minutes_ago: int):
    from apps.runs.models import Campaign, CampaignState, Job, JobState
    from tests.factories import ChipFactory, HardwareTargetFactory

    target = HardwareTargetFactory(chip=ChipFactory(vendor=cast.vendor), slug="acme-one-cuda")
    campaign = Campaign.objects.create(
        vendor=cast.vendor, target=target, program=programs, level="baseline", state=CampaignState.RUNNING
    )
    return Job.objects.create(
        campaign=campaign,
        suite="conformance",
        state=JobState.QUEUED,
        challenge="0" * 64,
        queued_at=timezone.now() - timedelta(minutes=queued_minutes_ago),
    )


def test_metrics_expose_jobs_and_the_oldest_queued_age_per_target(client, cast, programs):
    _queued_job(cast, programs, queued_minutes_ago=10)
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'certification_jobs{state="queued",target="acme-one-cuda"} 1.0' in text
    line = next(
        row for row in text.splitlines() if row.startswith("certification_queue_oldest_job_age_seconds{")
    )
    assert 'target="acme-one-cuda"' in line and 590 < float(line.split()[-1]) < 700
    assert "django_http_requests_total_by_method_total" in text  # django-prometheus's own
    assert "certification_ingestion_seconds_bucket" in text


def test_metrics_are_refused_through_a_proxy_and_need_the_token_when_one_is_set(client, db, settings):
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200


def test_metrics_expose_runner_last_seen_age_and_certificates_by_status(client, cast, programs):
    from apps.certificates.models import Certificate
    from apps.registry.models import Runner
    from tests.factories import ChipFactory, RunnerFactory
    from tests.procurement.evidence import certify

    seen = RunnerFactory(name="seen-runner")
    Runner.objects.filter(pk=seen.pk).update(last_heartbeat_at=timezone.now() - timedelta(minutes=5))
    RunnerFactory(name="silent-runner")  # never heard from: no age to report
    made = [
        certify(vendor=cast.vendor, program=programs, chip=ChipFactory(vendor=cast.vendor, sku=f"MET-{i}"))
        for i in range(3)
    ]
    Certificate.objects.filter(pk=made[0].pk).update(status="suspended")
    text = client.get("/metrics").content.decode()
    rows = {
        line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line[:1] != "#"
    }
    assert 290 < rows['certification_runner_last_seen_age_seconds{runner="seen-runner"}'] < 400
    assert not any('runner="silent-runner"' in name for name in rows)
    assert rows['certification_certificates{status="active"}'] == 2
    assert rows['certification_certificates{status="suspended"}'] == 1
    assert "certification_spot_check_seconds_bucket" in text
