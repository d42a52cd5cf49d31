"""Issue 13: the model suite's TEST01, timed figures, clock check and generation agreement decided by
the judge from the raw evidence of the timed runs (runners/model_suite/timed_judge.py).

The suite runs in this process as the device process runs it (``keep_timed``: it judges none of them),
its evidence crosses the wire format, and the judge's functions decide; each test then tampers with
one thing a plugin rewriting the harness in the device process could send.
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch

from runners.backends import get_backend
from runners.commitment import CollectingCommitment
from runners.model_suite import rejudge_model_accuracy, rejudge_model_timed, run_model
from runners.model_suite.performance import TimedEvidence
from runners.model_suite.timed_judge import timed_to_wire
from runners.models.llama import LlamaConfig
from runners.models.resnet import ResNetConfig
from runners.models.seeded import seeded_model_entry
from runners.spec import build_spec

CHALLENGE = "7a11" * 16
pytestmark = pytest.mark.slow  # each module fixture runs the quick model suite once


def _device_run(directory: Path, architecture: str, config: dict[str, Any]) -> dict[str, Any]:
    """One quick float32 model run as the device process runs it, with what it sends the judge."""
    entry = seeded_model_entry("m", architecture, config, seed=0, directory=directory)
    spec = build_spec(
        suite="model",
        device="cpu",
        challenge=CHALLENGE,
        models=[entry],
        options={"quick": True, "model_dtypes": ["float32"], "model_performance_dtypes": ["float32"]},
    )
    kept: list[tuple[str, str, torch.Tensor]] = []
    timed: list[TimedEvidence] = []
    generated: list[tuple[str, str, torch.Tensor]] = []
    document = run_model(
        spec,
        get_backend("cpu"),
        keep_outputs=kept,
        commitment=CollectingCommitment(),
        keep_timed=timed,
        keep_generated=generated,
    )
    outputs, tensors, records = [], {}, []
    for index, (model, dtype, accuracy) in enumerate(kept):
        outputs.append({"model": model, "dtype": dtype})
        tensors[f"{index}.accuracy"] = accuracy
    for index, evidence in enumerate(timed):
        record, wire = timed_to_wire(evidence, f"timed{index}")
        records.append(record)
        tensors.update(wire)
    return {
        "spec": spec,
        "document": document,
        "outputs": outputs,
        "tensors": tensors,
        "records": records,
        "generated": {(m, d): t for m, d, t in generated},
    }


def judge(run: dict[str, Any], records: list[dict[str, Any]] | None = None, tensors=None, document=None):
    """The judge's model-suite re-judging, on copies (runners/device/__init__.py's order)."""
    document = copy.deepcopy(document if document is not None else run["document"])
    tensors = dict(tensors if tensors is not None else run["tensors"])
    workloads: dict[str, Any] = {}
    rejudge_model_accuracy(document, run["spec"], run["outputs"], tensors, workloads, run["generated"])
    committed = rejudge_model_timed(
        document,
        run["spec"],
        copy.deepcopy(records if records is not None else run["records"]),
        tensors,
        run["outputs"],
        workloads,
    )
    [consistency] = document["integrity"]["output_consistency"]["items"]
    [timing] = document["integrity"]["timing"]["items"]
    return document, consistency, timing, committed


@pytest.fixture(scope="module")
def resnet(tmp_path_factory) -> dict[str, Any]:
    return _device_run(tmp_path_factory.mktemp("resnet"), "resnet-cnn", asdict(ResNetConfig.small()))


def test_the_device_side_judges_nothing_and_the_judge_passes_an_honest_run(resnet):
    [device_item] = resnet["document"]["integrity"]["output_consistency"]["items"]
    assert device_item["verdict"] == "fail" and "judged by the judge" in device_item["reason"]
    document, consistency, timing, committed = judge(resnet)
    assert consistency["verdict"] == "pass", consistency
    assert {label.split("@")[0] for label in consistency["sample_ids"]} == {"latency", "b1", "b4"}
    assert timing["raw_timings"] == {"checked": 3, "disagreements": 0, "details": []}
    assert timing["verdict"] == "not_applicable"  # host clock only: nothing to cross-check
    assert sorted(i for i, _ in committed) == sorted(
        f"model/m/float32/{s}" for s in consistency["sample_ids"]
    )


def test_a_forged_figure_is_replaced_by_the_raw_timings_and_fails_the_clock_item(resnet):
    forged = copy.deepcopy(resnet["document"])
    [latency] = [m for m in forged["measurements"] if m["kind"] == "model_latency"]
    honest = latency["value"]
    latency["value"] /= 10
    latency["stats"]["median"] /= 10
    document, _, timing, _ = judge(resnet, document=forged)
    assert timing["verdict"] == "fail" and timing["raw_timings"]["disagreements"] == 1
    assert timing["reason"] == "m latency: the published figures disagree with the raw timings"
    [judged] = [m for m in document["measurements"] if m["kind"] == "model_latency"]
    assert judged["value"] == pytest.approx(honest, rel=1e-12)
    assert document["integrity"]["timing"]["verdict"] == "fail"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda t: t.pop("m latency"), "m latency: no raw timings"),
        (lambda t: t["m latency"].update(samples=[]), "m latency: no samples"),
        (lambda t: t["m latency"].update(samples=[-1.0]), "m latency: a sample is not a finite non-negative"),
        (lambda t: t["m latency"].update(calls_per_sample=0), "m latency: calls_per_sample"),
        (lambda t: t["m latency"].update(method="device_events"), "m latency: device-events timings need"),
    ],
)
def test_missing_or_malformed_raw_timings_refuse_the_figure(resnet, tamper, reason):
    records = copy.deepcopy(resnet["records"])
    tamper(records[0]["timings"])
    document, _, timing, _ = judge(resnet, records=records)
    assert timing["verdict"] == "fail" and timing["reason"].startswith(reason), timing
    [latency] = [m for m in document["measurements"] if m["kind"] == "model_latency"]
    assert latency["value"] is None and latency["flags"] == ["unavailable"]


def _drop_group(record: dict[str, Any], group: str) -> None:
    record["samples"] = [s for s in record["samples"] if not s["label"].startswith(f"{group}@")]


def _wrong_items(record: dict[str, Any], group: str) -> None:
    for sample in record["samples"]:
        if sample["label"].startswith(f"{group}@"):
            sample["items"] = [1]


def _too_many(record: dict[str, Any], group: str) -> None:
    [first] = [s for s in record["samples"] if s["label"].startswith(f"{group}@")][:1]
    record["samples"] += [{**first, "label": f"{group}@round{900 + i}"} for i in range(5)]


def _other_rounds(record: dict[str, Any], group: str) -> None:
    """Samples of rounds another challenge would have drawn (a replayed run's)."""
    for sample in record["samples"]:
        if sample["label"].startswith(f"{group}@round"):
            sample["label"] = f"{group}@round{int(sample['label'].rsplit('round', 1)[1]) + 1}"


def _foreign(record: dict[str, Any], group: str) -> None:
    record["samples"].append({**record["samples"][0], "label": "b64@round0"})


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_drop_group, "timed run 'latency' came back with 0 TEST01 samples"),
        (_wrong_items, "TEST01 sample 'latency@round"),
        (_too_many, "timed run 'latency' came back with"),
        (_foreign, "TEST01 sample 'b64@round0' is of no timed run of this job"),
        (_other_rounds, "timed run 'latency': its TEST01 rounds"),
    ],
)
def test_missing_wrong_or_extra_test01_samples_fail(resnet, tamper, reason):
    records = copy.deepcopy(resnet["records"])
    tamper(records[0], "latency")
    _, consistency, _, committed = judge(resnet, records=records)
    assert consistency["verdict"] == "fail" and reason in consistency["reason"], consistency
    assert committed == [] and consistency["sample_ids"] == []


