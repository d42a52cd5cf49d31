"""Every API error is an RFC 9457 problem (application/problem+json) whose `type` is a page of this
platform describing it: one test per status the API answers, content negotiation, the type pages."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import ChipFactory, HardwareTargetFactory

PROBLEM = "application/problem+json"
MEMBERS = {"type", "title", "status", "detail", "instance", "code", "errors"}
CHIP = {
    "sku": "ACME-1",
    "name": "Acme One",
    "process_node_nm": 5,
    "die_area_mm2": 600,
    "memory_gib": 96,
    "memory_bandwidth_gbs": 3000,
    "tdp_w": 500,
    "declared_peak": {"bf16": 500, "fp32": 60},
    "fab_country": "TW",
    "assembly_country": "MY",
    "spec_source": "datasheet v1",
}


def problem(response, status, slug, path):
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == PROBLEM, response["Content-Type"]
    body = response.json()
    assert {"type", "title", "status", "detail", "instance", "code"} <= set(body) <= MEMBERS, body
    assert body["type"] == f"http://testserver/problems/{slug}/"
    assert (body["status"], body["instance"]) == (status, path)
    assert body["title"] and body["detail"]
    return body


def test_invalid_fields_are_a_400_validation_problem_with_the_errors_per_field(cast, client_for):
    response = client_for(cast.owner).post("/api/v1/chips/", {"name": "No sku"}, format="json")
    body = problem(response, 400, "validation-error", "/api/v1/chips/")
    assert body["code"] == "invalid" and body["title"] == "Invalid input"
    assert "sku" in body["errors"] and isinstance(body["errors"]["sku"], list)
    assert "sku" in body["detail"]  # the detail names the fields, for a person reading it


def test_a_body_that_is_not_json_is_a_400_malformed_request(cast, client_for):
    response = client_for(cast.owner).generic(
        "POST", "/api/v1/chips/", '{"sku": ', content_type="application/json"
    )
    body = problem(response, 400, "malformed-request", "/api/v1/chips/")
    assert body["code"] == "parse_error" and "errors" not in body


def test_no_credentials_is_a_401(db):
    body = problem(APIClient().get("/api/v1/chips/"), 401, "not-authenticated", "/api/v1/chips/")
    assert body["code"] == "not_authenticated"


def test_a_role_that_may_not_is_a_403(cast, client_for):
    response = client_for(cast.buyer).post("/api/v1/chips/", CHIP, format="json")
    assert problem(response, 403, "permission-denied", "/api/v1/chips/")["code"] == "permission_denied"


@pytest.mark.parametrize("path", ["/api/v1/chips/999999/", "/api/v1/no-such-thing/"])
def test_a_missing_object_or_endpoint_is_a_404(cast, client_for, path):
    assert problem(client_for(cast.owner).get(path), 404, "not-found", path)["code"] == "not_found"


def test_a_method_not_allowed_is_a_405_with_allow(cast, client_for):
    response = client_for(cast.owner).put("/api/v1/chips/", {}, format="json")
    problem(response, 405, "method-not-allowed", "/api/v1/chips/")
    assert "GET" in response["Allow"]


def test_an_accept_header_nothing_can_serve_is_a_406(cast, client_for):
    response = client_for(cast.owner).get("/api/v1/chips/", HTTP_ACCEPT="application/xml")
    assert problem(response, 406, "not-acceptable", "/api/v1/chips/")["code"] == "not_acceptable"


def test_a_state_that_forbids_it_is_a_409(cast, client_for):
    chip = ChipFactory(vendor=cast.vendor, sku="OWN-1")
    HardwareTargetFactory(chip=chip, slug="own-target")
    path = f"/api/v1/chips/{chip.pk}/"
    assert problem(client_for(cast.vendor_admin).delete(path), 409, "conflict", path)["code"] == "conflict"


def test_a_stale_if_match_is_a_412(cast, client_for):
    client = client_for(cast.owner)
    path = f"/api/v1/chips/{client.post('/api/v1/chips/', CHIP, format='json').json()['id']}/"
    response = client.patch(path, {"name": "Renamed"}, format="json", HTTP_IF_MATCH='"0123456789abcdef"')
    assert problem(response, 412, "precondition-failed", path)["code"] == "precondition_failed"
    assert response["ETag"]


def test_a_body_over_the_limit_is_a_413(cast, client_for, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = json.dumps({"name": "token", "padding": "x" * 2000})
    response = client_for(cast.owner).generic(
        "POST", "/api/v1/tokens/", body, content_type="application/json"
    )
    assert problem(response, 413, "payload-too-large", "/api/v1/tokens/")["code"] == "too_large"


def test_a_body_of_another_media_type_is_a_415(cast, client_for):
    response = client_for(cast.owner).generic("POST", "/api/v1/chips/", "sku=A", content_type="text/plain")
    problem(response, 415, "unsupported-media-type", "/api/v1/chips/")


def test_too_many_requests_is_a_429_with_retry_after(cast, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    rates = {**SimpleRateThrottle.THROTTLE_RATES, "failed_auth": "2/min"}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)
    guesser = APIClient(REMOTE_ADDR="10.9.9.9")
    guesser.credentials(HTTP_AUTHORIZATION="Bearer acp_" + "0" * 64)
    responses = [guesser.get("/api/v1/chips/") for _ in range(3)]
    assert [r.status_code for r in responses] == [401, 401, 429]
    body = problem(responses[-1], 429, "throttled", "/api/v1/chips/")
    assert body["code"] == "throttled" and int(responses[-1]["Retry-After"]) > 0


def test_a_server_error_is_a_500_that_says_nothing_of_its_cause(cast, client_for, monkeypatch, settings):
    from apps.registry.api import views

    def explode(self):
        raise RuntimeError("password=hunter2 at /srv/secret/settings.py")

    monkeypatch.setattr(views.ChipViewSet, "get_queryset", explode)
    settings.DEBUG = False
    client = client_for(cast.owner)
    client.raise_request_exception = False
    body = problem(client.get("/api/v1/chips/"), 500, "server-error", "/api/v1/chips/")
    assert body["code"] == "server_error"
    assert "hunter2" not in json.dumps(body) and "RuntimeError" not in json.dumps(body)


def test_a_bad_host_header_is_a_400_problem_without_a_host_in_its_type(db, settings):
    settings.DEBUG = False
    response = Client().get("/api/v1/chips/", HTTP_HOST="evil.example")
    assert response.status_code == 400 and response["Content-Type"] == PROBLEM
    assert response.json()["type"] == "/problems/malformed-request/"  # not the refused host


# Content negotiation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, PROBLEM),
        ("*/*", PROBLEM),
        ("application/problem+json, application/json;q=0.5", PROBLEM),
        ("application/json, application/problem+json", PROBLEM),
        ("application/*", PROBLEM),
        ("application/json", "application/json"),  # a client that named only JSON gets JSON
        ("application/json, application/problem+json;q=0", "application/json"),
    ],
)
def test_the_problem_media_type_follows_the_accept_header(cast, client_for, accept, media_type):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    for path in ("/api/v1/chips/999999/", "/api/v1/no-such-thing/"):  # DRF's answer and the middleware's
        response = client_for(cast.owner).get(path, **headers)
        assert response.status_code == 404 and response["Content-Type"] == media_type, (accept, path)
        assert response.json()["type"].endswith("/problems/not-found/")


def test_the_type_uses_the_configured_public_url(cast, client_for, settings):
    settings.CERT_PUBLIC_URL = "https://certification.example/"
    body = client_for(cast.owner).get("/api/v1/chips/999999/").json()
    assert body["type"] == "https://certification.example/problems/not-found/"


# The pages the type URIs point at -----------------------------------------------------------------


def test_every_problem_type_has_a_page_and_the_index_lists_them(db):
    from certification.problems import PROBLEM_TYPES

    client = Client()
    index = client.get("/problems/")
    assert index.status_code == 200 and index["Content-Type"].startswith("text/html")
    for slug, kind in PROBLEM_TYPES.items():
        assert f"/problems/{slug}/" in index.content.decode()
        page = client.get(f"/problems/{slug}/")
        assert page.status_code == 200, slug
        assert str(kind.title) in page.content.decode() and str(kind.status) in page.content.decode()
    assert client.get("/problems/no-such-problem/").status_code == 404


def test_every_code_the_api_answers_maps_to_a_type_of_its_status():
    from certification.problems import _BY_CODE, _BY_STATUS, PROBLEM_TYPES

    for slug in (*_BY_CODE.values(), *_BY_STATUS.values()):
        assert slug in PROBLEM_TYPES, slug
    for status, slug in _BY_STATUS.items():
        assert PROBLEM_TYPES[slug].status == status


def test_the_title_and_the_type_page_follow_the_language(db):
    response = APIClient().get("/api/v1/chips/", HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert response.status_code == 401 and response.json()["title"] == "需要身份验证"
    assert (
        response.json()["type"] == "http://testserver/problems/not-authenticated/"
    )  # one type in every language
    page = Client(HTTP_ACCEPT_LANGUAGE="zh-CN").get("/problems/not-authenticated/")
    assert "需要身份验证" in page.content.decode()
