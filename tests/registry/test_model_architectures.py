"""Uploads are checked against their architecture's expected tensors (issue 11, item 1): a file that
would not load as the model it claims to be is refused at upload, naming the first mismatch."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from safetensors.torch import save

from apps.registry.models import ModelArtifact
from runners.models.deepseek import DeepseekV3Config
from runners.models.llama import LlamaConfig
from runners.models.resnet import ResNetConfig
from tests.factories import TINY_BERT_CONFIG, model_weights_bytes


def upload(
    client, content: bytes, *, architecture="bert-encoder", config=None, task="text-embedding", **extra
):
    return client.post(
        "/api/v1/models/",
        {
            "name": "m",
            "version": "1",
            "task": task,
            "architecture": architecture,
            "config": json.dumps(TINY_BERT_CONFIG if config is None else config),
            "license": "MIT",
            "weights": SimpleUploadedFile("w.safetensors", content),
            **extra,
        },
        format="multipart",
    )


def refusal(response, field: str) -> str:
    assert response.status_code == 400, response.content
    fields = response.json()["errors"]
    assert field in fields, fields
    return " ".join(fields[field]) if isinstance(fields[field], list) else str(fields[field])


def stored_files(media_root):
    return sorted(p for p in media_root.rglob("*") if p.is_file()) if media_root.exists() else []


def tensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    return save({k: v.contiguous() for k, v in tensors.items()})


def tiny_bert_state() -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    return load(model_weights_bytes(5))


def test_the_issues_136_byte_file_with_a_synthetic_flag_is_refused(cast, client_for, media_root):
    content = tensors_bytes({"w": torch.zeros(4, 4)})
    assert len(content) == 136
    response = upload(client_for(cast.owner), content, config={**TINY_BERT_CONFIG, "synthetic": True})
    message = refusal(response, "weights")
    assert "tensor embeddings.LayerNorm.bias is missing" in message
    assert ModelArtifact.objects.count() == 0
    assert stored_files(media_root) == []


def test_a_tensor_of_the_wrong_shape_is_named(cast, client_for):
    state = tiny_bert_state()
    state["encoder.layer.0.intermediate.dense.weight"] = torch.zeros(9, 4)
    message = refusal(upload(client_for(cast.owner), tensors_bytes(state)), "weights")
    assert "encoder.layer.0.intermediate.dense.weight has shape [9, 4], the config implies [8, 4]" in message


def test_a_tensor_the_architecture_does_not_have_is_refused(cast, client_for):
    state = {**tiny_bert_state(), "backdoor.weight": torch.zeros(2)}
    assert "tensor backdoor.weight is not part of this architecture" in refusal(
        upload(client_for(cast.owner), tensors_bytes(state)), "weights"
    )


def test_optional_tensors_of_published_checkpoints_are_accepted(cast, client_for):
    state = {
        **tiny_bert_state(),
        "pooler.dense.weight": torch.zeros(4, 4),
        "pooler.dense.bias": torch.zeros(4),
    }
    assert upload(client_for(cast.owner), tensors_bytes(state)).status_code == 201


def test_a_config_the_architecture_cannot_build_is_refused_on_the_config(cast, client_for):
    config = {**TINY_BERT_CONFIG, "num_attention_heads": 3}  # 3 heads do not divide a hidden size of 4
    assert "num_attention_heads" in refusal(
        upload(client_for(cast.owner), model_weights_bytes(1), config=config), "config"
    )


def test_a_deepseek_upload_with_a_misnamed_router_bias_names_the_first_mismatch(cast, client_for):
    from safetensors.torch import load

    config = asdict(DeepseekV3Config.small())
    state = load(model_weights_bytes(3, config, "deepseek-v3"))
    state["model.layers.2.mlp.gate.bias"] = state.pop("model.layers.2.mlp.gate.e_score_correction_bias")
    message = refusal(
        upload(
            client_for(cast.owner),
            tensors_bytes(state),
            architecture="deepseek-v3",
            config=config,
            task="llm-decode",
        ),
        "weights",
    )
    assert (
        "tensor model.layers.2.mlp.gate.e_score_correction_bias is missing (expected shape [16])" in message
    )


def test_an_absurdly_deep_config_is_refused_without_building_it(cast, client_for):
    config = {**TINY_BERT_CONFIG, "num_hidden_layers": 10_000_000}
    assert "layers" in refusal(
        upload(client_for(cast.owner), model_weights_bytes(1), config=config), "config"
    )


@pytest.mark.parametrize(
    ("architecture", "config", "task"),
    [
        (
            "llama-decoder",
            {**asdict(LlamaConfig.small()), "vocab_size": 64, "num_hidden_layers": 1},
            "llm-decode",
        ),
        ("resnet-cnn", asdict(ResNetConfig.small()), "image-classification"),
        ("deepseek-v3", asdict(DeepseekV3Config.small()), "llm-decode"),
    ],
)
def test_every_architecture_accepts_its_own_weights(cast, client_for, architecture, config, task):
    content = model_weights_bytes(3, config, architecture)
    response = upload(client_for(cast.owner), content, architecture=architecture, config=config, task=task)
    assert response.status_code == 201, response.content
    # The same weights under another architecture's name are refused.
    other = "resnet-cnn" if architecture == "llama-decoder" else "llama-decoder"
    refusal(
        upload(client_for(cast.owner), content, architecture=other, config=config, version="2"), "weights"
    )


@pytest.mark.django_db  # the middleware (lockouts, throttles) reads the database cache
def test_the_api_schema_documents_what_each_architecture_expects(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    text = response.content.decode()  # the JSON text, or YAML: the patterns need no escaping
    for expected in (
        "encoder.layer.{i}.attention.self.{query|key|value}.weight: [H, H]",
        "model.layers.{i}.self_attn.{k_proj|v_proj}.weight: [K*D, H]",
        "layers.{s}.0.downsample.0.weight: [W[s], W[s-1], 1, 1]",
        "model.layers.{i}.self_attn.kv_a_proj_with_mqa.weight: [R+P, H]",
        "model.layers.{i}.mlp.experts.{e}.{gate_proj|up_proj}.weight: [M, H]",
    ):
        assert expected in text
