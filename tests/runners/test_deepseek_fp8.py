"""DeepSeek-V3's FP8 checkpoint (issue 16): E4M3 weights with float32 128x128 block scales
(``weight_scale_inv``) in safetensors, run on the block-scaled FP8 path where the backend's FP8 GEMM
passes its probe (activations quantized per 1x128 tile, each GEMM per 128-wide K slice promoted to
float32 with both scales; on this CPU the products exact in float32, and the document says so), else
dequantized; always against the float64 reference of the exactly dequantized weights and unquantized
activations. Planted faults (a per-tensor or wrongly indexed weight scale on the FP8 path; a wrong
dequantization on the other) are caught by the model suite."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from runners.backends import get_backend
from runners.backends.base import probe_fp8_product
from runners.backends.builtin import CpuBackend
from runners.catalog.quantized import BLOCK, act_quant, block_quantize, fp8_product
from runners.document import validate_document
from runners.model_suite import deepseek_tiny_fp8_model, deepseek_tiny_model, run_model
from runners.models import ModelSpec, load_model
from runners.models import fp8 as fp8_module
from runners.models.errors import WeightsFormatError
from runners.models.fp8 import (
    BLOCK_SCALED,
    DEQUANTIZED,
    FLOAT32_WIDENING,
    FP8_FORMAT,
    SCALE_SUFFIX,
    Fp8Linear,
    Fp8Weight,
    expand_scale,
    is_fp8_weight,
)
from runners.spec import build_spec
from tests.runners.planted_fp8 import FAULTS, planted

PROGRAMS = Path(__file__).resolve().parents[2] / "apps" / "runs" / "programs"
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
    # The FP8 test model's dense layer is 2048 wide (a K = 2048 reduction in its down_proj).
    w = stored["model.layers.0.mlp.gate_proj.weight"]  # (2048, 256): 16 x 2 blocks
    s = stored["model.layers.0.mlp.gate_proj.weight" + SCALE_SUFFIX]
    assert w.dtype == torch.float8_e4m3fn and s.dtype == torch.float32 and tuple(s.shape) == (16, 2)
    # Each block's largest code is E4M3's largest finite value (scale = max|w| / 448).
    blocks = w.float().abs().reshape(16, 128, 2, 128).amax(dim=(1, 3))
    assert torch.equal(blocks, torch.full((16, 2), 448.0))


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
                "model.layers.0.mlp.gate_proj.weight" + SCALE_SUFFIX, -torch.ones(16, 2, dtype=torch.float32)
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
    assert "one scale per 128x128 block is [16, 2]" in first_tensor_mismatch(stored, expected, optional)
    stored["model.norm.weight" + SCALE_SUFFIX] = (1, 1)  # a scale of a weight DeepSeek keeps wide
    stored.pop("model.layers.0.mlp.gate_proj.weight" + SCALE_SUFFIX)
    assert "model.norm.weight_scale_inv is not part" in first_tensor_mismatch(stored, expected, optional)


def test_an_fp8_checkpoint_is_safetensors_never_pickle(fp8_entry, tmp_path):
    path = tmp_path / "pickled.bin"
    torch.save(load_file(fp8_entry["weights_path"]), path)
    with pytest.raises(WeightsFormatError, match="pickle"):
        load_model(ModelSpec.from_dict({**fp8_entry, "weights_path": str(path), "sha256": None}))
    assert struct.unpack("<Q", Path(fp8_entry["weights_path"]).read_bytes()[:8])[0] > 0


class NoFp8GemmCpu(CpuBackend):
    """This CPU as a device without an FP8 GEMM: its product refuses E4M3, so the probe fails."""

    def fp8_product(self, a, b):
        raise RuntimeError("no FP8 GEMM on this device")


def _run(
    entry: dict, dtypes=("bfloat16",), backend=None, challenge=CHALLENGE, fp8_compute=True, quick=True
) -> dict:
    spec = build_spec(
        suite="model",
        device="cpu",
        challenge=challenge,
        models=[entry],
        options={
            "quick": quick,
            "model_dtypes": list(dtypes),
            "model_performance_dtypes": [],
            "timing": TIMING,
            "fp8_compute": fp8_compute,
        },
    )
    document = run_model(spec, backend or get_backend("cpu"))
    validate_document(document)
    return document


def test_the_cpus_fp8_gemm_passes_its_probe_and_a_wrong_or_absent_one_does_not():
    gemm = get_backend("cpu").fp8_gemm()
    assert gemm is not None and gemm.kind == FLOAT32_WIDENING
    assert NoFp8GemmCpu().fp8_gemm() is None
    cpu = torch.device("cpu")
    assert probe_fp8_product(cpu, gemm.product)
    assert not probe_fp8_product(cpu, lambda a, b: a.float() @ b.float().t() + 1.0)  # wrong
    assert not probe_fp8_product(cpu, lambda a, b: (a.float() @ b.float().t()).bfloat16())  # not float32
    assert not probe_fp8_product(cpu, lambda a, b: a.float() @ b.float().t() * 0.5)  # a scale applied


def test_every_fp8_weight_runs_on_the_block_scaled_gemm_kv_b_proj_absorbed_included(fp8_entry):
    loaded = load_model(ModelSpec.from_dict(fp8_entry))
    shapes: list[tuple[int, int]] = []

    def product(a, b):
        shapes.append(tuple(b.shape))
        return fp8_product(a, b)

    module = loaded.place(torch.device("cpu"), torch.bfloat16, free_bytes=None, fp8_product=product)
    for name in loaded.fp8.codes:
        assert isinstance(module.get_submodule(name.removesuffix(".weight")), Fp8Linear), name
    kept = module.get_submodule("model.layers.4.eh_proj")  # not FP8 in DeepSeek-V3's checkpoint
    assert isinstance(kept, torch.nn.Linear) and kept.weight.dtype == torch.bfloat16
    with torch.inference_mode():
        out = module.forward_with_mtp(
            torch.randint(0, 512, (2, 5), generator=torch.Generator().manual_seed(1))
        )
    assert out.dtype == torch.bfloat16 and bool(torch.isfinite(out).all())
    # kv_b_proj (256, 64): 4 heads of 32 W_uk rows then 32 W_uv rows. The absorbed query's GEMM takes
    # W_uk transposed, (64 latent, 32) or padded to its row block (64, 96); the values' (32, 64).
    assert {(64, 32), (64, 96), (32, 64)} <= set(shapes)
    assert all(k <= 128 for _, k in shapes)  # one promotion interval per call


def test_the_block_scaled_linear_and_the_absorbed_products_compute_the_quantized_operands():
    """float32 runs: the result is the float64 product of the quantized activation and weight within
    float32's accumulation (the 128-term FP8 slices are exact products summed in float32)."""
    g = torch.Generator().manual_seed(7)
    w = torch.randn(256, 192, generator=g) / 8  # kv_b_proj-like: 4 heads x (48 + 16) rows, K 192
    codes, scale = block_quantize(w, FP8_FORMAT, (BLOCK, BLOCK))
    weight = Fp8Weight.of(codes, scale, fp8_product)
    w64 = codes.double() * expand_scale(scale.double(), tuple(codes.shape))

    def quantized(x):  # per 1x128 tile, as act_quant
        a, s = act_quant(x)
        return a.double() * s.double().repeat_interleave(BLOCK, dim=1)[:, : x.shape[1]]

    x = torch.randn(6, 192, generator=g)
    exact = quantized(x) @ w64.t()
    assert torch.allclose(weight.linear(x).double(), exact, rtol=0, atol=1e-5 * float(exact.abs().max()))
    q = torch.randn(2, 3, 4, 48, generator=g)
    got = weight.absorb_uk(q, heads=4).double()
    for h in range(4):  # head h's rows start at 64 h: padded by 64 h % 128 zeros to its row block
        pad = 64 * h % BLOCK
        qh = quantized(torch.nn.functional.pad(q[:, :, h].reshape(-1, 48), (pad, 0)))[:, pad:]
        ref = qh @ w64[64 * h : 64 * h + 48]
        assert torch.allclose(got[:, :, h].reshape(-1, 192), ref, rtol=0, atol=1e-5 * float(ref.abs().max()))
    latent = torch.randn(2, 3, 4, 192, generator=g)
    got = weight.absorb_uv(latent, heads=4, nope=48).double()
    for h in range(4):
        ref = quantized(latent[:, :, h].reshape(-1, 192)) @ w64[64 * h + 48 : 64 * (h + 1)].t()
        assert torch.allclose(got[:, :, h].reshape(-1, 16), ref, rtol=0, atol=1e-5 * float(ref.abs().max()))


