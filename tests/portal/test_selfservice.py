"""Vendor self-service in the portal (issue 17, item 2): chips, targets and models registered and
edited through the API's services, API tokens created (shown once), listed and revoked. A vendor
reaches only its own organization's objects; refused input keeps its values and shows the error
beside its field; nothing is half-saved."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.accounts.models import ApiToken
from apps.audit.models import AuditEvent
from apps.registry.models import Chip, HardwareTarget, ModelArtifact
from tests.factories import TINY_BERT_CONFIG, ChipFactory, HardwareTargetFactory, model_weights_bytes

pytestmark = pytest.mark.django_db

CHIP = {
    "sku": "KX-900",
    "name": "Kunlun X 900",
    "architecture": "XPU-R",
    "process_node_nm": "7",
    "die_area_mm2": "600",
    "memory_gib": "64",
    "memory_bandwidth_gbs": "2000",
    "tdp_w": "400",
    "interconnect_bandwidth_gbs": "0",
    "peak_fp32_tflops": "32",
    "peak_bf16_tflops": "256",
    "data_center": "on",
    "fab_country": "CN",
    "assembly_country": "CN",
    "domestic_content_pct": "80",
    "list_price": "",
    "currency": "",
    "spec_source": "https://example.org/kx900.pdf",
}


def _errors_of(html: str, field: str) -> str:
    """The error list rendered beside `field` (empty when it has none)."""
    match = re.search(rf'<ul class="errorlist" id="id_{field}_errors" role="alert">(.*?)</ul>', html, re.S)
    return match.group(1) if match else ""


def _target(chip: Chip, **overrides) -> dict:
    data = {
        "chip": str(chip.pk),
        "slug": "kx900-node",
        "backend": "cuda",
        "device_count": "8",
        "driver_version": "550.54",
        "runtime_version": "12.4",
        "torch_version": "2.4.0",
        "plugin_versions": "",
        "device_identity": '{"name": "KX900"}',
        "host_cpu": "",
        "host_memory_gib": "",
        "description": "",
    }
    data.update(overrides)
    return data


# Chips ------------------------------------------------------------------------------------------


def test_a_vendor_registers_a_chip_through_the_registry_service(cast, login):
    client = login(cast.owner)
    assert client.get("/chips/new/").status_code == 200
    response = client.post("/chips/new/", CHIP)
    assert response.status_code == 302 and response["Location"] == "/chips/"
    chip = Chip.objects.get(sku="KX-900")
    assert chip.vendor == cast.vendor
    assert chip.declared_peaks() == {"fp32": 32.0, "bf16": 256.0}
    assert AuditEvent.objects.filter(action="chip.created", object_id=str(chip.pk)).exists()
    listing = client.get("/chips/").content.decode()
    assert "Chip KX-900 registered." in listing and f'href="/chips/{chip.pk}/edit/"' in listing


def test_a_refused_chip_keeps_its_values_shows_each_error_beside_its_field_and_saves_nothing(cast, login):
    client = login(cast.owner)
    response = client.post("/chips/new/", {**CHIP, "fab_country": "cn", "tdp_w": "-3", "sku": ""})
    assert response.status_code == 400
    html = response.content.decode()
    assert "ISO 3166-1" in _errors_of(html, "fab_country")
    assert _errors_of(html, "tdp_w") and _errors_of(html, "sku")
    assert _errors_of(html, "name") == ""
    assert 'value="Kunlun X 900"' in html and 'value="cn"' in html  # what was typed stays
    assert not Chip.objects.exists()


def test_the_services_refusal_of_an_implausible_peak_is_shown_on_the_form(cast, login):
    client = login(cast.owner)
    response = client.post("/chips/new/", {**CHIP, "peak_bf16_tflops": "900000"})
    assert response.status_code == 400
    html = response.content.decode()
    assert '<div class="errors" role="alert">' in html and "bf16" in html
    assert 'value="900000' in html
    assert not Chip.objects.exists()


def test_a_duplicate_sku_is_refused_on_the_sku_field(cast, login):
    ChipFactory(vendor=cast.vendor, sku="KX-900")
    response = login(cast.owner).post("/chips/new/", CHIP)
    assert response.status_code == 400
    assert "already has a chip with this SKU" in _errors_of(response.content.decode(), "sku")
    assert Chip.objects.filter(sku="KX-900").count() == 1


def test_a_vendor_edits_its_own_chip_and_a_blank_peak_clears_it(cast, login):
    chip = ChipFactory(vendor=cast.vendor, sku="KX-900", peak_fp32_tflops=30, peak_bf16_tflops=200)
    client = login(cast.colleague)  # a colleague: the chip is the organization's
    form = client.get(f"/chips/{chip.pk}/edit/").content.decode()
    assert 'value="KX-900"' in form and 'value="200.0"' in form
    response = client.post(f"/chips/{chip.pk}/edit/", {**CHIP, "peak_fp32_tflops": "", "name": "Renamed"})
    assert response.status_code == 302
    chip.refresh_from_db()
    assert chip.name == "Renamed" and chip.declared_peaks() == {"bf16": 256.0}
    assert AuditEvent.objects.filter(action="chip.updated", object_id=str(chip.pk)).exists()


def test_a_certified_chips_signed_figures_cannot_change_and_the_form_says_why(cast, login, certified):
    certificate = certified()
    chip = certificate.campaign.target.chip
    before = (chip.name, chip.memory_gib)
    data = {
        key: ("on" if value is True else "" if value in (None, False) else str(value))
        for key, value in {
            **{k: getattr(chip, k) for k in CHIP},
            "memory_gib": chip.memory_gib * 2,
        }.items()
    }
    response = login(cast.owner).post(f"/chips/{chip.pk}/edit/", data)
    assert response.status_code == 400
    html = response.content.decode()
    assert certificate.serial in html and "cannot change while a certificate" in html
    chip.refresh_from_db()
    assert (chip.name, chip.memory_gib) == before


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_vendors_chip_is_not_found(cast, login, method):
    chip = ChipFactory(vendor=cast.foreign_vendor, name="Theirs")
    response = getattr(login(cast.owner), method)(f"/chips/{chip.pk}/edit/", CHIP)
    assert response.status_code == 404
    chip.refresh_from_db()
    assert chip.name == "Theirs"


@pytest.mark.parametrize("who", ["reviewer", "buyer", None])
def test_only_vendors_register_chips(cast, login, who):
    response = login(getattr(cast, who) if who else None).post("/chips/new/", CHIP)
    assert response.status_code in (302, 403)
    if who is None:
        assert response["Location"].startswith("/login/")
    assert not Chip.objects.exists()


# Hardware targets -------------------------------------------------------------------------------


def test_a_vendor_registers_a_target_of_its_chip(cast, login):
    chip = ChipFactory(vendor=cast.vendor)
    client = login(cast.owner)
    assert chip.sku in client.get("/targets/new/").content.decode()
    response = client.post("/targets/new/", _target(chip))
    assert response.status_code == 302 and response["Location"] == "/targets/"
    target = HardwareTarget.objects.get(slug="kx900-node")
    assert target.vendor == cast.vendor and target.device_identity == {"name": "KX900"}
    assert target.plugin_versions == {}
    assert target.queue in client.get("/targets/").content.decode()


def test_a_target_cannot_be_registered_on_another_vendors_chip(cast, login):
    foreign_chip = ChipFactory(vendor=cast.foreign_vendor)
    ChipFactory(vendor=cast.vendor)
    client = login(cast.owner)
    assert foreign_chip.sku not in client.get("/targets/new/").content.decode()
    response = client.post("/targets/new/", _target(foreign_chip))
    assert response.status_code == 400
    assert _errors_of(response.content.decode(), "chip")
    assert not HardwareTarget.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("plugin_versions", "[1, 2]", "JSON object"),
        ("plugin_versions", "{not json", "JSON"),
        ("slug", "Not A Slug", "Lower-case"),
    ],
)
def test_a_refused_target_shows_the_error_beside_its_field(cast, login, field, value, message):
    chip = ChipFactory(vendor=cast.vendor)
    response = login(cast.owner).post("/targets/new/", _target(chip, **{field: value}))
    assert response.status_code == 400
    html = response.content.decode()
    assert message in _errors_of(html, field)
    assert not HardwareTarget.objects.exists()


def test_the_services_check_of_the_device_identity_is_shown_on_its_field(cast, login):
    chip = ChipFactory(vendor=cast.vendor)
    response = login(cast.owner).post("/targets/new/", _target(chip, device_identity='{"colour": "red"}'))
    assert response.status_code == 400
    assert "pci_bus_id" in _errors_of(response.content.decode(), "device_identity")
    assert not HardwareTarget.objects.exists()


def test_a_vendor_edits_its_target_and_another_vendors_target_is_not_found(cast, login):
    target = HardwareTargetFactory(chip__vendor=cast.vendor, slug="node-a")
    foreign = HardwareTargetFactory(chip__vendor=cast.foreign_vendor, slug="node-b")
    client = login(cast.owner)
    response = client.post(
        f"/targets/{target.pk}/edit/", _target(target.chip, slug="node-a", host_cpu="EPYC")
    )
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.host_cpu == "EPYC"
    assert client.get(f"/targets/{foreign.pk}/edit/").status_code == 404
    assert client.post(f"/targets/{foreign.pk}/edit/", _target(target.chip)).status_code == 404


# Models -----------------------------------------------------------------------------------------


def _model(weights: bytes, **overrides) -> dict:
    data = {
        "name": "minilm",
        "version": "1.0",
        "task": "text-embedding",
        "architecture": "bert-encoder",
        "config": json.dumps(TINY_BERT_CONFIG),
        "license": "Apache-2.0",
        "weights": SimpleUploadedFile("w.safetensors", weights, content_type="application/octet-stream"),
    }
    data.update(overrides)
    return data


def test_a_vendor_uploads_a_model_with_csrf_and_its_weights_are_hashed(cast, login, media_root):
    weights = model_weights_bytes()
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.owner)
    page = client.get("/models/new/").content.decode()
    assert "js/upload.js" in page and "<progress" in page
    assert client.post("/models/new/", _model(weights)).status_code == 403  # no CSRF token
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post("/models/new/", {**_model(weights), "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/models/"
    artifact = ModelArtifact.objects.get()
    assert artifact.owner == cast.vendor and artifact.tensor_count == 21
    assert artifact.weights_sha256 == hashlib.sha256(weights).hexdigest()
    assert AuditEvent.objects.filter(action="model.created").exists()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"config": "{"}, "config", "Not valid JSON"),
        ({"config": "[]"}, "config", "JSON object"),
        ({"version": "../1"}, "version", ""),
    ],
)
def test_a_refused_model_keeps_its_fields_and_stores_no_file(
    cast, login, media_root, overrides, field, message
):
    response = login(cast.owner).post("/models/new/", _model(model_weights_bytes(), **overrides))
    assert response.status_code == 400
    html = response.content.decode()
    assert _errors_of(html, field) and message in _errors_of(html, field)
    assert 'value="Apache-2.0"' in html
    assert not ModelArtifact.objects.exists()
    assert not media_root.exists() or not any(p.is_file() for p in media_root.rglob("*"))


def test_weights_that_are_not_safetensors_are_refused_by_the_service_on_the_weights_field(
    cast, login, media_root
):
    response = login(cast.owner).post("/models/new/", _model(b"\x80\x04K\x01." * 10))
    assert response.status_code == 400
    assert "Not a safetensors file" in _errors_of(response.content.decode(), "weights")
    assert not ModelArtifact.objects.exists()
    assert not media_root.exists() or not any(p.is_file() for p in media_root.rglob("*"))


def test_an_upload_over_the_limit_is_refused(cast, login, media_root, settings):
    settings.ARTIFACT_MAX_UPLOAD_BYTES = 2048
    response = login(cast.owner).post("/models/new/", _model(model_weights_bytes()))
    assert response.status_code in (400, 413)
    assert "limited to 2048 bytes" in response.content.decode()
    assert not ModelArtifact.objects.exists()


# API tokens -------------------------------------------------------------------------------------


def test_a_token_is_shown_once_authenticates_the_api_and_is_listed_with_its_last_use(cast, login):
    client = login(cast.owner)
    response = client.post("/tokens/", {"name": "ci", "ttl_days": "30"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    secret = re.search(r'id="new-token" readonly value="([^"]+)"', response.content.decode()).group(1)
    token = ApiToken.objects.get(user=cast.owner, name="ci")
    assert secret.startswith(token.token_key) and secret not in str(token.digest)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/v1/chips/").status_code == 200
    listing = client.get("/tokens/").content.decode()
    assert secret not in listing  # shown once
    token.refresh_from_db()
    assert token.last_used_at is not None and token.token_key in listing
    assert "never" not in listing.split(token.token_key, 1)[1].split("</tr>", 1)[0]


def test_a_refused_lifetime_is_shown_beside_its_field_and_creates_nothing(cast, login):
    response = login(cast.owner).post("/tokens/", {"name": "ci", "ttl_days": "400"})
    assert response.status_code == 400
    assert _errors_of(response.content.decode(), "ttl_days")
    assert not ApiToken.objects.filter(name="ci").exists()


def test_a_member_revokes_only_their_own_tokens(cast, login):
    from apps.accounts.services import api_token_create

    mine, my_secret = api_token_create(user=cast.owner, name="mine")
    theirs, their_secret = api_token_create(user=cast.colleague, name="theirs")
    client = login(cast.owner)
    refused = client.post(f"/tokens/{theirs.token_key}/revoke/", follow=True)
    assert "No token of yours" in refused.content.decode()
    assert Client(HTTP_AUTHORIZATION=f"Bearer {their_secret}").get("/api/v1/chips/").status_code == 200
    done = client.post(f"/tokens/{mine.token_key}/revoke/", follow=True)
    assert "revoked" in done.content.decode()
    assert Client(HTTP_AUTHORIZATION=f"Bearer {my_secret}").get("/api/v1/chips/").status_code == 401
    assert AuditEvent.objects.filter(action="token.revoked", object_id=mine.token_key).exists()
    assert client.get(f"/tokens/{mine.token_key}/revoke/").status_code == 405


def test_the_token_page_is_for_every_member_and_not_for_visitors(cast, login):
    for user in (cast.reviewer, cast.buyer, cast.owner):
        assert login(user).get("/tokens/").status_code == 200
    assert login(None).get("/tokens/")["Location"].startswith("/login/")


# Chinese ----------------------------------------------------------------------------------------


def test_the_self_service_pages_are_in_chinese(cast, login):
    chip = ChipFactory(vendor=cast.vendor)
    client = login(cast.owner)
    for path, words in [
        ("/chips/new/", ("注册芯片", "声明数据的来源", "必填")),
        (f"/targets/{HardwareTargetFactory(chip=chip).pk}/edit/", ("编辑硬件目标", "驱动版本")),
        ("/models/new/", ("上传模型", "上传进度")),
        ("/tokens/", ("API 令牌", "创建令牌")),
        ("/chips/", ("芯片", "注册芯片")),
    ]:
        html = client.get(path, HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
        for word in words:
            assert word in html, (path, word)
    refused = client.post("/chips/new/", {**CHIP, "sku": ""}, HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "该字段是必填项" in refused  # Django's own catalogue, beside the field
