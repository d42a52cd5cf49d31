"""The DeepSeek-V3-style decoder through the serving suite (issue 16): LoadGen's token-latency mode
(TTFT, TPOT, tokens/s) over its compressed MLA cache, and its accuracy mode judged against the float64
reference written from the tensors by name (runners/models/reference.py ``DeepseekReferenceDecoder``),
not the module cast to float64, so a fault in the module's code is caught when served."""

from __future__ import annotations

import hashlib
from dataclasses import asdict

import pytest
import torch

from runners.backends import get_backend
from runners.document import validate_document
from runners.model_suite.workloads import float64_model, workload_for
from runners.models import ModelSpec, load_model
from runners.models.deepseek import DeepseekV3Config
from runners.models.loading import ARCHITECTURES, Architecture
from runners.models.reference import DeepseekReferenceDecoder, float64_copy
from runners.models.seeded import seeded_model_entry
from runners.serving import run_serving
from runners.spec import build_spec
from tests.runners.test_deepseek_model import FAULTS

pytest.importorskip("mlperf_loadgen")

CHALLENGE = hashlib.sha256(b"deepseek-v3 serving").hexdigest()
TINY = asdict(DeepseekV3Config.small())
# Program-shaped settings, short enough for a CPU test (tests/runners/test_serving.py's).
SETTINGS = {
    "source": "test settings",
    "max_batch": 4,
    "scenarios": {
        "SingleStream": {"min_duration_ms": 100, "min_query_count": 64, "percentile": 0.9},
        "Server": {
            "min_duration_ms": 200,
            "min_query_count": 64,
            "percentile": 0.9,
            "latency_bound_ms": 2000,
        },
        "Offline": {"min_duration_ms": 100, "min_query_count": 1},
    },
    "server_search": {"max_steps": 1, "start_fraction": 0.2, "precision": 0.1, "max_step_s": 5},
    "llm": {"output_tokens": 4, "ttft_ms": 2000, "tpot_ms": 1000},
}


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("deepseek-serving")


def _serve(entry: dict) -> dict:
    spec = build_spec(
        suite="serving",
        device="cpu",
        challenge=CHALLENGE,
        models=[entry],
        options={"quick": True, "serving": SETTINGS},
    )
    return run_serving(spec, get_backend("cpu"))


def test_the_served_reference_is_the_one_written_apart_and_agrees_with_the_float64_module(weights_dir):
    entry = seeded_model_entry("deepseek-v3-tiny", "deepseek-v3", TINY, seed=0, directory=weights_dir)
    loaded = load_model(ModelSpec.from_dict(entry))
    workload = workload_for(loaded, CHALLENGE, quick=True)
    reference = float64_model(loaded, workload)
    assert isinstance(reference, DeepseekReferenceDecoder)
    prompts = workload.make_batch(range(2), torch.device("cpu"), torch.float64)[0]
    module = float64_copy(loaded.module, type(loaded.module), loaded.config)
    with torch.inference_mode():
        torch.testing.assert_close(reference(prompts), module(prompts), rtol=1e-9, atol=1e-9)
        assert torch.equal(reference.generate(prompts, 5), module.generate(prompts, 5))


@pytest.mark.slow
def test_the_decoder_is_served_with_ttft_tpot_and_tokens_per_second(weights_dir):
    entry = seeded_model_entry("deepseek-v3-tiny", "deepseek-v3", TINY, seed=0, directory=weights_dir)
    document = _serve(entry)
    validate_document(document)
    [model] = document["serving"]["models"]
    assert model["architecture"] == "deepseek-v3" and model["token_latencies"] is True
    assert model["batching"] == "continuous" and model["output_tokens"] == 4
    accuracy = next(c for c in document["cases"] if c["case"] == "serving_accuracy")
    assert accuracy["status"] == "pass", accuracy["metrics"]
    assert accuracy["metrics"]["metric"] == "decided_routing_token_agreement"
    assert (
        accuracy["metrics"]["value"] == 1.0
    )  # float32 on margin-drawn prompts: every token is the reference's
    routing = accuracy["metrics"]["routing"]  # the positions judged and those judged apart
    assert routing["routing_tie_margin"] == 4 * torch.finfo(torch.float32).eps
    assert routing["decided_positions"] > 0 and routing["decided_positions"] + routing["tied_positions"] == 16
    figures = {m["name"]: m for m in document["measurements"]}
    for name in ("SingleStream TTFT p90.00", "SingleStream TPOT p90.00", "Offline tokens", "Server tokens"):
        assert f"deepseek-v3-tiny {name}" in figures
    ttft = figures["deepseek-v3-tiny SingleStream TTFT p90.00"]
    tokens = figures["deepseek-v3-tiny Offline tokens"]
    assert ttft["value"] is not None and 0 < ttft["value"] < 2.0
    assert tokens["value"] is not None and tokens["value"] > 1.0 and tokens["unit"] == "tokens/s"