@pytest.mark.slow
def test_the_model_suite_runs_the_fp8_checkpoint_on_the_block_scaled_path_and_says_what_ran(
    fp8_entry, weights_dir
):
    document = _run(fp8_entry, dtypes=("float32", "bfloat16"))
    [model] = document["models"]
    assert model["fp8"]["path"] == BLOCK_SCALED and "1x128 tile" in model["fp8"]["path_note"]
    assert model["fp8"]["path_dtypes"] == ["bfloat16"] and model["fp8"]["other_dtypes"] == DEQUANTIZED
    assert model["fp8"]["products"] == FLOAT32_WIDENING
    assert "FP8 arithmetic units did not" in model["fp8"]["products_note"]
    assert model["fp8"]["format"] == "float8_e4m3fn" and model["fp8"]["weight_block_size"] == [128, 128]
    cases = {c["dtype"]: c for c in document["cases"]}
    assert cases["float32"]["metrics"]["value"] == 1.0  # float32 runs the dequantized weights
    case = cases["bfloat16"]
    # The raw figures against the float64 reference of the dequantized weights and unquantized
    # activations: E4M3 activations (3 mantissa bits) cost the tiny random-weight decoder far more
    # than bfloat16 does (bench/deepseek_fp8_accuracy.py: full mode 0.66-0.75).
    assert HONEST_FLOOR <= case["metrics"]["value"] < 1.0, case["metrics"]
    # The same seeded weights not quantized: no fp8 record.
    plain = load_model(ModelSpec.from_dict(deepseek_tiny_model(weights_dir)))
    assert plain.fp8 is None


