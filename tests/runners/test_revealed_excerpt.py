"""The excerpt a reveal keeps at its draw judges exactly as the whole document (issue 13).

Since session 27 the platform judges a reveal's answer from the excerpt of the document it kept at the
draw (`runners.revealed.judged_excerpt`, through apps.runs.services.reveal.judging_excerpt), not from the
document. An excerpt that leaves out something a judge reads changes verdicts: session 27's left out a
model's accuracy measurement, whose mean logit cosine the judge re-reads, and an honest DeepSeek run's
accuracy output read as "the document reports logit_cosine_mean None" (a mismatch, failing the job).

Every committed output of the runner's real documents (the tiny plan's four suites, and a DeepSeek model
run in bfloat16) is judged here from the excerpt of its own draw and from the whole document, each on
a fresh context; the verdicts must be equal, field for field."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch

from runners.backends import get_backend
from runners.commitment import OutputCommitment, OutputStore
from runners.models.deepseek import DeepseekV3Config
from runners.models.llama import LlamaConfig
from runners.models.seeded import seeded_model_entry
from runners.revealed import NotJudgeable, RevealContext, judge_output, judgeable, judged_excerpt
from runners.spec import attempt_tag, build_spec
from runners.suites import run_suite
from tests.real_documents import CHALLENGE, runner_documents


def committed_outputs(document: dict[str, Any]) -> list[dict[str, Any]]:
    return list(document["commitment"]["outputs"])


def _verdict(document: dict[str, Any], spec: dict[str, Any], output_id: str, tensor, weights) -> Any:
    try:
        verdict = judge_output(RevealContext(document, spec, weights=weights), output_id, tensor)
    except NotJudgeable as exc:
        return ("not judgeable", str(exc))
    return {k: v for k, v in verdict.items() if k != "stats"} | {"stats": verdict.get("stats")}


def _judged_alike(document: dict[str, Any], store: OutputStore, weights: dict[str, str]) -> int:
    """How many committed outputs were judged (alike from the excerpt and the whole document)."""
    spec = document["spec"]
    outputs = [str(e["id"]) for e in committed_outputs(document)]
    compared = 0
    for output_id in outputs:
        tensor = store.get(output_id)
        assert tensor is not None, output_id
        whole = _verdict(document, spec, output_id, tensor, weights)
        kept = _verdict(judged_excerpt(document, [output_id]), spec, output_id, tensor, weights)
        assert kept == whole, output_id
        # Judged, exactly where the draw may take it (an output too costly to recompute, or one only the
        # runner host's judge recomputes, is excluded from the draw: "not judgeable" on both).
        drawable = judgeable(RevealContext(document, spec), output_id) is None
        assert drawable == isinstance(whole, dict), (output_id, whole)
        compared += drawable
    return compared


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    real = runner_documents()
    weights = tmp_path_factory.mktemp("weights") / "tiny-bert.safetensors"
    weights.write_bytes(real.weights)
    return real, {real.model_name: str(weights)}


@pytest.mark.parametrize("suite", ["conformance", "performance", "model", "serving"])
def test_the_excerpt_judges_every_committed_output_of_the_runners_documents_as_the_whole_document(
    tiny, suite
):
    real, weights = tiny
    document = real.documents[suite]
    store = OutputStore(real.output_root, attempt_tag(document["spec"]["challenge"]))
    assert _judged_alike(document, store, weights) > 0


def _decoder_run(folder: Path, entry: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], OutputStore]:
    """A decoder's model suite run in bfloat16 on this CPU (quick plan), its outputs committed as a runner
    host commits them: (document, spec, store)."""
    spec = build_spec(
        suite="model",
        device="cpu",
        challenge=CHALLENGE,
        models=[entry],
        options={"quick": True, "model_dtypes": ["bfloat16"], "model_performance_dtypes": ["bfloat16"]},
    )
    store = OutputStore(folder / "outputs", attempt_tag(CHALLENGE))
    torch.manual_seed(0)
    document = run_suite(
        spec, backend=get_backend("cpu"), progress=lambda *_: None, commitment=OutputCommitment(store)
    )
    return document, spec, store


@pytest.fixture(scope="module")
def deepseek(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deepseek")
    config = asdict(DeepseekV3Config.small())
    return _decoder_run(folder, seeded_model_entry("dsv3", "deepseek-v3", config, seed=0, directory=folder))


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llama")
    config = dict(LlamaConfig.small().__dict__)
    entry = seeded_model_entry(
        "llama", "llama-decoder", config, seed=0, directory=folder, task="text-generation"
    )
    return _decoder_run(folder, entry)


def test_a_deepseek_models_accuracy_output_is_judged_from_the_excerpt_as_from_the_whole_document(deepseek):
    """Its accuracy measurement's mean logit cosine is re-read by the judge: the excerpt keeps it."""
    document, spec, store = deepseek
    accuracy = [
        m for m in document["measurements"] if m["name"] == "dsv3 accuracy" and m["dtype"] == "bfloat16"
    ]
    assert accuracy and "logit_cosine_mean" in accuracy[0]["params"]
    assert judged_excerpt(document, ["model/dsv3/bfloat16/accuracy"])["measurements"] == accuracy
    # The accuracy output, the latency and throughput samples and the first-token samples.
    assert _judged_alike(document, store, {}) >= 5
    verdict = judge_output(
        RevealContext(judged_excerpt(document, ["model/dsv3/bfloat16/accuracy"]), spec),
        "model/dsv3/bfloat16/accuracy",
        store.get("model/dsv3/bfloat16/accuracy"),
    )
    assert verdict["agrees"] and verdict["server_status"] == "pass", verdict


