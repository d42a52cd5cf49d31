"""Abuse limits on accounts: login lockout, failed Bearer authentications, shared throttles, token lives."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from apps.accounts.services import api_token_create

ME = "/api/v1/organizations/me/"
TOKENS = "/api/v1/tokens/"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a test fixture's password


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    """Each login hashes a password; the fastest hasher keeps dozens of them quick (PBKDF2 in production)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def rates(monkeypatch, **scopes):
    """DRF's throttles read their rates once, at import: patch the table they hold."""
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, **scopes})


@pytest.fixture
def owner(cast):
    cast.owner.set_password(PASSWORD)
    cast.owner.save()
    return cast.owner


def login(client, password, username="owner", address="10.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_twenty_wrong_passwords_lock_the_account_and_then_the_right_one_is_refused_too(owner, client):
    for _ in range(20):
        assert login(client, "wrong").status_code in {200, 429}
    response = login(client, PASSWORD)
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_lockout_also_holds_from_another_address_for_that_username(owner, client, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "wrong", address="10.0.0.1")
    assert login(client, PASSWORD, address="10.9.9.9").status_code == 429


def test_one_address_guessing_many_usernames_is_locked_out(cast, client, settings):
    for index in range(settings.AXES_FAILURE_LIMIT):
        login(client, "wrong", username=f"nobody-{index}", address="10.0.0.7")
    assert login(client, "wrong", username="someone-else", address="10.0.0.7").status_code == 429


def test_fewer_failures_than_the_limit_still_let_the_right_password_in_and_reset_the_count(
    owner, client, settings
):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "wrong").status_code == 200
    assert login(client, PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "wrong").status_code == 200, "a success resets the count"
    assert login(client, PASSWORD).status_code == 302


def test_the_admin_login_is_locked_out_as_well(cast, client, settings):
    cast.platform_admin.set_password(PASSWORD)
    cast.platform_admin.save()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            "/admin/login/", {"username": "platform-admin", "password": "wrong"}, REMOTE_ADDR="10.0.0.2"
        )
    response = client.post(
        "/admin/login/", {"username": "platform-admin", "password": PASSWORD}, REMOTE_ADDR="10.0.0.2"
    )
    assert response.status_code == 429


def test_failed_bearer_authentications_are_throttled_per_address(cast, monkeypatch):
    rates(monkeypatch, failed_auth="5/min")
    guesser = APIClient(REMOTE_ADDR="10.1.1.1")
    statuses = []
    for index in range(8):
        guesser.credentials(HTTP_AUTHORIZATION=f"Bearer acp_{index:064d}")
        statuses.append(guesser.get(ME).status_code)
    assert statuses == [401] * 5 + [429] * 3
    body = guesser.get(ME).json()
    assert (body["status"], body["code"]) == (429, "throttled")
    # Even a valid token is refused from that address until the window passes: no more guessing.
    _, token = api_token_create(user=cast.owner)
    guesser.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert guesser.get(ME).status_code == 429
    elsewhere = APIClient(REMOTE_ADDR="10.2.2.2")
    elsewhere.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert elsewhere.get(ME).status_code == 200, "another address is not affected"


def test_api_throttle_counters_are_in_the_shared_cache_not_in_process_memory(cast, monkeypatch):
    """Two web processes must count together: the counter is a row in the cache table (or Redis)."""
    from django.conf import settings as live

    backend = live.CACHES["default"]["BACKEND"]
    assert backend in {
        "django.core.cache.backends.db.DatabaseCache",
        "certification.cache.RedisCache",
    }
    rates(monkeypatch, anon="3/min")
    client = APIClient(REMOTE_ADDR="10.3.3.3")
    assert [client.get("/api/v1/certificates/").status_code for _ in range(4)] == [200, 200, 200, 429]
    if backend.endswith("DatabaseCache"):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT COUNT(*) FROM {live.CACHE_TABLE} WHERE cache_key LIKE %s",  # noqa: S608 - our table
                ["%throttle_anon_10.3.3.3%"],
            )
            assert cursor.fetchone()[0] == 1
    cache.clear()
    assert client.get("/api/v1/certificates/").status_code == 200


def test_a_token_cannot_mint_a_token_that_outlives_it(cast):
    _, short = api_token_create(user=cast.owner, ttl=timedelta(days=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {short}")
    response = client.post(TOKENS, {"name": "long", "ttl_days": 365})
    assert response.status_code == 400
    assert "outlive" in response.json()["errors"]["ttl_days"][0]
    assert ApiToken.objects.filter(name="long").count() == 0

    default = client.post(TOKENS, {"name": "default"})
    assert default.status_code == 201
    parent = ApiToken.objects.get(user=cast.owner, name="api")
    assert timezone.datetime.fromisoformat(default.json()["expiry"]) <= parent.expiry


def test_a_session_login_still_creates_tokens_of_any_allowed_lifetime(cast):
    client = APIClient()
    client.force_login(cast.owner)
    response = client.post(TOKENS, {"name": "year", "ttl_days": 365})
    assert response.status_code == 201


def test_password_reset_without_mail_says_to_ask_the_administrator(client, settings):
    settings.PASSWORD_RESET_ENABLED = False
    response = client.get("/password_reset/")
    assert response.status_code == 404
    assert "administrator" in response.content.decode()
    response = client.post("/password_reset/", {"email": "owner@example.org"})
    assert response.status_code == 404
    assert client.get("/password_reset/done/").status_code == 404


def test_password_reset_with_mail_sends_the_link(cast, client, settings, mailoutbox):
    settings.PASSWORD_RESET_ENABLED = True
    cast.owner.set_password(PASSWORD)
    cast.owner.save()
    response = client.post("/password_reset/", {"email": cast.owner.email})
    assert response.status_code == 302
    assert len(mailoutbox) == 1