@pytest.mark.slow
@pytest.mark.parametrize("how", ["no_fp8_gemm", "not_asked"])
def test_without_a_probed_fp8_gemm_the_checkpoint_runs_dequantized_and_says_so(fp8_entry, how):
    """Without a probed FP8 GEMM, or when the plan does not ask for FP8 computation (no program level
    does yet), the checkpoint runs dequantized and is judged as before."""
    if how == "no_fp8_gemm":
        document = _run(fp8_entry, dtypes=("float32", "bfloat16"), backend=NoFp8GemmCpu())
    else:
        document = _run(fp8_entry, dtypes=("float32", "bfloat16"), fp8_compute=False)
    [model] = document["models"]
    assert model["fp8"]["path"] == DEQUANTIZED and "no FP8 computation ran" in model["fp8"]["path_note"]
    assert "products" not in model["fp8"]
    cases = {c["dtype"]: c for c in document["cases"]}
    assert cases["float32"]["status"] == "pass" and cases["float32"]["metrics"]["value"] == 1.0
    assert cases["bfloat16"]["status"] == "pass", cases["bfloat16"]["metrics"]
    assert cases["bfloat16"]["metrics"]["logit_cosine_min"] > 0.99


def _per_tensor_scale(codes, scale, dtype):
    """Reads weight_scale_inv as one scale for the whole tensor (its first block's)."""
    return (codes.to(torch.float32) * scale.reshape(-1)[0].to(torch.float32)).to(dtype)


def _no_scale(codes, scale, dtype):
    return codes.to(torch.float32).to(dtype)


@pytest.mark.slow
@pytest.mark.parametrize("fault", [_per_tensor_scale, _no_scale], ids=["per_tensor_scale", "no_scale"])
def test_a_device_that_dequantizes_wrongly_is_caught(fault, monkeypatch, fp8_entry):
    monkeypatch.setattr(fp8_module, "weight_dequant", fault)
    [case] = _run(fp8_entry, backend=NoFp8GemmCpu())["cases"]
    assert case["status"] == "fail", case["metrics"]
    assert case["metrics"]["value"] < 0.9  # far below the bfloat16 bar (0.90, aia-1.3.json)


