"""API tokens: Bearer authentication, stored hashed, shown once, revocable, expiring, last-used time."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from apps.accounts.services import api_token_create, api_token_revoke
from tests.factories import UserFactory

ME = "/api/v1/organizations/me/"
TOKENS = "/api/v1/tokens/"


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def error_of(response) -> dict:
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert body["status"] == response.status_code
    return body


def test_a_bearer_token_authenticates_its_user(cast):
    _, token = api_token_create(user=cast.owner)
    response = bearer(token).get(ME)
    assert response.status_code == 200
    assert response.json()["username"] == "owner"


def test_the_token_is_stored_hashed_and_its_clear_text_is_nowhere_in_the_database(cast):
    _, token = api_token_create(user=cast.owner)
    stored = ApiToken.objects.get(user=cast.owner)
    assert token.startswith("acp_")
    assert stored.digest != token
    assert token not in stored.digest
    assert stored.token_key == token[: len(stored.token_key)]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiToken._meta.db_table}")  # noqa: S608 - a fixed table name
        rows = cursor.fetchall()
    assert rows
    assert not any(token in str(value) for row in rows for value in row)


def test_posting_to_tokens_shows_the_token_once(cast):
    client = APIClient()
    client.force_login(cast.owner)
    created = client.post(TOKENS, {"name": "ci", "ttl_days": 7})
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith("acp_")
    assert body["name"] == "ci"
    assert body["key_prefix"] == body["token"][: len(body["key_prefix"])]
    assert (
        timedelta(days=6, hours=23)
        < (timezone.datetime.fromisoformat(body["expiry"]) - timezone.now())
        <= timedelta(days=7)
    )

    listed = client.get(TOKENS).json()["results"]
    assert [item["key_prefix"] for item in listed] == [body["key_prefix"]]
    assert "token" not in listed[0]
    assert body["token"] not in client.get(TOKENS).content.decode()
    assert bearer(body["token"]).get(ME).status_code == 200


def test_a_token_without_a_lifetime_lives_as_long_as_the_settings_say(cast, settings):
    settings.REST_KNOX = {**settings.REST_KNOX, "TOKEN_TTL": timedelta(days=5)}
    client = APIClient()
    client.force_login(cast.owner)
    body = client.post(TOKENS, {}).json()
    lifetime = timezone.datetime.fromisoformat(body["expiry"]) - timezone.now()
    assert timedelta(days=4, hours=23) < lifetime <= timedelta(days=5)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"ttl_days": 0}, "ttl_days"),
        ({"ttl_days": 366}, "ttl_days"),
        ({"ttl_days": "soon"}, "ttl_days"),
        ({"name": "x" * 101}, "name"),
        ({"name": ""}, "name"),
    ],
)
def test_creating_a_token_with_bad_input_is_a_400_and_creates_nothing(cast, payload, field):
    client = APIClient()
    client.force_login(cast.owner)
    response = client.post(TOKENS, payload)
    assert response.status_code == 400
    assert field in error_of(response)["errors"]
    assert ApiToken.objects.count() == 0


def test_revoking_a_token_makes_it_fail_with_401(cast):
    _, token = api_token_create(user=cast.owner)
    client = bearer(token)
    prefix = ApiToken.objects.get(user=cast.owner).token_key
    assert client.delete(f"{TOKENS}{prefix}/").status_code == 204
    response = client.get(ME)
    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"
    assert not ApiToken.objects.filter(token_key=prefix).exists()


def test_a_user_cannot_see_or_revoke_a_colleagues_token(cast):
    _, theirs = api_token_create(user=cast.colleague)
    prefix = ApiToken.objects.get(user=cast.colleague).token_key
    _, mine = api_token_create(user=cast.owner)
    client = bearer(mine)
    assert prefix not in client.get(TOKENS).content.decode()
    response = client.delete(f"{TOKENS}{prefix}/")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert bearer(theirs).get(ME).status_code == 200


def test_revoke_service_reports_whether_it_revoked_anything(cast):
    token, _ = api_token_create(user=cast.owner)
    assert api_token_revoke(user=cast.colleague, token_key=token.token_key) is False
    assert api_token_revoke(user=cast.owner, token_key=token.token_key) is True
    assert api_token_revoke(user=cast.owner, token_key=token.token_key) is False


def test_an_expired_token_is_refused_with_401(cast):
    token, clear = api_token_create(user=cast.owner)
    ApiToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    response = bearer(clear).get(ME)
    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"


def test_a_token_of_a_deactivated_user_is_refused_with_401(cast):
    _, clear = api_token_create(user=cast.owner)
    cast.owner.is_active = False
    cast.owner.save()
    assert bearer(clear).get(ME).status_code == 401


def test_using_a_token_records_when_it_was_last_used(cast):
    token, clear = api_token_create(user=cast.owner)
    assert token.last_used_at is None
    before = timezone.now()
    assert bearer(clear).get(ME).status_code == 200
    token.refresh_from_db()
    assert before <= token.last_used_at <= timezone.now()


def test_last_used_is_written_at_most_once_a_minute(cast):
    token, clear = api_token_create(user=cast.owner)
    client = bearer(clear)
    client.get(ME)
    token.refresh_from_db()
    first = token.last_used_at
    client.get(ME)
    token.refresh_from_db()
    assert token.last_used_at == first


@pytest.mark.parametrize(
    "header",
    [
        "Token {token}",  # DRF's default keyword: not ours, so the request is anonymous
        "Basic {token}",
        "bearer-{token}",
    ],
)
def test_a_header_with_another_scheme_is_ignored_and_the_request_is_anonymous(cast, header):
    _, token = api_token_create(user=cast.owner)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header.format(token=token))
    assert client.get(ME).status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer acp_0000000000000000000000000000000000000000000000000000000000000000",
        "Bearer not a token",
        "Bearer acp_\u00e9\u00e9\u00e9",
        "Bearer {token}x",
        "Bearer {short}",
    ],
)
def test_a_bad_bearer_token_is_refused_with_401(cast, header):
    _, token = api_token_create(user=cast.owner)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header.format(token=token, short=token[:20]))
    response = client.get(ME)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert error_of(response)["code"] == "authentication_failed"


def test_bearer_keyword_is_case_insensitive(cast):
    _, token = api_token_create(user=cast.owner)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"bearer {token}")
    assert client.get(ME).status_code == 200


def test_only_members_of_an_organization_hold_tokens(db):
    with pytest.raises(ValidationError):
        api_token_create(user=UserFactory())


@pytest.mark.parametrize("days", [0, -1, 366])
def test_a_token_lives_between_one_and_365_days(cast, days):
    with pytest.raises(ValidationError):
        api_token_create(user=cast.owner, ttl=timedelta(days=days))


def test_issue_token_prints_a_working_token(cast):
    out = StringIO()
    call_command("issue_token", "owner", "--name", "laptop", "--days", "3", stdout=out)
    token = out.getvalue().strip()
    assert token.startswith("acp_")
    stored = ApiToken.objects.get(user=cast.owner)
    assert stored.name == "laptop"
    assert stored.expiry - timezone.now() <= timedelta(days=3)
    assert bearer(token).get(ME).json()["username"] == "owner"


@pytest.mark.parametrize(
    ("args", "message"), [(["nobody"], "No user"), (["owner", "--days", "0"], "1 and 365")]
)
def test_issue_token_fails_cleanly(cast, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("issue_token", *args, stdout=StringIO())
    assert ApiToken.objects.count() == 0


def test_issue_token_refuses_a_user_outside_every_organization(db):
    UserFactory(username="loner")
    with pytest.raises(CommandError, match="member"):
        call_command("issue_token", "loner", stdout=StringIO())
