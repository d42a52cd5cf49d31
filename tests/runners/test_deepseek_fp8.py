"""DeepSeek-V3's FP8 checkpoint (issue 16, part 1): E4M3 weights with float32 128x128 block scales
(``weight_scale_inv``) in safetensors, loaded and run on the dequantized path (the only one this
runner has; the document says so), against the float64 reference of the exactly dequantized weights;
planted faults in the device's dequantization (a per-tensor instead of per-block scale, no scale
applied) are caught by the model suite."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from runners.backends import get_backend
from runners.document import validate_document
from runners.model_suite import deepseek_tiny_fp8_model, deepseek_tiny_model, run_model
from runners.models import ModelSpec, load_model
from runners.models import fp8 as fp8_module
from runners.models.errors import WeightsFormatError
from runners.models.fp8 import DEQUANTIZED, SCALE_SUFFIX, expand_scale, is_fp8_weight
from runners.spec import build_spec

CHALLENGE = hashlib.sha256(b"deepseek-v3 fp8").hexdigest()
TIMING = {"min_time_s": 0.01, "max_time_s": 0.05, "min_samples": 5}


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("deepseek-fp8")


@pytest.fixture(scope="module")
def fp8_entry(weights_dir):
    return deepseek_tiny_fp8_model(weights_dir)


def test_the_file_holds_e4m3_weights_and_float32_block_scales_as_deepseek_v3_ships(fp8_entry):
    stored = load_file(fp8_entry["weights_path"])
    scales = {n for n in stored if n.endswith(SCALE_SUFFIX)}
    fp8_names = {n[: -len(SCALE_SUFFIX)] for n in scales}
    assert fp8_names == {n for n in stored if is_fp8_weight(n)}
    assert "model.layers.0.self_attn.kv_b_proj.weight" in fp8_names  # attention
    assert "model.layers.1.mlp.experts.15.down_proj.weight" in fp8_names  # a routed expert
    assert "model.layers.1.mlp.shared_experts.up_proj.weight" in fp8_names
    for kept in ("model.embed_tokens.weight", "lm_head.weight", "model.layers.1.mlp.gate.weight"):
        assert stored[kept].dtype == torch.float32  # not FP8 in DeepSeek-V3's checkpoint either
    assert "model.layers.4.eh_proj.weight" not in fp8_names
    w = stored["model.layers.0.mlp.gate_proj.weight"]  # (512, 256): 4 x 2 blocks
    s = stored["model.layers.0.mlp.gate_proj.weight" + SCALE_SUFFIX]
    assert w.dtype == torch.float8_e4m3fn and s.dtype == torch.float32 and tuple(s.shape) == (4, 2)
    # Each block's largest code is E4M3's largest finite value (scale = max|w| / 448).
    blocks = w.float().abs().reshape(4, 128, 2, 128).amax(dim=(1, 3))
    assert torch.equal(blocks, torch.full((4, 2), 448.0))


def test_the_loaded_model_keeps_the_codes_and_its_reference_dequantizes_them_exactly(fp8_entry):
    loaded = load_model(ModelSpec.from_dict(fp8_entry))
    assert loaded.fp8 is not None and loaded.fp8.record()["path"] == DEQUANTIZED
    name = "model.layers.2.mlp.experts.3.up_proj.weight"
    codes, scale = loaded.fp8.codes[name], loaded.fp8.scales[name]
    exact = codes.double() * expand_scale(scale.double(), tuple(codes.shape))
    assert torch.equal(loaded.reference_state()[name], exact)
    # The float32 host copy is DeepSeek's weight_dequant: the product rounded once to float32.
    assert torch.equal(loaded.module.state_dict()[name], exact.float())
    placed = loaded.place(torch.device("cpu"), torch.bfloat16, free_bytes=None)
    assert torch.equal(placed.state_dict()[name], exact.float().bfloat16())


def test_the_served_reference_of_the_fp8_checkpoint_is_the_exactly_dequantized_one(fp8_entry):
    from runners.model_suite.workloads import float64_model, workload_for

    loaded = load_model(ModelSpec.from_dict(fp8_entry))
    reference = float64_model(loaded, workload_for(loaded, CHALLENGE, quick=True))
    name = "model.layers.0.self_attn.o_proj.weight"
    codes, scale = loaded.fp8.codes[name], loaded.fp8.scales[name]
    assert torch.equal(
        reference.reference.w[name], codes.double() * expand_scale(scale.double(), codes.shape)
    )


def _rewrite(entry: dict, path: Path, change) -> dict:
    stored = load_file(entry["weights_path"])
    change(stored)
    save_file(stored, str(path))
    return {**entry, "weights_path": str(path), "sha256": None}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s.__setitem__(
                "model.layers.0.mlp.gate_proj.weight" + SCALE_SUFFIX, torch.ones(1, 1, dtype=torch.float32)
            ),
            "one scale per 128x128 block",
        ),
        (lambda s: s.pop("model.layers.0.mlp.gate_proj.weight" + SCALE_SUFFIX), "without its _scale_inv"),
        (
            lambda s: s.__setitem__(
                "model.layers.0.mlp.gate_proj.weight" + SCALE_SUFFIX, -torch.ones(4, 2, dtype=torch.float32)
            ),
            "finite and positive",
        ),
        (
            lambda s: s.__setitem__("model.norm.weight" + SCALE_SUFFIX, torch.ones(2, 2)),
            "no FP8 weight model.norm.weight",
        ),
    ],
)
def test_a_malformed_fp8_checkpoint_is_refused_with_its_reason(fp8_entry, tmp_path, change, message):
    entry = _rewrite(fp8_entry, tmp_path / "bad.safetensors", change)
    with pytest.raises(WeightsFormatError, match=message):
        load_model(ModelSpec.from_dict(entry))


def test_the_registry_check_takes_the_fp8_checkpoint_and_names_a_per_tensor_scale(fp8_entry):
    from runners.models.loading import expected_tensors, first_tensor_mismatch

    expected, optional = expected_tensors("deepseek-v3", fp8_entry["config"])
    stored = {name: tuple(t.shape) for name, t in load_file(fp8_entry["weights_path"]).items()}
    assert first_tensor_mismatch(stored, expected, optional) is None
    stored["model.layers.0.mlp.gate_proj.weight" + SCALE_SUFFIX] = (1, 1)  # a per-tensor scale
    assert "one scale per 128x128 block is [4, 2]" in first_tensor_mismatch(stored, expected, optional)
    stored["model.norm.weight" + SCALE_SUFFIX] = (1, 1)  # a scale of a weight DeepSeek keeps wide
    stored.pop("model.layers.0.mlp.gate_proj.weight" + SCALE_SUFFIX)
    assert "model.norm.weight_scale_inv is not part" in first_tensor_mismatch(stored, expected, optional)


def test_an_fp8_checkpoint_is_safetensors_never_pickle(fp8_entry, tmp_path):
    path = tmp_path / "pickled.bin"
    torch.save(load_file(fp8_entry["weights_path"]), path)
    with pytest.raises(WeightsFormatError, match="pickle"):
        load_model(ModelSpec.from_dict({**fp8_entry, "weights_path": str(path), "sha256": None}))
    assert struct.unpack("<Q", Path(fp8_entry["weights_path"]).read_bytes()[:8])[0] > 0


def _run(entry: dict, dtypes=("bfloat16",)) -> dict:
    spec = build_spec(
        suite="model",
        device="cpu",
        challenge=CHALLENGE,
        models=[entry],
        options={
            "quick": True,
            "model_dtypes": list(dtypes),
            "model_performance_dtypes": [],
            "timing": TIMING,
        },
    )
    document = run_model(spec, get_backend("cpu"))
    validate_document(document)
    return document


@pytest.mark.slow
def test_the_model_suite_runs_the_fp8_checkpoint_and_says_which_path_ran(fp8_entry, weights_dir):
    document = _run(fp8_entry, dtypes=("float32", "bfloat16"))
    [model] = document["models"]
    assert model["fp8"]["path"] == "dequantized" and "no FP8 computation ran" in model["fp8"]["path_note"]
    assert model["fp8"]["format"] == "float8_e4m3fn" and model["fp8"]["weight_block_size"] == [128, 128]
    cases = {c["dtype"]: c for c in document["cases"]}
    assert cases["float32"]["status"] == "pass" and cases["float32"]["metrics"]["value"] == 1.0
    assert cases["bfloat16"]["status"] == "pass", cases["bfloat16"]["metrics"]
    assert cases["bfloat16"]["metrics"]["logit_cosine_min"] > 0.99
    # The same seeded weights not quantized: no fp8 record.
    plain = load_model(ModelSpec.from_dict(deepseek_tiny_model(weights_dir)))
    assert plain.fp8 is None


def _per_tensor_scale(codes, scale, dtype):
    """Reads weight_scale_inv as one scale for the whole tensor (its first block's)."""
    return (codes.to(torch.float32) * scale.reshape(-1)[0].to(torch.float32)).to(dtype)


def _no_scale(codes, scale, dtype):
    return codes.to(torch.float32).to(dtype)


@pytest.mark.slow
@pytest.mark.parametrize("fault", [_per_tensor_scale, _no_scale], ids=["per_tensor_scale", "no_scale"])
def test_a_device_that_dequantizes_wrongly_is_caught(fault, monkeypatch, fp8_entry):
    monkeypatch.setattr(fp8_module, "weight_dequant", fault)
    [case] = _run(fp8_entry)["cases"]
    assert case["status"] == "fail", case["metrics"]
    assert case["metrics"]["value"] < 0.9  # far below the bfloat16 bar (0.90, aia-1.3.json)
