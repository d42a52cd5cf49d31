"""Integration tests need PostgreSQL (shared with worker processes) and a reachable broker."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

REDIS_URL = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/0"
RABBITMQ_URL = os.environ.get("RABBITMQ_URL") or "amqp://guest:guest@127.0.0.1:5672//"


def reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_only(transactional_db):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("worker processes share the test database: set DATABASE_URL to PostgreSQL (CI does)")


@pytest.fixture
def redis_url():
    if not REDIS_URL.startswith("redis") or not reachable(REDIS_URL):
        pytest.skip(f"no Redis broker at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def rabbitmq_url():
    if not reachable(RABBITMQ_URL):
        pytest.skip(f"no RabbitMQ broker at {RABBITMQ_URL}")
    return RABBITMQ_URL
