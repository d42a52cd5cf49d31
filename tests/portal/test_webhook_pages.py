"""The vendors' webhook pages (issue 17, item 3): add an endpoint (its secret shown once), send a
test event and read the delivery log with its response codes; another organization's endpoint is
not found, and only vendors manage them."""

from __future__ import annotations

import re

import pytest

from apps.notifications.models import WebhookDelivery, WebhookEndpoint
from apps.notifications.services import webhook_deliver, webhook_endpoint_create
from tests.notifications.conftest import receiver  # noqa: F401

pytestmark = pytest.mark.django_db


def test_a_vendor_adds_an_endpoint_sees_its_secret_once_and_sends_a_test_event(
    cast,
    login,
    receiver,  # noqa: F811  # the fixture imported above
):
    client = login(cast.owner)
    response = client.post(
        "/webhooks/", {"url": receiver.url, "description": "CI", "event_types": ["campaign.awaiting_review"]}
    )
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    secret = re.search(r'id="new-secret" readonly value="(whsec_[^"]+)"', response.content.decode()).group(1)
    endpoint = WebhookEndpoint.objects.get(organization=cast.vendor)
    assert endpoint.event_types == ["campaign.awaiting_review"]
    listing = client.get("/webhooks/").content.decode()
    assert secret not in listing and receiver.url in listing
    receiver.codes = [502]
    sent = client.post(f"/webhooks/{endpoint.pk}/test/")
    assert sent.status_code == 302 and sent["Location"] == f"/webhooks/{endpoint.pk}/"
    delivery = WebhookDelivery.objects.get()
    assert delivery.endpoint == endpoint and delivery.event.type == "webhook.test"
    assert webhook_deliver(delivery_id=delivery.pk) is not None  # what the task does: 502, retried later
    assert len(receiver.requests) == 1
    page = client.get(f"/webhooks/{endpoint.pk}/").content.decode()
    delivery = WebhookDelivery.objects.get()
    assert delivery.event.msg_id in page and "<td>502</td>" in page
    assert "Pending" in page and "receiver says no" in page


def test_a_refused_url_is_shown_beside_its_field_and_nothing_is_saved(cast, login):
    response = login(cast.owner).post("/webhooks/", {"url": "http://hooks.example.org/", "event_types": []})
    assert response.status_code == 400
    html = response.content.decode()
    assert "https://" in re.search(r'id="id_url_errors"[^>]*>(.*?)</ul>', html, re.S).group(1)
    assert 'value="http://hooks.example.org/"' in html
    assert not WebhookEndpoint.objects.exists()


def test_another_organizations_endpoint_is_not_found_and_only_vendors_manage_endpoints(cast, login):
    theirs, _ = webhook_endpoint_create(
        organization=cast.foreign_vendor, url="https://hooks.example.org/b", event_types=[]
    )
    client = login(cast.owner)
    assert client.get(f"/webhooks/{theirs.pk}/").status_code == 404
    assert client.post(f"/webhooks/{theirs.pk}/test/").status_code == 404
    assert client.post(f"/webhooks/{theirs.pk}/delete/").status_code == 404
    assert WebhookEndpoint.objects.filter(pk=theirs.pk).exists() and not WebhookDelivery.objects.exists()
    for user in (cast.buyer, cast.reviewer):
        assert login(user).get("/webhooks/").status_code == 403
    mine, _ = webhook_endpoint_create(
        organization=cast.vendor, url="https://hooks.example.org/a", event_types=[]
    )
    assert login(cast.colleague).post(f"/webhooks/{mine.pk}/delete/").status_code == 302
    assert not WebhookEndpoint.objects.filter(pk=mine.pk).exists()


def test_the_webhook_pages_are_in_chinese(cast, login):
    endpoint, _ = webhook_endpoint_create(
        organization=cast.vendor, url="https://hooks.example.org/a", event_types=[]
    )
    client = login(cast.owner)
    listing = client.get("/webhooks/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    for word in ("添加端点", "认证活动待审核", "签名"):
        assert word in listing, word
    detail = client.get(f"/webhooks/{endpoint.pk}/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "发送测试事件" in detail and "投递记录" in detail
