"""Model architectures and loading: shapes, KV cache, and every kind of bad model input."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils._python_dispatch import TorchDispatchMode

from runners.models import (
    ConfigMismatchError,
    DoesNotFitError,
    MissingWeightsError,
    ModelSpec,
    UnknownArchitectureError,
    WeightsFormatError,
    load_model,
)
from runners.models.bert import BertConfig
from runners.models.deepseek import DeepseekV3Config
from runners.models.errors import ChecksumMismatchError
from runners.models.layouts import layout_text
from runners.models.llama import LlamaConfig
from runners.models.loading import (
    ARCHITECTURES,
    expected_shapes,
    expected_tensors,
    first_tensor_mismatch,
)
from runners.models.resnet import ResNetConfig
from runners.models.seeded import seeded_model_entry


@pytest.fixture(scope="module")
def seeded_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("seeded")


def seeded(directory: Path, arch: str, config: dict, seed: int = 0) -> ModelSpec:
    """A spec whose weights are a seeded safetensors file written under ``directory``."""
    entry = seeded_model_entry(f"{arch}-test", arch, config, seed=seed, directory=directory)
    return ModelSpec.from_dict(entry)


@pytest.fixture
def llama_spec(seeded_dir) -> Callable[..., ModelSpec]:
    return lambda seed=0: seeded(seeded_dir, "llama-decoder", asdict(LlamaConfig.small()), seed)


def test_seeded_weights_files_are_reproducible(llama_spec) -> None:
    a = load_model(llama_spec(1))
    b = load_model(llama_spec(1))
    c = load_model(llama_spec(2))
    name = "model.layers.0.self_attn.q_proj.weight"
    assert a.weights.sha256 == b.weights.sha256 != c.weights.sha256
    assert torch.equal(a.module.state_dict()[name], b.module.state_dict()[name])
    assert not torch.equal(a.module.state_dict()[name], c.module.state_dict()[name])


@pytest.mark.slow
def test_each_architecture_runs_with_its_small_config(seeded_dir, llama_spec) -> None:
    bert = load_model(seeded(seeded_dir, "bert-encoder", asdict(BertConfig.small()))).module
    ids = torch.randint(1, 1000, (2, 7))
    assert bert(ids, torch.ones_like(ids)).shape == (2, 128)
    llama = load_model(llama_spec()).module
    assert llama(torch.randint(0, 512, (2, 5))).shape == (2, 5, 512)
    resnet = load_model(seeded(seeded_dir, "resnet-cnn", {**asdict(ResNetConfig.small())})).module
    assert resnet(torch.randn(3, 3, 32, 32)).shape == (3, 10)


def test_kv_cache_decode_matches_the_full_forward(llama_spec) -> None:
    model = load_model(llama_spec()).module.double()
    tokens = torch.randint(0, 512, (2, 9))
    full = model(tokens)
    cache = model.new_cache(2, 9)
    prefix = model(tokens[:, :6], cache)
    steps = [model(tokens[:, i : i + 1], cache) for i in range(6, 9)]
    torch.testing.assert_close(torch.cat([prefix, *steps], dim=1), full)


def test_grouped_query_attention_shares_kv_heads() -> None:
    shapes = expected_shapes(ARCHITECTURES["llama-decoder"], LlamaConfig.small())
    assert shapes["model.layers.0.self_attn.k_proj.weight"] == (2 * 32, 128)  # 2 KV heads of 32
    assert shapes["model.layers.0.self_attn.q_proj.weight"] == (128, 128)


def _weights_file(tmp_path, spec: ModelSpec, mutate=None):
    state = load_model(spec).module.state_dict()
    if mutate:
        state = mutate(state)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_it_loads_real_safetensors_files(tmp_path, llama_spec) -> None:
    spec = llama_spec()
    path = _weights_file(tmp_path, spec)
    loaded = load_model(
        ModelSpec(
            name="x", architecture="llama-decoder", config=asdict(LlamaConfig.small()), weights_path=str(path)
        )
    )
    assert torch.equal(loaded.module.model.norm.weight, load_model(spec).module.model.norm.weight)


def test_it_rejects_a_config_that_does_not_match_the_weights(tmp_path, llama_spec) -> None:
    path = _weights_file(tmp_path, llama_spec())
    wrong = {**asdict(LlamaConfig.small()), "intermediate_size": 256}
    with pytest.raises(ConfigMismatchError, match="shape mismatch"):
        load_model(ModelSpec(name="x", architecture="llama-decoder", config=wrong, weights_path=str(path)))


def test_it_rejects_weights_with_missing_tensors(tmp_path, llama_spec) -> None:
    path = _weights_file(tmp_path, llama_spec(), lambda s: {k: v for k, v in s.items() if "lm_head" not in k})
    with pytest.raises(ConfigMismatchError, match="missing"):
        load_model(
            ModelSpec(
                name="x",
                architecture="llama-decoder",
                config=asdict(LlamaConfig.small()),
                weights_path=str(path),
            )
        )


@pytest.mark.parametrize(
    "content",
    [
        b"PK\x03\x04" + b"\x00" * 64,  # a torch.save zip archive
        b"\x80\x04\x95" + b"\x00" * 64,  # a raw pickle stream
        b"not a model at all, just text" * 4,  # garbage
        b'\x05\x00\x00\x00\x00\x00\x00\x00{"a"',  # truncated safetensors header
    ],
)
def test_it_refuses_anything_but_safetensors(tmp_path, content: bytes) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(content)
    with pytest.raises(WeightsFormatError):
        load_model(
            ModelSpec(
                name="x",
                architecture="llama-decoder",
                config=asdict(LlamaConfig.small()),
                weights_path=str(path),
            )
        )


def test_it_checks_the_registered_checksum(tmp_path, llama_spec) -> None:
    path = _weights_file(tmp_path, llama_spec())
    with pytest.raises(ChecksumMismatchError):
        load_model(
            ModelSpec(
                name="x",
                architecture="llama-decoder",
                config=asdict(LlamaConfig.small()),
                weights_path=str(path),
                sha256="0" * 64,
            )
        )


def test_unknown_architecture_is_a_clear_error() -> None:
    with pytest.raises(UnknownArchitectureError, match="registered"):
        load_model(ModelSpec(name="x", architecture="mamba-ssm"))


@pytest.mark.slow
def test_a_model_bigger_than_memory_is_refused_before_allocating() -> None:
    huge = {
        **asdict(LlamaConfig()),
        "hidden_size": 65536,
        "intermediate_size": 262144,
        "num_hidden_layers": 512,
        "num_attention_heads": 512,
        "num_key_value_heads": 64,
    }
    with pytest.raises(DoesNotFitError, match="GiB"):
        load_model(
            ModelSpec(name="huge", architecture="llama-decoder", config=huge, weights_path="/nonexistent")
        )


def test_a_model_that_does_not_fit_the_device_is_refused_when_placed(llama_spec) -> None:
    loaded = load_model(llama_spec())
    with pytest.raises(DoesNotFitError):
        loaded.place(torch.device("cpu"), torch.float32, free_bytes=1024)


def test_model_errors_are_json_friendly() -> None:
    error = UnknownArchitectureError("nope")
    assert json.dumps({"code": error.code, "class": error.error_class})


# No switch replaces uploaded weights (issue 11, item 1) ------------------------------------------


def _one_small_tensor(tmp_path) -> Path:
    """The issue's artifact: a 136-byte safetensors file holding one 4x4 tensor."""
    path = tmp_path / "tiny.safetensors"
    save_file({"w": torch.zeros(4, 4)}, str(path))
    assert path.stat().st_size == 136
    return path