@pytest.mark.slow
def test_a_served_module_fault_is_caught_by_the_reference_written_apart(monkeypatch, weights_dir):
    """The shared expert dropped from the module's MoE layers: the module cast to float64 repeats the
    fault (so the old reference passed it), the reference written from the tensors by name does not."""
    name = "deepseek-v3-shared_expert_dropped"
    honest = ARCHITECTURES["deepseek-v3"]
    broken = FAULTS["shared_expert_dropped"]
    monkeypatch.setitem(
        ARCHITECTURES,
        name,
        Architecture(name, honest.task, honest.config_type, broken, honest.symbols, honest.layout),
    )
    entry = seeded_model_entry(name, name, TINY, seed=0, directory=weights_dir)
    document = _serve(entry)
    accuracy = next(c for c in document["cases"] if c["case"] == "serving_accuracy")
    assert accuracy["status"] == "fail", accuracy["metrics"]
    assert accuracy["metrics"]["value"] < 0.9  # far below the float32 bar (0.99, aia-1.3.json)


@pytest.mark.slow
def test_a_bfloat16_serving_run_is_judged_with_routing_ties_apart_and_the_reveal_rescores_it(weights_dir):
    """Issue 16: the served bfloat16 accuracy is the agreement where the float64 routing is decided in
    bfloat16 (runners/served_outputs.py ROUTING_TIE_RULE); the platform's reveal re-scores it from the
    revealed tokens and catches a document whose stated value the tokens do not give."""
    import copy

    from runners.commitment import CollectingCommitment, serving_output_id
    from runners.revealed import RevealContext, judge_output

    entry = seeded_model_entry("deepseek-v3-tiny", "deepseek-v3", TINY, seed=0, directory=weights_dir)
    spec = build_spec(
        suite="serving",
        device="cpu",
        challenge=CHALLENGE,
        models=[entry],
        options={"quick": True, "serving": {**SETTINGS, "dtype": "bfloat16"}},
    )
    commitment = CollectingCommitment()
    document = run_serving(spec, get_backend("cpu"), commitment=commitment)
    accuracy = next(c for c in document["cases"] if c["case"] == "serving_accuracy")
    metrics = accuracy["metrics"]
    assert accuracy["dtype"] == "bfloat16" and metrics["metric"] == "decided_routing_token_agreement"
    routing = metrics["routing"]
    assert routing["routing_tie_margin"] == 2.0**-5
    assert routing["decided_positions"] + routing["tied_positions"] == 16 and routing["decided_positions"] > 0
    served = {m["unit"]: m["value"] for m in document["measurements"] if m["kind"] == "serving_accuracy"}
    assert served["decided_routing_token_agreement"] == metrics["value"]
    assert served["teacher_forced_token_agreement"] == metrics["teacher_forced_token_agreement"]
    output_id = serving_output_id("deepseek-v3-tiny", "bfloat16", "accuracy")
    tokens = dict(commitment.collected)[output_id]
    verdict = judge_output(RevealContext(document=document, plan=spec), output_id, tokens)
    assert verdict["agrees"] and verdict["metric"] == "decided_routing_token_agreement", verdict
    assert verdict["value"] == metrics["value"]
    forged = copy.deepcopy(document)
    case = next(c for c in forged["cases"] if c["case"] == "serving_accuracy")
    case["metrics"]["value"] = metrics["value"] + 0.25 if metrics["value"] < 0.75 else metrics["value"] - 0.25
    assert not judge_output(RevealContext(document=forged, plan=spec), output_id, tokens)["agrees"]
