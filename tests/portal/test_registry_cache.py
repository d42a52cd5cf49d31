"""The public registry page for anonymous visitors: cached by the public reads' generation."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def certificate_queries(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "certificates_certificate" in q["sql"]]


def test_every_anonymous_visitor_can_switch_language_from_the_registry(certified):
    """The registry page carries the switcher's CSRF token, which is each visitor's own: a page body
    shared between visitors (the public reads' cache) would hand one visitor's token to the next,
    whose switch would then be refused."""
    from django.test import Client

    certified()
    Client(enforce_csrf_checks=True).get("/registry/")  # a first visitor renders the page
    second = Client(enforce_csrf_checks=True)
    page = second.get("/registry/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    switched = second.post(
        "/i18n/setlang/", {"language": "zh-hans", "next": "/registry/", "csrfmiddlewaretoken": token}
    )
    assert switched.status_code == 302
    assert "已认证芯片目录" in second.get("/registry/").content.decode()


def test_a_logged_in_user_is_never_served_the_shared_page(cast, login, certified):
    certified()
    client = login(cast.reviewer)
    response = client.get("/registry/")
    assert response.status_code == 200 and "public" not in response.get("Cache-Control", "")
    assert cast.reviewer.username in response.content.decode()