def test_a_sample_computed_otherwise_than_the_accuracy_pass_fails(resnet):
    tensors = dict(resnet["tensors"])
    [name] = [s["output"] for s in resnet["records"][0]["samples"] if s["label"].startswith("latency@")][:1]
    tensors[name] = tensors[name].to(torch.bfloat16).double()  # the latency path in bfloat16
    _, consistency, _, _ = judge(resnet, tensors=tensors)
    assert consistency["verdict"] == "fail"
    assert consistency["details"][0]["reason"] == "differs from the accuracy pass"


def test_no_evidence_for_a_timed_model_fails_both_checks(resnet):
    document, consistency, timing, _ = judge(resnet, records=[])
    assert consistency["verdict"] == timing["verdict"] == "fail"
    assert "no evidence of the timed runs" in consistency["reason"]
    assert all(m["value"] is None for m in document["measurements"] if m["kind"] == "model_latency")


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> dict[str, Any]:
    return _device_run(tmp_path_factory.mktemp("llama"), "llama-decoder", asdict(LlamaConfig.small()))


def test_a_decoder_is_judged_with_the_judges_float64_logits_and_generation(llama):
    document, consistency, timing, _ = judge(llama)
    assert consistency["verdict"] == "pass", consistency
    groups = {label.split("@")[0] for label in consistency["sample_ids"]}
    assert {"ttft b1", "decode b1", "ttft b4", "decode b4"} <= groups
    assert timing["raw_timings"]["disagreements"] == 0 and timing["raw_timings"]["checked"] == 7
    [case] = [c for c in document["cases"] if c["status"] in ("pass", "fail")]
    assert case["metrics"]["greedy_generation_agreement"] == 1.0
    # A decode step's first token other than the one it continued: judged against that context.
    records, tensors = copy.deepcopy(llama["records"]), dict(llama["tensors"])
    for token in {s["token"] for s in records[0]["samples"] if s["label"].startswith("decode ")}:
        tensors[token] = (tensors[token] + 1) % LlamaConfig.small().vocab_size
    _, consistency, _, _ = judge(llama, tensors=tensors)
    assert consistency["verdict"] == "fail", consistency
    # Generated tokens the float64 model would not generate, or none at all.
    forged = {
        **llama,
        "generated": {k: (v + 1) % LlamaConfig.small().vocab_size for k, v in llama["generated"].items()},
    }
    document, _, _, _ = judge(forged)
    [case] = [c for c in document["cases"] if c["status"] in ("pass", "fail")]
    assert case["metrics"]["greedy_generation_agreement"] == 0.0
    document, _, _, _ = judge({**llama, "generated": {}})
    [case] = [c for c in document["cases"] if c["status"] in ("pass", "fail")]
    assert case["metrics"]["greedy_generation_agreement"] == 0.0
