"""The pages added in session 21, driven in headless Chromium (Debian's /usr/bin/chromium, nothing
downloaded): a vendor registers a chip and a target, uploads a model with the progress bar, creates
an API token (shown once), lists and revokes it, adds a webhook endpoint and sends it a test event
that a real receiver gets; a visitor exports the registry as CSV and JSON, reads a certificate's
status history and opens the human verification page the printed QR code points to. One browser for
the module; each test logs in once (a session made on the server, set as a cookie)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from tests.browser import BROWSER_MARKS, SHOTS, chromium
from tests.notifications.conftest import receiver  # noqa: F401  # a real HTTP receiver on 127.0.0.1
from tests.portal.test_selfservice import CHIP

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


def open_as(browser, live_server, user=None):
    """A page of a fresh context, logged in as `user` through a session cookie (None: a visitor)."""
    from django.conf import settings
    from django.test import Client

    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    if user is not None:
        client = Client()
        client.force_login(user)
        context.add_cookies(
            [
                {
                    "name": settings.SESSION_COOKIE_NAME,
                    "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                    "url": live_server.url,
                }
            ]
        )
    page = context.new_page()
    page.set_default_timeout(20_000)
    external: list[str] = []
    page.on(
        "request",
        lambda request: None if request.url.startswith(live_server.url) else external.append(request.url),
    )
    return context, page, external


def test_a_vendor_serves_itself_chip_target_model_token_and_webhook(
    cast,
    browser,
    live_server,
    media_root,
    receiver,  # noqa: F811  # the fixture imported above
):
    from apps.accounts.models import ApiToken
    from apps.notifications.models import WebhookDelivery
    from apps.notifications.services import webhook_deliver
    from apps.registry.models import Chip, HardwareTarget, ModelArtifact
    from tests.factories import TINY_BERT_CONFIG, model_weights_bytes

    weights = model_weights_bytes()
    context, page, external = open_as(browser, live_server, cast.owner)

    page.goto("/chips/")
    page.get_by_role("link", name=re.compile("Register a chip")).first.click()
    page.wait_for_url("**/chips/new/")
    for name, value in CHIP.items():  # the self-service tests' chip; the bf16 peak comes below
        if name not in ("peak_bf16_tflops", "data_center", "list_price", "currency"):
            page.fill(f"[name={name}]", value)
    page.fill("[name=peak_bf16_tflops]", "900000")  # implausible for 600 mm² and 400 W: refused
    page.get_by_role("button", name="Register the chip").click()
    page.locator("div.errors[role=alert]").filter(has_text="bf16").wait_for()  # the service's refusal
    assert page.input_value("[name=sku]") == "KX-900"  # the values are kept
    assert not Chip.objects.filter(sku="KX-900").exists()
    page.fill("[name=peak_bf16_tflops]", "256")
    page.get_by_role("button", name="Register the chip").click()
    page.wait_for_url("**/chips/")
    chip = Chip.objects.get(sku="KX-900")
    assert chip.vendor == cast.vendor and page.get_by_role("cell", name="KX-900").count()

    page.goto(f"/chips/{chip.pk}/edit/")
    page.fill("[name=name]", "Kunlun X 900 rev B")
    page.get_by_role("button", name="Save the chip").click()
    page.wait_for_url("**/chips/")
    chip.refresh_from_db()
    assert chip.name == "Kunlun X 900 rev B"

    page.goto("/targets/new/")
    page.select_option("[name=chip]", str(chip.pk))
    for name, value in {
        "slug": "kx900-node",
        "device_count": "8",
        "torch_version": "2.4.0",
        "device_identity": '{"name": "KX900"}',
    }.items():
        page.fill(f"[name={name}]", value)
    page.fill("[name=backend]", "cuda")
    page.get_by_role("button", name="Register the target").click()
    page.wait_for_url("**/targets/")
    assert HardwareTarget.objects.get(slug="kx900-node").chip == chip

    page.goto("/models/new/")
    page.fill("[name=name]", "minilm")
    page.fill("[name=version]", "1.0")
    page.select_option("[name=task]", "text-embedding")
    page.select_option("[name=architecture]", "bert-encoder")
    page.fill("[name=config]", json.dumps(TINY_BERT_CONFIG))
    page.fill("[name=license]", "Apache-2.0")
    page.set_input_files(
        "[name=weights]",
        files=[{"name": "w.safetensors", "mimeType": "application/octet-stream", "buffer": weights}],
    )
    # What the bar and its status line do while the file goes (document.open keeps the window).
    page.evaluate(
        """() => {
        const box = document.getElementById('upload-progress');
        const status = box.querySelector('[role=status]');
        window.__upload = {shown: false, done: false};
        new MutationObserver(() => { if (!box.hidden) window.__upload.shown = true; })
            .observe(box, {attributes: true});
        new MutationObserver(() => {
            if (status.textContent === status.dataset.done) window.__upload.done = true;
        }).observe(status, {childList: true, characterData: true, subtree: true});
        }"""
    )
    page.get_by_role("button", name="Upload the model").click()
    page.wait_for_url("**/models/")
    page.get_by_role("cell", name="minilm").first.wait_for()
    assert page.evaluate("window.__upload") == {"shown": True, "done": True}
    artifact = ModelArtifact.objects.get(name="minilm")
    assert artifact.owner == cast.vendor and artifact.weights_size == len(weights)
    page.screenshot(path=SHOTS / "s1-model-uploaded.png", full_page=True)

    page.goto("/tokens/")
    page.fill("[name=name]", "ci-robot")
    page.get_by_role("button", name="Create the token").click()
    secret = page.input_value("#new-token")
    token = ApiToken.objects.get(user=cast.owner, name="ci-robot")
    assert secret.startswith(token.token_key)
    api = page.request.get("/api/v1/chips/", headers={"Authorization": f"Bearer {secret}"})
    assert api.ok and "KX-900" in api.text()
    page.goto("/tokens/")
    assert secret not in page.content()  # shown once
    row = page.get_by_role("row").filter(has_text=token.token_key)
    assert "never" not in row.inner_text()  # its last use, just now
    row.get_by_role("button", name=f"Revoke {token.token_key}").click()
    page.wait_for_url("**/tokens/")
    assert not ApiToken.objects.filter(pk=token.pk).exists()
    assert page.request.get("/api/v1/chips/", headers={"Authorization": f"Bearer {secret}"}).status == 401

    page.goto("/webhooks/")
    page.fill("[name=url]", receiver.url)
    page.fill("[name=description]", "CI")
    page.get_by_role("button", name="Add the endpoint").click()
    webhook_secret = page.input_value("#new-secret")
    assert webhook_secret.startswith("whsec_")
    page.get_by_role("link", name=receiver.url).click()
    page.get_by_role("button", name="Send a test event").click()
    page.get_by_text(re.compile(r"Test event \S+ queued")).wait_for()
    delivery = WebhookDelivery.objects.get(event__type="webhook.test")
    webhook_deliver(delivery_id=delivery.pk)  # what the Celery task runs
    page.reload()
    log = page.get_by_role("row").filter(has_text=delivery.event.msg_id)
    assert "200" in log.inner_text()
    headers, body = receiver.requests[0]
    from standardwebhooks.webhooks import Webhook

    assert Webhook(webhook_secret).verify(body, headers)["type"] == "webhook.test"
    page.screenshot(path=SHOTS / "s2-webhook-delivered.png", full_page=True)
    context.close()
    assert external == []


def test_a_visitor_exports_the_registry_reads_the_history_and_verifies_from_the_qr_url(
    cast, certified, browser, live_server
):
    from apps.certificates.services import certificate_reinstate, certificate_suspend

    certificate = certified()
    certificate_suspend(certificate=certificate, reason="Surveillance run failed.", actor=cast.reviewer)
    certificate_reinstate(certificate=certificate, reason="Re-test passed.", actor=cast.reviewer)
    context, page, external = open_as(browser, live_server)

    page.goto("/registry/")
    with page.expect_download() as csv_download:
        page.get_by_role("link", name="CSV", exact=True).click()
    body = Path(csv_download.value.path()).read_bytes().decode("utf-8")
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body[1:])))
    assert rows[0][0] == "Serial" and [r[0] for r in rows[1:]] == [certificate.serial]
    with page.expect_download() as json_download:
        page.get_by_role("link", name="JSON", exact=True).click()
    listing = json.loads(Path(json_download.value.path()).read_text(encoding="utf-8"))
    assert [r["serial"] for r in listing["results"]] == [certificate.serial]

    page.get_by_role("link", name=certificate.serial).first.click()
    history = page.locator("section", has=page.locator("#history-h"))
    text = history.inner_text()
    assert text.index("Surveillance run failed.") < text.index("Re-test passed.")
    assert "reinstated" in text and "reviewer" not in text
    qr = page.locator(".verify-qr svg")
    assert qr.is_visible() and qr.bounding_box()["width"] >= 80  # large enough to scan
    verify_url = re.search(r"https?://\S+/certificates/\S+/verify/", page.inner_text("body")).group(0)
    page.emulate_media(media="print")
    assert page.locator(".verify-qr").is_visible() and page.get_by_text(verify_url).is_visible()
    page.emulate_media(media="screen")
    page.screenshot(path=SHOTS / "s3-certificate-history.png", full_page=True)

    page.goto(verify_url.replace(re.match(r"https?://[^/]+", verify_url).group(0), ""))
    page.get_by_role("heading", name="Authentic and in force").wait_for()
    assert page.get_by_role("heading", name="What was checked").is_visible()
    assert "RFC 8785" in page.inner_text("body")
    assert page.get_by_role("link", name="The full certificate").is_visible()
    page.screenshot(path=SHOTS / "s4-verify.png", full_page=True)
    context.close()
    assert external == []
