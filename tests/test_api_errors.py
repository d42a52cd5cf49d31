"""Crafted input on every JSON endpoint is a 4xx in the one error body, and every /api/ error
(unknown path, 405, 413, 500) answers that body too, never an HTML page."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import get_resolver
from rest_framework.test import APIClient

from tests.factories import ChipFactory, HardwareTargetFactory, RunnerFactory

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance", "code", "errors"}
DEEP = "[" * 1000 + "]" * 1000
DEEPER_THAN_ALLOWED = (
    json.dumps({"reason": "x" * 20, "requirements": [], "scoring": []})[:-1]
    + ', "nested": '
    + "[" * 40
    + "1"
    + "]" * 40
    + "}"
)


def assert_error_body(response, status):
    """An RFC 9457 problem: its members, the type a page of this platform, the status the response's."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/problem+json", response["Content-Type"]
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body) <= PROBLEM_MEMBERS, body
    assert body["status"] == status
    assert body["type"].startswith("http://testserver/problems/") and body["type"].endswith("/")
    assert body["code"] and body["detail"] and body["title"]
    return body


@pytest.fixture
def signing_key_dir(settings, tmp_path):
    settings.CERT_SIGNING_KEY_DIR = tmp_path / "signing-keys"


@pytest.fixture
def endpoints(cast, signing_key_dir):
    """Every API endpoint that reads a JSON body, each with a caller allowed to reach its parser.
    (Job rerun and tender evaluate take no body; the model upload is multipart and has its own
    tests in tests/registry/test_bad_input.py.)"""
    from apps.certificates.services import campaign_evaluate
    from apps.procurement.services import tender_create
    from tests.certificates.evidence import aia_program, campaign_with_evidence
    from tests.procurement.evidence import certify

    program = aia_program()
    chip = ChipFactory(vendor=cast.vendor, sku="OWN")
    target = HardwareTargetFactory(chip=chip, slug="own-target")
    runner = RunnerFactory(name="extra-runner")
    certificate = certify(vendor=cast.vendor, program=program)
    campaign = campaign_with_evidence(vendor=cast.vendor, program=program, submitted_by=cast.owner)
    campaign_evaluate(campaign_id=campaign.pk)
    from datetime import timedelta

    from django.utils import timezone

    tender = tender_create(
        organization=cast.buyer_org,
        title="Accelerators",
        reference="T-1",
        deadline=timezone.now() + timedelta(days=30),
        requirements=[],
        scoring=[{"metric": "tflops_per_watt", "weight": 1}],
        created_by=cast.buyer,
    )
    return [
        ("POST", "/api/v1/tokens/", cast.owner),
        ("POST", "/api/v1/chips/", cast.owner),
        ("PUT", f"/api/v1/chips/{chip.pk}/", cast.owner),
        ("PATCH", f"/api/v1/chips/{chip.pk}/", cast.owner),
        ("POST", "/api/v1/targets/", cast.owner),
        ("PUT", f"/api/v1/targets/{target.pk}/", cast.owner),
        ("PATCH", f"/api/v1/targets/{target.pk}/", cast.owner),
        ("POST", "/api/v1/runners/", cast.platform_admin),
        ("PUT", f"/api/v1/runners/{runner.pk}/", cast.platform_admin),
        ("PATCH", f"/api/v1/runners/{runner.pk}/", cast.platform_admin),
        ("POST", "/api/v1/campaigns/", cast.owner),
        ("POST", f"/api/v1/campaigns/{campaign.pk}/cancel/", cast.owner),
        ("POST", f"/api/v1/certificates/{certificate.serial}/suspend/", cast.reviewer),
        ("POST", f"/api/v1/certificates/{certificate.serial}/reinstate/", cast.reviewer),
        ("POST", f"/api/v1/certificates/{certificate.serial}/revoke/", cast.reviewer),
        ("POST", f"/api/v1/reviews/{campaign.pk}/approve/", cast.reviewer),
        ("POST", f"/api/v1/reviews/{campaign.pk}/reject/", cast.reviewer),
        ("POST", f"/api/v1/reviews/{campaign.pk}/waive/", cast.reviewer),
        ("POST", "/api/v1/tenders/", cast.buyer),
        ("PUT", f"/api/v1/tenders/{tender.pk}/", cast.buyer),
        ("PATCH", f"/api/v1/tenders/{tender.pk}/", cast.buyer),
    ]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (DEEP, 400),  # Python's json raises RecursionError: a 500 before the parser had a depth limit
        ("{" + '"a":{' * 2000 + "}" * 2001, 400),
        (DEEPER_THAN_ALLOWED, 400),
        ('{"reason": "long enough reason \\u0000 with a NUL"}', 400),  # jsonb refuses it on PostgreSQL
        ('{"requirements": [{"kind": "memory_gib", "params": {"\\u0000": 1}}]}', 400),
    ],
    ids=["array-1000-deep", "object-2000-deep", "40-deep", "nul-in-a-string", "nul-in-a-key"],
)
def test_crafted_json_bodies_are_a_400_on_every_json_endpoint(cast, client_for, endpoints, body, status):
    from apps.audit.models import AuditEvent

    clients = {user.pk: client_for(user) for _, _, user in endpoints}  # token creation is audited too
    events = AuditEvent.objects.count()
    for method, path, user in endpoints:
        response = clients[user.pk].generic(method, path, body, content_type="application/json")
        error = assert_error_body(response, status)
        assert "deep" in error["detail"] or "NUL" in error["detail"] or "NUL" in json.dumps(error), (
            method,
            path,
            error,
        )
    assert AuditEvent.objects.count() == events  # nothing happened on any of them


