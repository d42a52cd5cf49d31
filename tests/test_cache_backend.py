"""The Redis cache backend reuses one client per connection pool and behaves as Django's (real Redis)."""

from __future__ import annotations

import os
import secrets

import pytest

REDIS = os.environ.get("TEST_CACHE_URL") or os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_cache():
    if not REDIS.startswith("redis://"):
        pytest.skip("no Redis to test against")
    from certification.cache import RedisCache

    return RedisCache(REDIS, {"KEY_PREFIX": "test-cache-backend-" + secrets.token_hex(4), "TIMEOUT": 60})


def test_one_client_serves_every_operation(redis_cache):
    client = redis_cache._cache
    assert client.get_client() is client.get_client() is client.get_client(write=True)


def test_it_stores_reads_and_deletes_as_djangos_backend(redis_cache):
    redis_cache.set("key", {"body": b"\x00bytes"}, 30)
    assert redis_cache.get("key") == {"body": b"\x00bytes"}
    assert redis_cache.get_many(["key", "missing"]) == {"key": {"body": b"\x00bytes"}}
    assert redis_cache.add("key", "other") is False
    redis_cache.delete("key")
    assert redis_cache.get("key") is None
