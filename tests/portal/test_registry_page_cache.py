"""The public registry page for anonymous visitors without a session comes from the public reads'
cache, but each answer carries the requesting visitor's own CSRF token (the shared body holds none)."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.certificates.public_reads import CSRF_PLACEHOLDER

pytestmark = pytest.mark.django_db
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def certificate_queries(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "certificates_certificate" in q["sql"]]


def test_a_second_anonymous_visitor_is_served_from_the_cache_with_a_token_of_its_own(certified):
    certificate = certified()
    first = Client(enforce_csrf_checks=True)
    page = first.get("/registry/")
    assert page.status_code == 200 and certificate.serial in page.content.decode()
    assert page["Cache-Control"] == "private, no-cache" and page["ETag"].startswith('W/"')
    second = Client(enforce_csrf_checks=True)
    with CaptureQueriesContext(connection) as queries:
        again = second.get("/registry/")
    assert again.status_code == 200 and certificate.serial in again.content.decode()
    assert certificate_queries(queries) == [], "the second visitor's page was rendered again"
    tokens = set(TOKEN.findall(again.content.decode()))
    assert len(tokens) == 1 and tokens != set(TOKEN.findall(page.content.decode()))
    switched = second.post(
        "/i18n/setlang/", {"language": "zh-hans", "next": "/", "csrfmiddlewaretoken": tokens.pop()}
    )
    assert switched.status_code == 302  # the token is valid for this visitor's own cookie


def test_no_shared_body_holds_a_csrf_token(certified):
    certified()
    Client().get("/registry/")
    keys = [key for key in _cache_keys() if "public-reads:page:" in key]
    assert keys
    for key in keys:
        _generation, body, _content_type = cache.get(key.split(":", 2)[-1])
        values = re.findall(rb'name="csrfmiddlewaretoken" value="([^"]*)"', body)
        assert len(values) == 2 and set(values) == {CSRF_PLACEHOLDER}  # language and time-zone switchers


def _cache_keys() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT cache_key FROM cache_entries")
        return [row[0] for row in cursor.fetchall()]


def test_a_status_change_renews_the_cached_page(cast, certified):
    from apps.certificates.services import certificate_suspend

    certificate = certified()
    client = Client()
    assert certificate.serial in client.get("/registry/").content.decode()
    certificate_suspend(certificate=certificate, actor=cast.reviewer, reason="Suspended for the test.")
    assert certificate.serial not in client.get("/registry/").content.decode()  # active only, by default


def test_each_language_gets_its_own_page(certified):
    certified()
    assert "已认证芯片目录" not in Client().get("/registry/").content.decode()
    assert "已认证芯片目录" in Client(HTTP_ACCEPT_LANGUAGE="zh-CN").get("/registry/").content.decode()


def test_a_visitor_with_a_session_gets_a_fresh_page(cast, certified, login):
    certified()
    Client().get("/registry/")
    client = login(cast.reviewer)
    response = client.get("/registry/")
    assert (
        "private" not in response.get("Cache-Control", "")
        and cast.reviewer.username in response.content.decode()
    )


def test_the_backend_choices_are_one_row_per_backend():
    """The model's ordering (slug) made SELECT DISTINCT return one row per target: 10,000 rows a page."""
    from apps.portal.selectors import registry_facets
    from tests.factories import HardwareTargetFactory

    for index in range(3):
        HardwareTargetFactory(slug=f"target-{index}", backend="cpu")
    with CaptureQueriesContext(connection) as queries:
        facets = registry_facets()
    assert facets.backends == ["cpu"]
    (distinct,) = [q["sql"] for q in queries.captured_queries if "DISTINCT" in q["sql"]]
    assert '"slug"' not in distinct, distinct