def test_a_synthetic_flag_in_the_config_does_not_replace_the_weights(tmp_path) -> None:
    path = _one_small_tensor(tmp_path)
    spec = ModelSpec(
        name="tiny",
        architecture="bert-encoder",
        config={**asdict(BertConfig.small()), "synthetic": True},
        weights_path=str(path),
    )
    with pytest.raises(ConfigMismatchError, match="missing") as raised:
        load_model(spec)
    assert raised.value.weights.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_weights_that_run_are_the_files_even_with_a_synthetic_flag(tmp_path, llama_spec) -> None:
    seeded_spec = llama_spec(7)
    flagged = ModelSpec(
        name="x",
        architecture="llama-decoder",
        config={**asdict(LlamaConfig.small()), "synthetic": True},
        weights_path=seeded_spec.weights_path,
    )
    loaded = load_model(flagged)
    with safe_open(str(seeded_spec.weights_path), framework="pt") as handle:
        stored = handle.get_tensor("model.layers.0.mlp.up_proj.weight")
    assert torch.equal(loaded.module.state_dict()["model.layers.0.mlp.up_proj.weight"], stored)
    assert loaded.weights.sha256 == seeded_spec.sha256


def test_a_spec_without_a_weights_file_runs_nothing() -> None:
    spec = ModelSpec(name="x", architecture="llama-decoder", config=asdict(LlamaConfig.small()))
    with pytest.raises(MissingWeightsError):
        load_model(spec)


def test_the_recorded_digest_is_that_of_the_bytes_loaded(tmp_path, llama_spec) -> None:
    path = _weights_file(tmp_path, llama_spec())
    loaded = load_model(
        ModelSpec(
            name="x", architecture="llama-decoder", config=asdict(LlamaConfig.small()), weights_path=str(path)
        )
    )
    assert loaded.weights.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.weights.size == path.stat().st_size


# What each architecture expects ------------------------------------------------------------------


def _pattern(template: str) -> re.Pattern[str]:
    text = re.escape(template)
    text = re.sub(r"\\\{(i|s|b|e)\\\}", r"\\d+", text)
    text = re.sub(r"\\\{([^{}]*?)\\\}", lambda m: "(" + m.group(1).replace("\\|", "|") + ")", text)
    return re.compile(text + "$")


