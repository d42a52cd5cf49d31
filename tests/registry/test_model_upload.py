"""Model upload: weights are checked as safetensors, hashed server-side and stored content-addressed."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.registry.models import ModelArtifact
from tests.factories import TINY_BERT_CONFIG, TINY_BERT_TENSORS, ModelArtifactFactory, model_weights_bytes

CONFIG = {**TINY_BERT_CONFIG, "vocab": {"a": 1}}  # keys the architecture does not read are kept


def upload(client, content: bytes, *, name="minilm", version="1.0", config=None, **extra):
    return client.post(
        "/api/v1/models/",
        {
            "name": name,
            "version": version,
            "task": "text-embedding",
            "architecture": "bert-encoder",
            "config": json.dumps(config or CONFIG),
            "license": "Apache-2.0",
            "weights": SimpleUploadedFile(
                "../../../etc/evil.pkl", content, content_type="application/octet-stream"
            ),
            **extra,
        },
        format="multipart",
    )


def stored_files(media_root):
    return sorted(p for p in media_root.rglob("*") if p.is_file()) if media_root.exists() else []


def test_sha256_and_size_are_computed_server_side(cast, client_for, media_root):
    content = model_weights_bytes(11)
    response = upload(client_for(cast.owner), content)
    assert response.status_code == 201, response.content
    body = response.json()
    digest = hashlib.sha256(content).hexdigest()
    assert body["weights_sha256"] == digest
    assert body["weights_size"] == len(content)
    assert body["tensor_count"] == TINY_BERT_TENSORS
    assert body["config"] == CONFIG
    assert body["owner"] == "acme"
    assert "weights" not in body  # no URL to the file: weights are not served to the world


def test_the_file_is_stored_content_addressed_whatever_its_client_name(cast, client_for, media_root):
    content = model_weights_bytes(12)
    digest = hashlib.sha256(content).hexdigest()
    assert upload(client_for(cast.owner), content).status_code == 201
    artifact = ModelArtifact.objects.get()
    assert artifact.weights.name == f"models/{digest[:2]}/{digest}.safetensors"
    assert stored_files(media_root) == [media_root / "models" / digest[:2] / f"{digest}.safetensors"]
    assert (media_root / artifact.weights.name).read_bytes() == content
    assert not any("evil" in str(path) for path in stored_files(media_root))


def test_client_supplied_hashes_are_ignored(cast, client_for):
    content = model_weights_bytes(13)
    response = upload(client_for(cast.owner), content, weights_sha256="0" * 64)
    # Either refused as an unknown field or ignored; never trusted.
    if response.status_code == 201:
        assert response.json()["weights_sha256"] == hashlib.sha256(content).hexdigest()
    else:
        assert response.status_code == 400
        assert "weights_sha256" in response.json()["errors"]


def test_the_same_weights_uploaded_twice_are_stored_once(cast, client_for, media_root):
    content = model_weights_bytes(14)
    assert upload(client_for(cast.owner), content, version="1").status_code == 201
    assert upload(client_for(cast.owner), content, version="2").status_code == 201
    assert upload(client_for(cast.foreign), content, version="1").status_code == 201
    digest = hashlib.sha256(content).hexdigest()
    assert {a.weights.name for a in ModelArtifact.objects.all()} == {
        f"models/{digest[:2]}/{digest}.safetensors"
    }
    assert len(stored_files(media_root)) == 1


def test_deleting_a_model_removes_its_file_only_when_no_other_model_uses_it(
    cast, client_for, media_root, django_capture_on_commit_callbacks
):
    content = model_weights_bytes(15)
    client = client_for(cast.vendor_admin)
    first = upload(client, content, version="1").json()["id"]
    second = upload(client, content, version="2").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/api/v1/models/{first}/").status_code == 204
    assert len(stored_files(media_root)) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/api/v1/models/{second}/").status_code == 204
    assert stored_files(media_root) == []


def test_a_large_upload_streams_through_the_hashing_handler(cast, client_for, settings):
    # Past FILE_UPLOAD_MAX_MEMORY_SIZE the upload goes to a temporary file; the digest must still be right.
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    config = {**TINY_BERT_CONFIG, "vocab_size": 8192}
    content = model_weights_bytes(16, config)
    assert len(content) > 64 * 1024
    response = upload(client_for(cast.owner), content, config=config)
    assert response.status_code == 201
    assert response.json()["weights_sha256"] == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize("accept", ["application/json", "*/*"])
def test_a_json_body_on_the_upload_endpoint_is_refused_cleanly(cast, client_for, accept):
    response = client_for(cast.owner).post(
        "/api/v1/models/", {"name": "x"}, format="json", HTTP_ACCEPT=accept
    )
    assert response.status_code == 415
    assert response.json()["status"] == 415


def test_the_factory_makes_a_real_model_artifact(cast):
    artifact = ModelArtifactFactory(owner=cast.vendor)
    content = artifact.weights.read()
    assert hashlib.sha256(content).hexdigest() == artifact.weights_sha256
    assert len(content) == artifact.weights_size
