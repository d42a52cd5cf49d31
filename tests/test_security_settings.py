"""Transport security with HTTPS=1 and the shared cache's configuration, each in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
client = Client()
plain = client.get("/login/")
secure = client.get("/login/", secure=True, headers={"X-Forwarded-Proto": "https"})
print(json.dumps({
    "plain_status": plain.status_code, "plain_location": plain.get("Location", ""),
    "secure_status": secure.status_code, "hsts": secure.get("Strict-Transport-Security", ""),
    "csrf_cookie_secure": bool(secure.cookies["csrftoken"]["secure"]) if "csrftoken" in secure.cookies
                          else None,
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE, "csp": secure.get("Content-Security-Policy", ""),
    "cache": settings.CACHES["default"]["BACKEND"],
}))
"""


def probe(tmp_path, **env) -> dict:
    clean = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CERT_VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "x" * 50,
        "DJANGO_SETTINGS_MODULE": "certification.settings",
        **env,
    }
    result = subprocess.run(  # noqa: S603 - our own interpreter on a fixed command
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_https_redirects_plain_http_and_sends_hsts_and_secure_cookies(tmp_path):
    seen = probe(tmp_path, HTTPS="1")
    assert seen["plain_status"] == 301 and seen["plain_location"].startswith("https://")
    assert seen["secure_status"] == 200
    assert seen["hsts"].startswith("max-age=31536000")
    assert seen["csrf_cookie_secure"] is True and seen["session_cookie_secure"] is True
    assert "script-src 'self'" in seen["csp"]


@pytest.mark.slow
def test_without_https_nothing_redirects(tmp_path):
    seen = probe(tmp_path)
    assert seen["plain_status"] == 200 and seen["hsts"] == ""
    assert seen["cache"] == "django.core.cache.backends.db.DatabaseCache", "never a per-process memory cache"


@pytest.mark.slow
def test_cache_url_selects_redis_and_a_bad_one_stops_start_up(tmp_path):
    assert probe(tmp_path, CACHE_URL="redis://127.0.0.1:6379/5")["cache"] == "certification.cache.RedisCache"
    clean = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "SECRET_KEY": "x" * 50,
        "CACHE_URL": "memcached://somewhere",
    }
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", "import certification.settings"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and "CACHE_URL" in result.stderr


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url("redis://127.0.0.1:6379/5", socket_timeout=1).ping())
    except Exception:  # noqa: BLE001 - any failure means no Redis here
        return False


@pytest.mark.integration
@pytest.mark.skipif(not _redis_up(), reason="no Redis at 127.0.0.1:6379")
def test_throttle_counters_live_in_redis_when_cache_url_names_it(db, settings, monkeypatch):
    import redis
    from rest_framework.test import APIClient
    from rest_framework.throttling import SimpleRateThrottle

    settings.CACHES = {
        "default": {
            "BACKEND": "certification.cache.RedisCache",
            "LOCATION": os.environ.get("TEST_CACHE_URL", "redis://127.0.0.1:6379/5"),
            "KEY_PREFIX": "limits-test",
        }
    }
    from django.core.cache import cache

    monkeypatch.setattr(SimpleRateThrottle, "cache", cache)
    monkeypatch.setattr(
        SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, "anon": "2/min"}
    )
    cache.delete("throttle_anon_10.4.4.4")
    client = APIClient(REMOTE_ADDR="10.4.4.4")
    assert [client.get("/api/v1/certificates/").status_code for _ in range(3)] == [200, 200, 429]
    keys = redis.Redis.from_url("redis://127.0.0.1:6379/5").keys("limits-test:*throttle_anon_10.4.4.4")
    assert keys, "the counter is in Redis, where every web process sees it"
    cache.delete("throttle_anon_10.4.4.4")