# The FP8 bar (AIA 1.3 draft Advanced, threshold fp8_accuracy: greedy-token agreement and mean logit
# cosine against the float64 reference of the dequantized weights), which the platform applies to an
# FP8-path run (apps/certificates/judge.py fp8_accuracy_passes). Its derivation is the threshold's source
# (bench/deepseek_fp8_accuracy.py on the FP8 test model: outlier activation channels and a K = 2048
# reduction, runners/models/fp8.py plant_activation_outliers). Here each planted fault of the four must
# fail it and the honest path pass it, on challenges of their own, in full mode (the mode the level runs;
# in quick mode one of 8 bench challenges left a per-tensor activation scale above both bars).
FP8_BARS = next(
    level
    for level in json.loads((PROGRAMS / "aia-1.3.json").read_text())["levels"]
    if level["code"] == "advanced"
)["thresholds"]["fp8_accuracy"]["value"]
HONEST_FLOOR = FP8_BARS["greedy_token_agreement"]
FP8_CHALLENGES = [hashlib.sha256(f"deepseek-fp8-{i}".encode()).hexdigest() for i in range(2)]
HONEST_CHALLENGES = [hashlib.sha256(f"deepseek-fp8-honest-{i}".encode()).hexdigest() for i in range(3)]


def _meets_fp8_bar(metrics: dict) -> bool:
    return (
        metrics["value"] >= FP8_BARS["greedy_token_agreement"]
        and metrics["logit_cosine_mean"] >= FP8_BARS["logit_cosine_mean"]
    )


@pytest.fixture(scope="module")
def fp8_loaded(fp8_entry):
    return load_model(ModelSpec.from_dict(fp8_entry))


_DRAWN: dict[str, tuple] = {}


def _fp8_score(loaded, challenge: str, fault: str | None) -> dict:
    """The model suite's accuracy pass of the FP8 test model in full mode on the block-scaled FP8 path
    (``workload_for``, the module placed with the CPU's probed FP8 GEMM, the workload's score), with
    ``fault`` planted: what bench/deepseek_fp8_accuracy.py measures. The prompts and the float64
    reference are drawn once per challenge (the suite's greedy generation is not part of the bar)."""
    from runners.model_suite.performance import ACCURACY_BATCH
    from runners.model_suite.workloads import workload_for

    if challenge not in _DRAWN:
        workload = workload_for(loaded, challenge, quick=False)
        _DRAWN[challenge] = (workload, workload.reference())
    workload, reference = _DRAWN[challenge]
    gemm, cpu = get_backend("cpu").fp8_gemm(), torch.device("cpu")
    assert gemm is not None
    with planted(fault):
        module = loaded.place(cpu, torch.bfloat16, free_bytes=None, fp8_product=gemm.product)
        entry = workload.entry(module) if workload.entry is not None else module
        with torch.inference_mode():
            out = torch.cat(
                [
                    entry(
                        *workload.make_batch(
                            range(i, min(i + ACCURACY_BATCH, workload.size)), cpu, torch.bfloat16
                        )
                    ).to("cpu", torch.float64)
                    for i in range(0, workload.size, ACCURACY_BATCH)
                ]
            )
    return workload.score(out, reference, "bfloat16")


@pytest.mark.slow
@pytest.mark.parametrize("challenge", HONEST_CHALLENGES)
def test_the_honest_block_scaled_path_passes_the_fp8_bar(fp8_loaded, challenge):
    score = _fp8_score(fp8_loaded, challenge, None)
    assert _meets_fp8_bar(score), score


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("challenge", FP8_CHALLENGES)
def test_each_planted_fp8_fault_fails_the_fp8_bar(fp8_loaded, fault, challenge):
    """Per-tensor weight scale, wrong block scale index, per-tensor activation scale (the outlier
    channels flush every other tile) and no float32 promotion (the outlier pair's products carried
    through 2046 additions in the FP22 accumulator)."""
    score = _fp8_score(fp8_loaded, challenge, fault)
    assert not _meets_fp8_bar(score), score