def _swapped_top(logits: torch.Tensor) -> torch.Tensor:
    """Each row's top logit swapped with the row's lowest: a device that picks a token the reference ranks last."""
    rows = torch.arange(logits.shape[0])
    top, bottom = logits.argmax(-1), logits.argmin(-1)
    forged = logits.clone()
    forged[rows, top], forged[rows, bottom] = logits[rows, bottom], logits[rows, top]
    return forged


@pytest.mark.parametrize("decoder", ["deepseek", "llama"])
def test_a_decoders_first_token_and_decode_step_samples_are_judged_by_the_platform(request, decoder):
    """A decoder's timed first-token and decode-step samples (before session 29 judged on the runner host
    only). A first-token sample's prompts are the workload's first ones, so its float64 logits are the model
    reference's at the prompt's last position (a DeepSeek reference holds its MTP head's logits after the
    main head's). A decode step continues the device's own first token, which the commitment does not
    hold: judged where the float64 first token is decided in the dtype (an honest device picked it),
    else not judged, with the reason. Honest samples pass and agree with the runner, on the references
    computed at the answer and on those precomputed while the runner ran; logits whose top token is one
    the reference ranks last fail, against a runner that said pass; logits of another shape fail."""
    from runners.revealed import reference_key, reference_parts

    document, spec, store = request.getfixturevalue(decoder)
    name = spec["models"][0]["name"]
    key = reference_key(f"model/{name}")
    ids = [str(e["id"]) for e in committed_outputs(document)]
    samples = [
        i for i in ids if i.startswith((f"model/{name}/bfloat16/ttft b", f"model/{name}/bfloat16/decode b"))
    ]
    assert {i.split("/")[-1].split(" ")[0] for i in samples} == {"ttft", "decode"}, ids
    precomputed = {key: reference_parts(RevealContext({}, spec), key)}
    assert {"reference", "decode_b1"} <= set(precomputed[key])
    judged = set()
    for output_id in samples:
        assert judgeable(RevealContext(document, spec), output_id) is None
        for ahead in ({}, precomputed):
            context = RevealContext(document, spec)
            context.precomputed = ahead
            try:
                verdict = judge_output(context, output_id, store.get(output_id))
            except NotJudgeable as exc:  # a decode step after a first token the dtype does not decide
                assert "/decode b" in output_id and "the device's own choice" in str(exc), (output_id, exc)
                continue
            assert verdict["server_status"] == verdict["runner_status"] == "pass", (output_id, verdict)
            assert verdict["agrees"] and (verdict["metric"], verdict["value"]) == (
                "tokens_within_rounding",
                1.0,
            )
            assert context.used[key] == ("precomputed" if ahead else "inline")
            judged.add(output_id.split("/")[-1].split(" ")[0])
    # DeepSeek's prompts keep a top-1 logit margin: its first tokens are decided, its decode steps judged.
    assert judged == ({"ttft", "decode"} if decoder == "deepseek" else judged | {"ttft"})

    for output_id in samples:
        honest = store.get(output_id)
        try:
            forged = judge_output(RevealContext(document, spec), output_id, _swapped_top(honest))
        except NotJudgeable:
            continue
        assert forged["server_status"] == "fail" and forged["runner_status"] == "pass", (output_id, forged)
        assert not forged["agrees"] and forged["value"] == 0.0, forged
        short = judge_output(RevealContext(document, spec), output_id, honest[:, :-1])
        assert short["server_status"] == "fail" and "logits are" in short["detail"], short


def test_the_excerpt_of_a_conformance_draw_holds_the_drawn_cases_only(tiny):
    real, _ = tiny
    document = real.documents["conformance"]
    drawn = [str(e["id"]) for e in committed_outputs(document)][:3]
    excerpt = judged_excerpt(document, drawn)
    assert sorted(f"conformance/{c['kernel']}/{c['dtype']}/{c['case']}" for c in excerpt["cases"]) == sorted(
        drawn
    )
    assert excerpt["spec"] == {"challenge": document["spec"]["challenge"]}
    assert "commitment" not in excerpt and len(str(excerpt)) < len(str(document)) / 5
