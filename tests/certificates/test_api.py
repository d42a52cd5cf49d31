"""The certificates API over HTTP: public list and detail, reviewer endpoints, who sees what."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.certificates.models import Certificate, CertificateStatus
from apps.runs.models import CampaignState
from tests.factories import HardwareTargetFactory


def test_the_public_list_shows_active_certificates_to_anyone(certified, cast, client_for):
    active, revoked = certified(), certified()
    Certificate.objects.filter(pk=revoked.pk).update(status=CertificateStatus.REVOKED)
    response = client_for(None).get("/api/v1/certificates/")
    assert response.status_code == 200
    assert [row["serial"] for row in response.json()["results"]] == [active.serial]
    everything = client_for(None).get("/api/v1/certificates/?status=all").json()["results"]
    assert {row["serial"] for row in everything} == {active.serial, revoked.serial}
    assert (
        client_for(None).get("/api/v1/certificates/?status=revoked").json()["results"][0]["serial"]
        == revoked.serial
    )


def test_the_list_filters_by_vendor_backend_program_level_and_chip(certified, cast):
    from rest_framework.test import APIClient

    cuda = certified()
    npu = certified(
        target=HardwareTargetFactory(
            chip__vendor=cast.vendor, backend="npu", chip__sku="NPU-910", chip__name="Ascend Nine"
        ),
        level="standard",
    )
    client = APIClient()

    def serials(query):
        return {row["serial"] for row in client.get(f"/api/v1/certificates/?{query}").json()["results"]}

    assert serials("backend=npu") == {npu.serial}
    assert serials("level=baseline") == {cuda.serial}
    assert serials("vendor=acme") == {cuda.serial, npu.serial}
    assert serials("vendor=borealis") == set()
    assert serials("program=aia") == {cuda.serial, npu.serial}
    assert serials("q=ascend") == {npu.serial}
    assert serials("chip=npu-910") == {npu.serial}


def test_the_list_query_count_does_not_grow_with_the_certificates(certified):
    from rest_framework.test import APIClient

    client = APIClient()
    certified()
    with CaptureQueriesContext(connection) as one:
        assert client.get("/api/v1/certificates/").status_code == 200
    for _ in range(4):
        certified()
    with CaptureQueriesContext(connection) as five:
        assert len(client.get("/api/v1/certificates/").json()["results"]) == 5

    # count + page; the rest is the database cache (the anonymous rate's counter, the public reads'
    # generation and rendered body: see public_reads.py), none of them with Redis.
    def listed(queries):
        return [q for q in queries.captured_queries if "certificates_certificate" in q["sql"]]

    assert len(listed(five)) == len(listed(one)) == 2
    assert len(five) == len(one)


def test_the_detail_carries_the_signed_payload(certified, client):
    certificate = certified()
    body = client.get(f"/api/v1/certificates/{certificate.serial}/").json()
    assert body["certificate"]["serial"] == certificate.serial
    assert body["signature"] == certificate.signature
    assert client.get("/api/v1/certificates/AIA-2026-999999/").status_code == 404


def test_the_well_known_keys_are_public(certified, client):
    certificate = certified()
    body = client.get("/.well-known/certification-keys.json").json()
    assert body["keys"][0]["key_id"] == certificate.signing_key.key_id
    assert body["keys"][0]["algorithm"] == "Ed25519"
    assert body["keys"][0]["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in str(body)


def test_a_reviewer_approves_over_the_api(cast, evaluated, client_for):
    campaign = evaluated()
    response = client_for(cast.reviewer).post(
        f"/api/v1/reviews/{campaign.pk}/approve/", {"reason": "Checked the evidence."}
    )
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == CampaignState.APPROVED
    assert response.json()["certificate"].startswith("AIA-")


def test_approving_a_failed_blocker_over_the_api_is_a_400(cast, evaluated, client_for):
    campaign = evaluated(conformance={"float32": {"pass": 1, "fail": 1}, "bfloat16": {"pass": 1}})
    response = client_for(cast.reviewer).post(
        f"/api/v1/reviews/{campaign.pk}/approve/", {"reason": "Looks ok."}
    )
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "invalid" and "B1" in str(error["errors"])


def test_a_decision_without_reason_over_the_api_is_a_400(cast, evaluated, client_for):
    campaign = evaluated()
    for body in [{}, {"reason": ""}]:
        response = client_for(cast.reviewer).post(f"/api/v1/reviews/{campaign.pk}/reject/", body)
        assert response.status_code == 400


def test_waiving_over_the_api(cast, evaluated, client_for):
    campaign = evaluated(gemm={"float32": 0.2, "bfloat16": 0.2})
    reviewer = client_for(cast.reviewer)
    blocked = reviewer.post(f"/api/v1/reviews/{campaign.pk}/waive/", {"criterion": "B1", "reason": "x"})
    assert blocked.status_code == 400
    response = reviewer.post(f"/api/v1/reviews/{campaign.pk}/waive/", {"criterion": "B4", "reason": "Known."})
    assert response.status_code == 200
    assert (
        next(c for c in response.json()["criteria"] if c["criterion_id"] == "B4")["waived_by"] == "reviewer"
    )


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("reviewer", 200),
        ("platform_admin", 200),
        ("owner", 200),
        ("colleague", 200),
        ("foreign", 404),
        ("buyer", 404),
    ],
)
def test_the_evaluation_is_visible_to_the_authority_and_the_campaigns_own_vendor(
    cast, evaluated, client_for, who, status
):
    campaign = evaluated()
    response = client_for(getattr(cast, who)).get(f"/api/v1/reviews/{campaign.pk}/")
    assert response.status_code == status
    if status == 200:
        assert {c["criterion_id"] for c in response.json()["criteria"]} == {"B1", "B2", "B3", "B4"}


@pytest.mark.parametrize(
    ("who", "status"), [("owner", 403), ("platform_admin", 403), ("foreign", 404), ("buyer", 404)]
)
def test_only_reviewers_decide_over_the_api(cast, evaluated, client_for, who, status):
    campaign = evaluated()
    response = client_for(getattr(cast, who)).post(
        f"/api/v1/reviews/{campaign.pk}/approve/", {"reason": "Mine."}
    )
    assert response.status_code == status
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.AWAITING_REVIEW


def test_anonymous_users_cannot_read_evaluations(evaluated, client_for):
    assert client_for(None).get(f"/api/v1/reviews/{evaluated().pk}/").status_code == 401


def test_reviewers_suspend_and_revoke_over_the_api_with_a_reason(cast, certified, client_for):
    certificate = certified()
    url = f"/api/v1/certificates/{certificate.serial}"
    assert client_for(None).post(f"{url}/revoke/", {"reason": "x"}).status_code == 401
    assert client_for(cast.owner).post(f"{url}/revoke/", {"reason": "x"}).status_code == 403
    reviewer = client_for(cast.reviewer)
    assert reviewer.post(f"{url}/revoke/", {"reason": ""}).status_code == 400
    assert reviewer.post(f"{url}/suspend/", {"reason": "Investigating."}).json()["status"] == "suspended"
    assert reviewer.post(f"{url}/reinstate/", {"reason": "Cleared."}).json()["status"] == "active"
    revoked = reviewer.post(f"{url}/revoke/", {"reason": "Fraud."}).json()
    assert revoked["status"] == "revoked" and revoked["status_reason"] == "Fraud."


def test_the_review_queue_lists_campaigns_for_the_authority_only(cast, evaluated, client_for):
    campaign = evaluated()
    rows = client_for(cast.reviewer).get("/api/v1/reviews/?state=awaiting_review").json()["results"]
    assert [row["campaign"] for row in rows] == [campaign.pk]
    assert client_for(cast.foreign).get("/api/v1/reviews/").json()["results"] == []


def test_the_public_list_is_cached_by_etag_until_a_status_changes(certified, cast, client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.certificates.services import certificate_suspend

    certificate = certified()
    with CaptureQueriesContext(connection) as queries:
        first = client.get("/api/v1/certificates/")
    assert first.status_code == 200 and first["Cache-Control"] == "public, no-cache"
    listed = [q["sql"] for q in queries.captured_queries if "certificates_certificate" in q["sql"]]
    assert listed and not any("payload_json" in sql for sql in listed)  # the listed columns only
    etag = first["ETag"]
    assert client.get("/api/v1/certificates/", HTTP_IF_NONE_MATCH=etag).status_code == 304
    with CaptureQueriesContext(connection) as queries:
        again = client.get("/api/v1/certificates/")
    assert again.content == first.content
    assert not any("certificates_certificate" in q["sql"] for q in queries.captured_queries)
    assert client.get("/api/v1/certificates/?page_size=5")["ETag"] != etag  # another path, another tag

    certificate_suspend(certificate=certificate, reason="Failed surveillance.", actor=cast.reviewer)
    changed = client.get("/api/v1/certificates/?status=suspended", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed.json()["results"][0]["status"] == "suspended"
    fresh = client.get("/api/v1/certificates/", HTTP_IF_NONE_MATCH=etag)
    assert fresh.status_code == 200 and fresh["ETag"] != etag and fresh.json()["count"] == 0
    detail = client.get(f"/api/v1/certificates/{certificate.serial}/")
    assert detail.json()["status"] == "suspended" and detail["ETag"]
