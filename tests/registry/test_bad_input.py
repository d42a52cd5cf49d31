"""Bad input is answered 400 (or 404/413) with field errors in the one error body, never a 500,
and nothing is half-saved: no row and no file is left behind."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.registry.models import Chip, HardwareTarget, ModelArtifact, Runner
from tests.factories import (
    TINY_BERT_CONFIG,
    ChipFactory,
    HardwareTargetFactory,
    ModelArtifactFactory,
    RunnerFactory,
    ed25519_public_pem,
    model_weights_bytes,
)


def state(media_root):
    """Row counts of the registry and the files under MEDIA_ROOT."""
    files = (
        sorted(str(p.relative_to(media_root)) for p in media_root.rglob("*") if p.is_file())
        if media_root.exists()
        else []
    )
    return {
        "chips": Chip.objects.count(),
        "targets": HardwareTarget.objects.count(),
        "models": ModelArtifact.objects.count(),
        "runners": Runner.objects.count(),
        "files": files,
    }


def assert_refused(response, status=400, field=None):
    assert response.status_code == status, response.content
    body = response.json()
    error = body
    assert set(error) >= {"type", "title", "status", "code", "detail", "instance"}
    assert error["status"] == status
    assert error["detail"]
    if status == 400:
        assert error["code"] == "invalid"
        assert isinstance(error["errors"], dict) and error["errors"]
    if field is not None:
        assert field in error["errors"], error
    return error


# Chips ----------------------------------------------------------------------------------------

VALID_CHIP = {
    "sku": "X-100",
    "name": "X 100",
    "architecture": "Hopper-like",
    "process_node_nm": 4,
    "die_area_mm2": 814,
    "memory_gib": 80,
    "memory_bandwidth_gbs": 3350,
    "tdp_w": 700,
    "interconnect_bandwidth_gbs": 900,
    "declared_peak": {"fp32": 67, "bf16": 989.4, "int8": 1979},
    "data_center": True,
    "fab_country": "TW",
    "assembly_country": "TW",
    "domestic_content_pct": 12.5,
    "list_price": "25000.00",
    "currency": "USD",
    "spec_source": "Datasheet rev 3",
}

BAD_CHIP_FIELDS = [
    ("process_node_nm", -1),
    ("process_node_nm", 0),
    ("process_node_nm", 0.1),
    ("process_node_nm", 5000),
    ("process_node_nm", "small"),
    ("process_node_nm", None),
    ("die_area_mm2", 0),
    ("die_area_mm2", -814),
    ("die_area_mm2", 1e9),
    ("memory_gib", -1),
    ("memory_gib", 2e6),
    ("memory_gib", None),
    ("memory_bandwidth_gbs", -1),
    ("memory_bandwidth_gbs", 1e12),
    ("tdp_w", 0),
    ("tdp_w", -700),
    ("tdp_w", 1e7),
    ("tdp_w", "hot"),
    ("tdp_w", "NaN"),
    ("tdp_w", "Infinity"),
    ("memory_gib", "nan"),
    ("process_node_nm", "-inf"),
    ("interconnect_bandwidth_gbs", -1),
    ("interconnect_bandwidth_gbs", 1e12),
    ("domestic_content_pct", -0.1),
    ("domestic_content_pct", 100.1),
    ("list_price", -1),
    ("list_price", "cheap"),
    ("list_price", "1e20"),
    ("list_price", "1.234"),
    ("data_center", "maybe"),
    ("sku", ""),
    ("sku", "has space"),
    ("sku", "-leading"),
    ("sku", "x" * 65),
    ("sku", "ümlaut"),
    ("sku", None),
    ("name", ""),
    ("name", "x" * 201),
    ("architecture", "x" * 101),
    ("fab_country", "usa"),
    ("fab_country", "us"),
    ("fab_country", "U1"),
    ("fab_country", ""),
    ("assembly_country", "XYZ"),
    ("assembly_country", None),
    ("currency", "usd"),
    ("currency", "US"),
    ("currency", "DOLLARS"),
    ("spec_source", ""),
    ("spec_source", "x" * 501),
    ("declared_peak", {"fp64": 10}),
    ("declared_peak", {"bf16": -1}),
    ("declared_peak", {"bf16": 2e6}),
    ("declared_peak", {"bf16": "fast"}),
    ("declared_peak", "989"),
    ("declared_peak", [989]),
    ("declared_peak", {"BF16": 1}),
    ("declared_peak", {"bf16": "NaN"}),
]


@pytest.mark.parametrize(("field", "value"), BAD_CHIP_FIELDS)
def test_a_chip_with_a_bad_field_is_refused(cast, client_for, media_root, field, value):
    before = state(media_root)
    response = client_for(cast.owner).post("/api/v1/chips/", {**VALID_CHIP, field: value}, format="json")
    assert_refused(response, field=field)
    assert state(media_root) == before


@pytest.mark.parametrize(("field", "value"), BAD_CHIP_FIELDS)
def test_updating_a_chip_with_a_bad_field_is_refused_and_changes_nothing(cast, client_for, field, value):
    chip = ChipFactory(vendor=cast.vendor, sku="KEEP", list_price=100, currency="EUR")
    before = Chip.objects.filter(pk=chip.pk).values().get()
    response = client_for(cast.owner).patch(f"/api/v1/chips/{chip.pk}/", {field: value}, format="json")
    assert_refused(response, field=field)
    assert Chip.objects.filter(pk=chip.pk).values().get() == before


def test_a_valid_chip_is_created_with_every_field(cast, client_for):
    response = client_for(cast.owner).post("/api/v1/chips/", VALID_CHIP, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["vendor"] == "acme"
    assert body["declared_peak"] == {"fp32": 67.0, "bf16": 989.4, "int8": 1979.0}
    chip = Chip.objects.get(pk=body["id"])
    assert (chip.peak_bf16_tflops, chip.peak_int8_tops, chip.peak_fp8_tflops) == (989.4, 1979, None)
    assert str(chip.list_price) == "25000.00"


@pytest.mark.parametrize("field", ["colour", "peak_bf16_tflops", "owner"])
def test_an_unknown_top_level_field_is_refused(cast, client_for, field):
    response = client_for(cast.owner).post("/api/v1/chips/", {**VALID_CHIP, field: "x"}, format="json")
    assert_refused(response, field=field)
    assert Chip.objects.count() == 0


def test_a_chip_cannot_be_registered_for_another_vendor(cast, client_for):
    response = client_for(cast.owner).post(
        "/api/v1/chips/", {**VALID_CHIP, "vendor": "borealis"}, format="json"
    )
    # `vendor` is read-only: either refused or ignored, never obeyed.
    assert response.status_code in (201, 400)
    assert not Chip.objects.filter(vendor=cast.foreign_vendor).exists()


def test_a_list_price_needs_a_currency(cast, client_for):
    response = client_for(cast.owner).post("/api/v1/chips/", {**VALID_CHIP, "currency": ""}, format="json")
    assert_refused(response, field="currency")
    chip = ChipFactory(vendor=cast.vendor, sku="P", list_price=None, currency="")
    response = client_for(cast.owner).patch(
        f"/api/v1/chips/{chip.pk}/", {"list_price": "10.00"}, format="json"
    )
    assert_refused(response, field="currency")


def test_a_duplicate_sku_is_refused_for_the_same_vendor_but_another_vendor_may_reuse_it(cast, client_for):
    ChipFactory(vendor=cast.vendor, sku="X-100")
    assert_refused(client_for(cast.colleague).post("/api/v1/chips/", VALID_CHIP, format="json"), field="sku")
    assert Chip.objects.filter(sku="X-100").count() == 1
    response = client_for(cast.foreign).post("/api/v1/chips/", VALID_CHIP, format="json")
    assert response.status_code == 201
    assert Chip.objects.filter(sku="X-100").count() == 2


def test_renaming_a_chip_to_a_taken_sku_is_refused(cast, client_for):
    ChipFactory(vendor=cast.vendor, sku="TAKEN")
    chip = ChipFactory(vendor=cast.vendor, sku="FREE")
    response = client_for(cast.owner).patch(f"/api/v1/chips/{chip.pk}/", {"sku": "TAKEN"}, format="json")
    assert_refused(response, field="sku")
    chip.refresh_from_db()
    assert chip.sku == "FREE"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{not json", "application/json"),
        ('{"tdp_w": NaN}', "application/json"),
        ("[]", "application/json"),
        ('"a string"', "application/json"),
        ("sku=X", "text/plain"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused_without_a_500(cast, client_for, body, content_type):
    response = client_for(cast.owner).generic("POST", "/api/v1/chips/", body, content_type=content_type)
    assert response.status_code in (400, 415)
    assert response.json()["status"] == response.status_code
    assert Chip.objects.count() == 0


# Hardware targets ------------------------------------------------------------------------------


@pytest.fixture
def own_chip(cast):
    return ChipFactory(vendor=cast.vendor, sku="OWN")


def valid_target(chip):
    return {
        "chip": chip.pk,
        "slug": "acme-x100-cuda",
        "backend": "cuda",
        "device_count": 8,
        "driver_version": "550.54",
        "runtime_version": "12.4",
        "torch_version": "2.4.0",
        "plugin_versions": {"torch_npu": "2.4.0"},
        "host_cpu": "Xeon",
        "host_memory_gib": 2048,
    }


BAD_TARGET_FIELDS = [
    ("slug", "Bad_Slug"),
    ("slug", "-x"),
    ("slug", "x-"),
    ("slug", "a" * 65),
    ("slug", "has space"),
    ("slug", ""),
    ("slug", "target.x"),
    ("slug", None),
    ("backend", "CUDA"),
    ("backend", "1cuda"),
    ("backend", "c"),
    ("backend", "cu-da"),
    ("backend", "x" * 33),
    ("backend", ""),
    ("backend", "cuda; rm -rf /"),
    ("plugin_versions", []),
    ("plugin_versions", "torch_npu=2.4"),
    ("plugin_versions", {"torch_npu": 2.4}),
    ("plugin_versions", {"torch_npu": {"v": "2"}}),
    ("plugin_versions", {"k" * 65: "1"}),
    ("plugin_versions", {"torch_npu": None}),
    ("device_count", 0),
    ("device_count", -1),
    ("device_count", 5000),
    ("device_count", "many"),
    ("host_memory_gib", -1),
    ("host_memory_gib", 1e12),
    ("host_memory_gib", "NaN"),
    ("torch_version", ""),
    ("torch_version", "x" * 101),
    ("chip", None),
    ("chip", 999999),
    ("chip", "OWN"),
    ("colour", "red"),
]


@pytest.mark.parametrize(("field", "value"), BAD_TARGET_FIELDS)
def test_a_target_with_a_bad_field_is_refused(cast, client_for, own_chip, media_root, field, value):
    before = state(media_root)
    response = client_for(cast.owner).post(
        "/api/v1/targets/", {**valid_target(own_chip), field: value}, format="json"
    )
    assert_refused(response, field=field)
    assert state(media_root) == before


@pytest.mark.parametrize(("field", "value"), [c for c in BAD_TARGET_FIELDS if c[0] != "colour"])
def test_updating_a_target_with_a_bad_field_is_refused_and_changes_nothing(
    cast, client_for, own_chip, field, value
):
    target = HardwareTargetFactory(chip=own_chip, slug="keep")
    before = HardwareTarget.objects.filter(pk=target.pk).values().get()
    response = client_for(cast.owner).patch(f"/api/v1/targets/{target.pk}/", {field: value}, format="json")
    assert_refused(response, field=field)
    assert HardwareTarget.objects.filter(pk=target.pk).values().get() == before


def test_a_valid_target_names_its_queue(cast, client_for, own_chip):
    response = client_for(cast.owner).post("/api/v1/targets/", valid_target(own_chip), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["queue"] == "target.acme.acme-x100-cuda"


@pytest.mark.parametrize("backend", ["cpu", "cuda", "rocm", "xpu", "mps", "npu", "mlu", "my_plugin2"])
def test_any_well_formed_backend_name_is_accepted(cast, client_for, own_chip, backend):
    response = client_for(cast.owner).post(
        "/api/v1/targets/", {**valid_target(own_chip), "backend": backend}, format="json"
    )
    assert response.status_code == 201, response.content


def test_a_target_pointing_at_a_foreign_chip_is_refused_on_the_chip_field(cast, client_for, own_chip):
    foreign_chip = ChipFactory(vendor=cast.foreign_vendor)
    response = client_for(cast.owner).post("/api/v1/targets/", valid_target(foreign_chip), format="json")
    error = assert_refused(response, field="chip")
    # Same message as for a chip that does not exist: the foreign chip's existence does not leak.
    missing = client_for(cast.owner).post(
        "/api/v1/targets/", {**valid_target(own_chip), "chip": 999999}, format="json"
    )
    assert error["errors"]["chip"] == [
        m.replace("999999", str(foreign_chip.pk)) for m in missing.json()["errors"]["chip"]
    ]
    assert HardwareTarget.objects.count() == 0


def test_a_duplicate_target_slug_of_ones_own_is_refused(cast, client_for, own_chip):
    # Slugs are unique per vendor: another vendor's is accepted (tests/registry/test_namespaces.py).
    HardwareTargetFactory(chip=own_chip, slug="acme-x100-cuda")
    response = client_for(cast.owner).post("/api/v1/targets/", valid_target(own_chip), format="json")
    assert_refused(response, field="slug")
    assert HardwareTarget.objects.count() == 1


# Model artifacts -------------------------------------------------------------------------------


def upload(client, weights: bytes | None, **overrides):
    payload = {
        "name": "minilm",
        "version": "1.0",
        "task": "text-embedding",
        "architecture": "bert-encoder",
        "config": json.dumps(TINY_BERT_CONFIG),
        "license": "Apache-2.0",
    }
    if weights is not None:
        payload["weights"] = SimpleUploadedFile(
            "weights.safetensors", weights, content_type="application/octet-stream"
        )
    payload.update(overrides)
    payload = {key: value for key, value in payload.items() if value is not None}
    return client.post("/api/v1/models/", payload, format="multipart")


def with_header(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def zip_of_a_pickle() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": [1.0]}))
    return buffer.getvalue()


GOOD = model_weights_bytes(1)
F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}

NOT_SAFETENSORS = {
    "random bytes": bytes(range(256)) * 4,
    "a pickle": pickle.dumps({"state_dict": {"w": [1.0, 2.0, 3.0]}}),
    "a torch zip": zip_of_a_pickle(),
    "too short": b"\x01\x02",
    "truncated body": GOOD[:-10],
    "trailing bytes": GOOD + b"\x00" * 16,
    "header claims huge length": struct.pack("<Q", 2**60) + b"{}",
    "header claims more than the file": struct.pack("<Q", 1000) + b'{"a": 1}',
    "header not json": struct.pack("<Q", 4) + b"\xff\xfe\xfd\xfc" + b"\x00" * 8,
    "header is a list": with_header([1, 2], b""),  # type: ignore[arg-type]
    "no tensors": with_header({"__metadata__": {"format": "pt"}}, b""),
    "overlapping offsets": with_header(
        {"a": F32_2, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\x00" * 12
    ),
    "offsets outside the file": with_header(
        {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 800]}}, b"\x00" * 8
    ),
    "offsets reversed": with_header(
        {"a": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}, b"\x00" * 8
    ),
    "size does not match shape": with_header(
        {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\x00" * 8
    ),
    "unknown dtype": with_header({"a": {"dtype": "F128", "shape": [1], "data_offsets": [0, 8]}}, b"\x00" * 8),
    "negative shape": with_header(
        {"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\x00" * 8
    ),
    "missing offsets": with_header({"a": {"dtype": "F32", "shape": [2]}}, b"\x00" * 8),
    "gap between tensors": with_header(
        {"a": F32_2, "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}}, b"\x00" * 20
    ),
    "bad metadata": with_header({"__metadata__": {"n": 1}, "a": F32_2}, b"\x00" * 8),
    "boolean offsets": with_header(
        {"a": {"dtype": "F32", "shape": [2], "data_offsets": [False, 8]}}, b"\x00" * 8
    ),
    "huge shape": with_header(
        {"a": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}}, b"\x00" * 8
    ),
}


@pytest.mark.parametrize("content", NOT_SAFETENSORS.values(), ids=NOT_SAFETENSORS.keys())
def test_a_file_that_is_not_safetensors_is_refused_and_not_stored(cast, client_for, media_root, content):
    before = state(media_root)
    response = upload(client_for(cast.owner), content)
    assert_refused(response, field="weights")
    assert state(media_root) == before


def test_an_empty_file_or_no_file_is_refused(cast, client_for, media_root):
    assert_refused(upload(client_for(cast.owner), b""), field="weights")
    assert_refused(upload(client_for(cast.owner), None), field="weights")
    assert state(media_root)["files"] == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("config", "[1, 2]"),
        ("config", "not json"),
        ("config", "42"),
        ("config", '"text"'),
        ("config", "null"),
        ("config", json.dumps({"blob": "x" * 70_000})),
        ("task", "mind-reading"),
        ("architecture", "my-custom-code"),
        ("name", "../etc/passwd"),
        ("name", ""),
        ("version", "1 0"),
        ("license", ""),
        ("license", "x" * 101),
        ("colour", "red"),
    ],
)
def test_a_model_with_bad_metadata_is_refused_and_its_file_not_stored(
    cast, client_for, media_root, field, value
):
    before = state(media_root)
    response = upload(client_for(cast.owner), GOOD, **{field: value})
    assert_refused(response, field=field)
    assert state(media_root) == before


def test_an_oversized_upload_is_refused_with_413_and_not_stored(cast, client_for, media_root, settings):
    settings.ARTIFACT_MAX_UPLOAD_BYTES = 4096
    big = model_weights_bytes(2, {**TINY_BERT_CONFIG, "vocab_size": 512})
    assert len(big) > 4096
    before = state(media_root)
    error = assert_refused(upload(client_for(cast.owner), big), status=413)
    assert error["code"] == "too_large"
    assert state(media_root) == before
    assert upload(client_for(cast.owner), model_weights_bytes(3)).status_code == 201


def test_a_duplicate_model_version_is_refused_and_leaves_one_file(cast, client_for, media_root):
    client = client_for(cast.owner)
    assert upload(client, GOOD).status_code == 201
    before = state(media_root)
    assert_refused(upload(client, model_weights_bytes(7)), field="version")
    assert state(media_root) == before
    # Another vendor may use the same name and version.
    assert upload(client_for(cast.foreign), model_weights_bytes(8)).status_code == 201


# Runners --------------------------------------------------------------------------------------


def pem_of(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


BAD_KEYS = {
    "garbage": "not a key",
    "empty": "",
    "truncated pem": ed25519_public_pem()[:60],
    "rsa": pem_of(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    "ec p256": pem_of(ec.generate_private_key(ec.SECP256R1())),
    "ed25519 private key": ed25519.Ed25519PrivateKey.generate()
    .private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    .decode(),
    "raw hex": ed25519.Ed25519PrivateKey.generate()
    .public_key()
    .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    .hex(),
}


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_a_runner_with_a_key_that_is_not_an_ed25519_public_key_is_refused(cast, client_for, key):
    response = client_for(cast.platform_admin).post(
        "/api/v1/runners/", {"name": "r1", "public_key": key, "targets": []}, format="json"
    )
    assert_refused(response, field="public_key")
    assert Runner.objects.count() == 0


def test_a_runner_key_registered_to_another_runner_is_refused(cast, client_for):
    key = ed25519_public_pem()
    RunnerFactory(name="first", public_key=key)
    client = client_for(cast.platform_admin)
    response = client.post(
        "/api/v1/runners/", {"name": "second", "public_key": key, "targets": []}, format="json"
    )
    assert_refused(response, field="public_key")
    other = RunnerFactory(name="other")
    response = client.patch(f"/api/v1/runners/{other.pk}/", {"public_key": key}, format="json")
    assert_refused(response, field="public_key")
    assert Runner.objects.count() == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Bad Name"),
        ("name", ""),
        ("targets", ["no-such-target"]),
        ("targets", "own"),
        ("status", "sleeping"),
        ("key_id", "0" * 64),
        ("colour", "red"),
    ],
)
def test_a_runner_with_bad_fields_is_refused(cast, client_for, field, value):
    payload = {"name": "r1", "public_key": ed25519_public_pem(), "targets": [], field: value}
    response = client_for(cast.platform_admin).post("/api/v1/runners/", payload, format="json")
    if field == "key_id":  # derived from the key: read-only, never typed
        assert response.status_code in (201, 400)
        if response.status_code == 201:
            assert Runner.objects.get().key_id != "0" * 64
        return
    assert_refused(response, field=field)
    assert Runner.objects.count() == 0


def test_a_duplicate_runner_name_is_refused(cast, client_for):
    RunnerFactory(name="r1")
    response = client_for(cast.platform_admin).post(
        "/api/v1/runners/", {"name": "r1", "public_key": ed25519_public_pem(), "targets": []}, format="json"
    )
    assert_refused(response, field="name")


def test_a_registered_runner_key_is_normalized_and_identified(cast, client_for):
    target = HardwareTargetFactory(chip=ChipFactory(vendor=cast.vendor), slug="t1")
    key = ed25519.Ed25519PrivateKey.generate()
    response = client_for(cast.platform_admin).post(
        "/api/v1/runners/",
        {"name": "r1", "public_key": "\n  " + pem_of(key) + "\n\n", "targets": ["t1"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    runner = Runner.objects.get()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    import hashlib

    assert runner.key_id == hashlib.sha256(raw).hexdigest()
    assert runner.public_key == pem_of(key)
    assert list(runner.targets.all()) == [target]
    assert response.json()["status"] == "pending"


def test_models_of_one_vendor_stay_when_another_vendor_uploads_the_same_bytes(cast, client_for, media_root):
    ModelArtifactFactory(owner=cast.vendor, content=GOOD)
    response = upload(client_for(cast.foreign), GOOD)
    assert response.status_code == 201
    assert ModelArtifact.objects.count() == 2


# Crafted JSON in a model's config and in a safetensors header (issue 12.8) -------------------------


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


CRAFTED_CONFIGS = {
    "1000 deep": '{"x": ' + "[" * 1000 + "]" * 1000 + "}",  # RecursionError in json.loads: was a 500
    "40 deep": nested(40),
    # PostgreSQL's jsonb refuses a NUL: a 500, and the weights file stayed behind.
    "NUL in a value": '{"hidden_size": 8, "name": "bert\\u0000"}',
    "NUL in a key": '{"hidden\\u0000size": 8}',
    "5000-digit integer": '{"hidden_size": ' + "9" * 5000 + "}",
    "NaN": '{"hidden_size": NaN}',
}


@pytest.mark.parametrize("config", CRAFTED_CONFIGS.values(), ids=CRAFTED_CONFIGS.keys())
def test_a_crafted_config_is_refused_and_its_weights_not_stored(cast, client_for, media_root, config):
    before = state(media_root)
    assert_refused(upload(client_for(cast.owner), GOOD, config=config), field="config")
    assert state(media_root) == before


def test_a_config_nested_to_the_limit_is_accepted(cast, client_for):
    # The tiny encoder's config with one key nested so that the whole config is 31 levels deep.
    config = json.dumps(TINY_BERT_CONFIG)[:-1] + ', "notes": ' + nested(30) + "}"
    response = upload(client_for(cast.owner), GOOD, config=config)
    assert response.status_code == 201, response.content


def raw_header(text: str, data: bytes = b"\x00" * 8) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw + data


CRAFTED_HEADERS = {
    # Python's json recursed until RecursionError (not a ValueError): a 500.
    "1000 deep": raw_header('{"a": ' + "[" * 1000 + "]" * 1000 + "}"),
    "deeper than safetensors nests": raw_header(
        '{"__metadata__": {"k": {"deeper": {"still": "v"}}}, '
        '"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}'
    ),
    # int() of more than 4,300 digits raises ValueError, which is not a JSONDecodeError: a 500.
    "5000-digit integer": raw_header(
        '{"a": {"dtype": "F32", "shape": [' + "9" * 5000 + '], "data_offsets": [0, 8]}}'
    ),
    "30-digit offset": raw_header(
        '{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, ' + "9" * 30 + "]}}"
    ),
    "NaN shape": raw_header('{"a": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 8]}}'),
}


@pytest.mark.parametrize("content", CRAFTED_HEADERS.values(), ids=CRAFTED_HEADERS.keys())
def test_a_crafted_safetensors_header_is_refused_and_not_stored(cast, client_for, media_root, content):
    before = state(media_root)
    error = assert_refused(upload(client_for(cast.owner), content), field="weights")
    assert "safetensors" in " ".join(error["errors"]["weights"])
    assert state(media_root) == before


def test_a_refused_save_leaves_no_weights_file_behind(cast, media_root):
    """Whatever the database refuses after the file was written (on PostgreSQL a NUL in a text
    column, which model validation does not catch), the new file is deleted again."""
    from django.db import connection

    from apps.registry.services import model_artifact_create

    before = state(media_root)
    weights = SimpleUploadedFile("weights.safetensors", GOOD, content_type="application/octet-stream")
    fields = {
        "owner": cast.vendor,
        "name": "minilm",
        "version": "1.0",
        "task": "text-embedding",
        "architecture": "bert-encoder",
        "config": dict(TINY_BERT_CONFIG),
        "weights": weights,
    }
    if connection.vendor == "postgresql":
        with pytest.raises(Exception):  # noqa: B017, PT011 - psycopg's ValueError, whatever the driver says
            model_artifact_create(**fields, license="MIT\x00")
    else:  # SQLite stores NUL: provoke a refusal the database makes after the file is written
        ModelArtifactFactory(owner=cast.vendor, name="taken", version="1.0", content=model_weights_bytes(5))
        before = state(media_root)
        from django.core.exceptions import ValidationError
        from django.db import IntegrityError, transaction

        with transaction.atomic():
            connection.cursor().execute(
                "CREATE TRIGGER refuse_models BEFORE INSERT ON registry_modelartifact "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END;"
            )
            with pytest.raises((IntegrityError, ValidationError)):
                model_artifact_create(**fields, license="MIT")
            transaction.set_rollback(True)
    assert state(media_root) == before