@pytest.mark.parametrize(
    ("arch", "config"),
    [
        ("bert-encoder", asdict(BertConfig.small())),
        ("llama-decoder", asdict(LlamaConfig.small())),
        ("llama-decoder", {**asdict(LlamaConfig.small()), "tie_word_embeddings": True}),
        ("deepseek-v3", asdict(DeepseekV3Config.small())),
        ("deepseek-v3", {**asdict(DeepseekV3Config.small()), "num_nextn_predict_layers": 0}),
        ("resnet-cnn", asdict(ResNetConfig.small())),
        ("resnet-cnn", {**asdict(ResNetConfig.small()), "widths": [8, 8, 16], "blocks": [2, 1, 2]}),
    ],
)
def test_the_documented_layout_names_every_tensor_the_architecture_has(arch, config) -> None:
    shapes, _optional = expected_tensors(arch, config)
    patterns = [_pattern(p) for p, _shape in ARCHITECTURES[arch].layout]
    unmatched = [name for name in shapes if not any(p.match(name) for p in patterns)]
    assert unmatched == []
    assert arch in layout_text(arch)


def test_expected_tensors_refuses_an_invalid_config() -> None:
    with pytest.raises(ConfigMismatchError):
        expected_tensors("bert-encoder", {"hidden_size": 8})  # 12 heads do not divide 8
    with pytest.raises(UnknownArchitectureError):
        expected_tensors("mamba-ssm", {})


def test_the_first_mismatch_is_named() -> None:
    expected = {"a": (2, 2), "b": (3,)}
    assert first_tensor_mismatch({"a": (2, 2), "b": (3,)}, expected, ()) is None
    assert "tensor a is missing" in first_tensor_mismatch({"b": (3,)}, expected, ())
    assert "tensor b has shape [4]" in first_tensor_mismatch({"a": (2, 2), "b": (4,)}, expected, ())
    assert "tensor c is not part" in first_tensor_mismatch({"a": (2, 2), "b": (3,), "c": (1,)}, expected, ())
    assert first_tensor_mismatch({"a": (2, 2), "b": (3,), "c": (1,)}, expected, ("c",)) is None


SMALL_CONFIGS = {
    "bert-encoder": BertConfig.small,
    "llama-decoder": LlamaConfig.small,
    "deepseek-v3": DeepseekV3Config.small,
    "resnet-cnn": ResNetConfig.small,
}


@pytest.mark.parametrize("arch", sorted(SMALL_CONFIGS))
def test_expected_shapes_are_those_of_a_module_built_on_the_host(arch) -> None:
    """Skipping torch.nn.init on the meta device changes no name and no shape: the expected tensors
    are exactly the state dict of the same module built (and initialised) on the host."""
    architecture = ARCHITECTURES[arch]
    config = SMALL_CONFIGS[arch]()
    built = architecture.module_type(config)
    assert expected_shapes(architecture, config) == {n: tuple(t.shape) for n, t in built.state_dict().items()}


class _AtenOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("arch", sorted(SMALL_CONFIGS))
def test_expected_shapes_runs_no_initialisation_on_the_meta_device(arch) -> None:
    """normal_ on a meta tensor goes through torch._refs, whose first call imports torch._dynamo
    (seconds per process, at the first upload check): building the shape-only module runs no random
    fill. nn.Embedding (bert, llama, deepseek) and nn.Linear would run normal_ and uniform_."""
    with _AtenOps() as recorded:
        expected_shapes(ARCHITECTURES[arch], SMALL_CONFIGS[arch]())
    assert not {op for op in recorded.ops if op.endswith(("normal_", "uniform_"))}, recorded.ops


@pytest.mark.parametrize(
    ("arch", "config"),
    [
        ("bert-encoder", BertConfig.small()),
        ("llama-decoder", LlamaConfig.small()),
        ("deepseek-v3", DeepseekV3Config.small()),
        ("resnet-cnn", ResNetConfig.small()),
    ],
)
def test_the_shapes_of_a_config_seen_before_are_not_built_again(arch, config) -> None:
    """Issue 13: the platform loads the vendor's model for each reveal of a model or serving job, and half
    of loading a small model was building it once more on the meta device for its shapes. The shapes of a
    config seen before are kept (the same for an equal config), and no caller can change the kept ones."""
    from runners.models import loading

    architecture = ARCHITECTURES[arch]
    first = expected_shapes(architecture, config)
    built: list[int] = []
    module_type = architecture.module_type

    class Counting(module_type):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            built.append(1)
            super().__init__(*args, **kwargs)

    counted = loading.Architecture(architecture.name, architecture.task, architecture.config_type, Counting)
    shapes = expected_shapes(counted, config)
    assert shapes == first and len(built) == 1
    shapes["injected"] = (1,)
    again = expected_shapes(counted, type(config).from_dict(asdict(config)))  # an equal config
    assert again == first and "injected" not in again and len(built) == 1
