"""Every portal page carries the Content-Security-Policy and satisfies it: nothing inline."""

from __future__ import annotations

import pytest

from tests.csp_check import assert_page_satisfies_the_policy

pytestmark = pytest.mark.django_db


def test_public_pages_satisfy_the_policy(login, certified):
    certificate, other = certified(), certified()
    client = login(None)
    for url in [
        "/",
        "/registry/",
        "/login/",
        "/password_reset/",
        f"/certificates/{certificate.serial}/",
        f"/registry/compare/?serial={certificate.serial}&serial={other.serial}",
    ]:
        response = client.get(url)
        if url == "/password_reset/":
            assert response.status_code == 404  # no mail in tests: the page says whom to ask
            response.status_code = 200
        assert_page_satisfies_the_policy(response)


def test_member_pages_satisfy_the_policy(cast, login, awaiting):
    campaign = awaiting()
    for who, urls in [
        (
            cast.reviewer,
            ["/", "/queue/", "/runners/", f"/campaigns/{campaign.pk}/", "/campaigns/", "/chips/"],
        ),
        (cast.owner, ["/", "/campaigns/new/", "/targets/", "/models/", f"/campaigns/{campaign.pk}/"]),
        (cast.platform_admin, ["/admin/", "/admin/registry/chip/", "/admin/accounts/apitoken/"]),
    ]:
        client = login(who)
        for url in urls:
            assert_page_satisfies_the_policy(client.get(url))


def test_the_api_docs_run_no_inline_script(login):
    client = login(None)
    for url in ["/api/docs/", "/api/redoc/"]:
        # Their bundles inject <style> elements at run time; scripts still come only from files.
        assert_page_satisfies_the_policy(client.get(url), inline_styles_allowed=True)
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_the_lockout_page_satisfies_the_policy(cast, client, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/login/", {"username": "owner", "password": "wrong"})
    response = client.post("/login/", {"username": "owner", "password": "wrong"})
    assert response.status_code == 429
    response.status_code = 200
    assert_page_satisfies_the_policy(response)