def test_a_json_body_over_the_upload_limit_is_a_413(cast, client_for, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    body = json.dumps({"name": "token", "padding": "x" * 5000})
    error = assert_error_body(
        client_for(cast.owner).generic("POST", "/api/v1/tokens/", body, content_type="application/json"), 413
    )
    assert error["code"] == "too_large"
    small = client_for(cast.owner).post("/api/v1/tokens/", {"name": "token"}, format="json")
    assert small.status_code == 201, small.content


def test_every_api_view_parses_bodies_with_the_bounded_parsers():
    """A view that declared its own parser_classes would bypass the depth, NUL and size limits."""
    from rest_framework.parsers import FileUploadParser, FormParser, MultiPartParser

    from certification.api import JSONParser

    def views(resolver, prefix=""):
        for pattern in resolver.url_patterns:
            if hasattr(pattern, "url_patterns"):
                yield from views(pattern, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern.callback

    checked = 0
    for route, callback in views(get_resolver()):
        cls = getattr(callback, "cls", None)
        if not route.startswith("api/") or cls is None:
            continue
        view = cls()
        view.request = None
        view.action = None
        for parser in view.get_parsers():
            assert not isinstance(parser, FileUploadParser), route
            if isinstance(parser, FormParser | MultiPartParser):
                continue  # fields arrive as strings; JSON inside them goes through BoundedJSONField
            assert isinstance(parser, JSONParser), (route, parser)
        checked += 1
    assert checked > 20


# Errors Django answers before or after DRF ---------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/no-such-thing/", "/api/nope", "/api/v1/chips/1/2/3/", "/api/v1/tenders/abc/"]
)
def test_an_unknown_api_path_is_a_json_404(cast, client_for, path):
    for client in (client_for(cast.owner), APIClient()):
        error = assert_error_body(client.get(path), 404)
        assert error["code"] == "not_found"
        assert_error_body(client.post(path, {}, format="json"), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/v1/tokens/acp_%00/"),  # PostgreSQL refused the NUL in the lookup: a 500
        ("GET", "/api/v1/chips/?q=a%00b"),
        ("GET", "/api/v1/certificates/?vendor=%00"),
        ("GET", "/api/v1/chips/?a%00=1"),
    ],
)
def test_a_nul_in_the_path_or_query_is_a_json_400(cast, client_for, method, path):
    error = assert_error_body(client_for(cast.owner).generic(method, path), 400)
    assert "NUL" in error["detail"]


def test_a_nul_in_a_portal_path_is_a_400(cast):
    client = Client()
    client.force_login(cast.owner)
    assert client.get("/procurement/?q=%00").status_code == 400


def test_an_unknown_page_outside_the_api_is_still_html(cast):
    client = Client()
    client.force_login(cast.owner)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/api/v1/organizations/me/"), ("PUT", "/api/v1/chips/"), ("POST", "/api/v1/jobs/")],
)
def test_a_method_not_allowed_is_a_json_405(cast, client_for, method, path):
    error = assert_error_body(client_for(cast.owner).generic(method, path), 405)
    assert error["code"] == "method_not_allowed"


def test_form_fields_over_the_memory_limit_are_a_json_413(cast, client_for, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    client = client_for(cast.owner)
    client.raise_request_exception = False
    response = client.post(
        "/api/v1/models/", {"name": "m", "config": json.dumps({"x": "y" * 8000})}, format="multipart"
    )
    error = assert_error_body(response, 413)
    assert error["code"] == "too_large"


@pytest.fixture
def broken_view(monkeypatch):
    """The chip list raises an unexpected error, as a bug would."""
    from apps.registry.api import views

    def explode(self):
        raise RuntimeError("a bug")

    monkeypatch.setattr(views.ChipViewSet, "get_queryset", explode)


def test_a_server_error_under_the_api_is_a_json_500(cast, client_for, broken_view, settings):
    settings.DEBUG = False
    client = client_for(cast.owner)
    client.raise_request_exception = False
    error = assert_error_body(client.get("/api/v1/chips/"), 500)
    assert error["code"] == "server_error"
    assert "a bug" not in json.dumps(error)  # no internals leak


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": "[[[[{{{{"}]}', 3),  # brackets inside strings do not count
        ('["\\"[[[["]', 1),  # nor after an escaped quote
        ("[" * 33 + "]" * 33, 33),
        ("]" * 50 + "[" * 10, 0),  # json.loads refuses the first "]" before nesting at all
        ('{"outputs_b64": "' + "QUJD" * 100_000 + '", "missing": [[]]}', 3),  # a reveal answer's shape
        ("[" * 3 + "]" * 3 + '["' + "{" * 40 + '"]', 3),  # few brackets outside strings, many inside
    ],
)
def test_the_depth_check_counts_what_the_parser_would_nest(text, depth):
    from certification.json_limits import JSONLimitExceeded, check_json_depth

    check_json_depth(text, max_depth=depth)
    if depth:
        with pytest.raises(JSONLimitExceeded):
            check_json_depth(text, max_depth=depth - 1)