@pytest.mark.slow
def test_the_model_suite_scores_the_fp8_bar_metrics_of_a_planted_fault_as_the_bar_reads_them(fp8_entry):
    """The suite's own run (quick mode, its case and its accuracy measurement) carries both metrics the
    FP8 bar judges, and a planted per-tensor weight scale fails the bar there too."""
    with planted("per_tensor_weight_scale"):
        document = _run(fp8_entry, challenge=FP8_CHALLENGES[0])
    [case] = document["cases"]
    [measurement] = [m for m in document["measurements"] if m["kind"] == "accuracy"]
    assert measurement["params"]["logit_cosine_mean"] == case["metrics"]["logit_cosine_mean"]
    assert not _meets_fp8_bar(case["metrics"]), case["metrics"]


def test_the_fp8_test_model_has_a_long_reduction_and_outlier_channels_that_cancel_exactly(fp8_entry):
    """The FP8 test model (runners/models/fp8.py plant_activation_outliers): the dense layer's down_proj
    reduces over K = 2048, and its input holds an outlier channel pair (0 and 2047, the two ends of K)
    whose E4M3 codes are equal (gate_proj, up_proj rows) and opposite (down_proj columns) with equal
    block scales, so the pair cancels in the float64 reference and in every dtype."""
    stored = load_file(fp8_entry["weights_path"])
    first, second = fp8_module.OUTLIER_CHANNELS
    assert (first, second) == (0, 2047)
    prefix = f"model.layers.{fp8_module.OUTLIER_LAYER}.mlp."
    w = {p: stored[prefix + p + ".weight"].float() for p in ("gate_proj", "up_proj", "down_proj")}
    s = {p: stored[prefix + p + ".weight" + SCALE_SUFFIX] for p in ("gate_proj", "up_proj", "down_proj")}
    assert w["down_proj"].shape == (256, 2048)
    for p in ("gate_proj", "up_proj"):
        assert torch.equal(w[p][first], w[p][second]) and torch.equal(s[p][0], s[p][-1])
    assert torch.equal(w["down_proj"][:, second], -w["down_proj"][:, first])
    assert torch.equal(s["down_proj"][:, 0], s["down_proj"][:, -1])
    # The pair's activations against the rest: silu(x g) * (x u) on unit-RMS inputs, float64.
    deq = {p: w[p].double() * expand_scale(s[p].double(), tuple(w[p].shape)) for p in w}
    x = torch.randn(64, 256, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    h = torch.nn.functional.silu(x @ deq["gate_proj"].t()) * (x @ deq["up_proj"].t())
    live = h[:, 1:-1].abs()
    ratio = float(h[:, first].abs().median() / live[live > 0].median())
    assert ratio > 2.0**14, ratio
    # Equal rows give equal activations (to the GEMM's float64 rounding), which the opposite columns cancel.
    assert torch.allclose(h[:, first], h[:, second], rtol=1e-12, atol=0)


@pytest.mark.slow
def test_the_revealed_accuracy_output_gives_the_mean_logit_cosine_the_document_reports(fp8_entry, tmp_path):
    """The platform's reveal recomputes logit_cosine_mean (the FP8 bar's second metric, carried by the
    accuracy measurement the judge reads) from the revealed output: a document that reports another
    one disagrees with the server."""
    from runners.commitment import OutputCommitment, OutputStore, model_output_id
    from runners.revealed import RevealContext, judge_output
    from runners.spec import attempt_tag

    spec = build_spec(
        suite="model",
        device="cpu",
        challenge=CHALLENGE,
        models=[fp8_entry],
        options={
            "quick": True,
            "model_dtypes": ["bfloat16"],
            "model_performance_dtypes": [],
            "fp8_compute": True,
        },
    )
    store = OutputStore(tmp_path, attempt_tag(CHALLENGE))
    document = run_model(spec, get_backend("cpu"), commitment=OutputCommitment(store))
    output_id = model_output_id(fp8_entry["name"], "bfloat16", "accuracy")
    [measurement] = [m for m in document["measurements"] if m["kind"] == "accuracy"]
    assert 0 < measurement["params"]["logit_cosine_mean"] < 1
    verdict = judge_output(RevealContext(document, spec), output_id, store.get(output_id))
    assert verdict["agrees"], verdict
    measurement["params"]["logit_cosine_mean"] = 0.999
    verdict = judge_output(RevealContext(document, spec), output_id, store.get(output_id))
    assert not verdict["agrees"] and "logit_cosine_mean" in verdict["detail"]
