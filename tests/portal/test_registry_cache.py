"""The public registry page for anonymous visitors: cached by the public reads' generation."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db


def certificate_queries(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "certificates_certificate" in q["sql"]]


def test_an_anonymous_visitor_gets_the_cached_page_until_a_status_changes(cast, login, certified):
    from apps.certificates.services import certificate_suspend

    certificate = certified()
    client = login(None)
    first = client.get("/registry/")
    assert first.status_code == 200 and first["Cache-Control"] == "public, no-cache"
    assert "Cookie" in first["Vary"] and certificate.serial in first.content.decode()
    with CaptureQueriesContext(connection) as queries:
        again = client.get("/registry/")
    assert again.content == first.content and not certificate_queries(queries)
    assert client.get("/registry/", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304

    certificate_suspend(certificate=certificate, reason="Failed surveillance.", actor=cast.reviewer)
    fresh = client.get("/registry/")
    assert fresh["ETag"] != first["ETag"] and certificate.serial not in fresh.content.decode()


def test_a_logged_in_user_is_never_served_the_shared_page(cast, login, certified):
    certified()
    client = login(cast.reviewer)
    response = client.get("/registry/")
    assert response.status_code == 200 and "public" not in response.get("Cache-Control", "")
    assert cast.reviewer.username in response.content.decode()
