"""Serving: outputs sampled during the timed LoadGen runs (TEST01), and continuous batching."""

from __future__ import annotations

import threading

import pytest
import torch

from runners.backends import get_backend
from runners.document import validate_document
from runners.models import ModelSpec, load_model
from runners.served_outputs import ServedOutputSampler, reservoir_positions, served_outputs_salt
from runners.serving import run_serving
from runners.serving.sut import ContinuousDecoderSUT, DecoderSUT
from runners.serving_engine import ServingEngine
from tests.runners.test_serving import SETTINGS, TINY_BERT, TINY_LLAMA, entry, spec_for

lg = pytest.importorskip("mlperf_loadgen")

QUICK = {**SETTINGS, "server_search": {**SETTINGS["server_search"], "max_steps": 1}}


class DegradesUnderLoad:
    """A backend honest in LoadGen's accuracy mode that serves stale (or garbage) outputs while
    LoadGen times it: the test flips ``timed`` around every performance-mode run."""

    def __init__(self, garbage: bool = False) -> None:
        self.inner = get_backend("cpu")
        self.timed = False
        self.garbage = garbage

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def prepare(self, fn):
        cached: list[torch.Tensor] = []

        def served(*args):
            out = fn(*args)
            if not self.timed:
                return out
            if self.garbage:  # every next token moves one place down the vocabulary
                return out.roll(1, dims=-1)
            if not cached:
                cached.append(out[:1].clone())
            return cached[0].expand_as(out).clone()

        return served


@pytest.fixture
def timed_flag(monkeypatch):
    """Sets ``backend.timed`` during every performance-mode LoadGen run of the serving suite."""
    import runners.serving as serving

    holder: dict = {}
    real = serving.run_test

    def run_test(sut, **kw):
        backend = holder.get("backend")
        if backend is not None:
            backend.timed = kw["mode"] == "performance"
        try:
            return real(sut, **kw)
        finally:
            if backend is not None:
                backend.timed = False

    monkeypatch.setattr(serving, "run_test", run_test)
    return holder


def consistency(document: dict) -> dict:
    return document["integrity"]["output_consistency"]["items"][0]


def test_honest_serving_passes_test01_over_every_timed_run(tmp_path):
    models = [entry(tmp_path, "tiny-bert", "bert-encoder", TINY_BERT)]
    document = run_serving(spec_for(models, QUICK), get_backend("cpu"))
    validate_document(document)
    item = consistency(document)
    assert item["verdict"] == "pass" and item["mismatches"] == 0
    assert item["against"] == ["accuracy_mode", "float64_reference"]
    tags = [run["tag"] for run in item["runs"]]
    assert "SingleStream" in tags and "Server-0" in tags and any(t.startswith("Offline") for t in tags)
    assert item["sampled"] == sum(len(run["positions"]) for run in item["runs"]) > 0
    challenge = document["spec"]["challenge"]
    for run in item["runs"]:  # the platform recomputes every kept position from the challenge
        salt = served_outputs_salt("tiny-bert", item["dtype"], run["tag"])
        assert run["salt"] == salt
        assert run["positions"] == reservoir_positions(challenge, salt, run["completed"])


def test_a_device_serving_stale_outputs_only_under_load_fails_test01(tmp_path, timed_flag):
    models = [entry(tmp_path, "tiny-bert", "bert-encoder", TINY_BERT)]
    backend = timed_flag["backend"] = DegradesUnderLoad()
    document = run_serving(spec_for(models, QUICK), backend)
    validate_document(document)
    accuracy = next(c for c in document["cases"] if c["case"] == "serving_accuracy")
    assert accuracy["status"] == "pass"  # LoadGen's accuracy mode alone does not see it
    item = consistency(document)
    assert item["verdict"] == "fail" and item["mismatches"] > 0
    assert document["integrity"]["output_consistency"]["verdict"] == "fail"
    assert "accuracy-mode" in item["details"][0]["reason"]


@pytest.mark.slow
def test_a_decoder_serving_garbage_tokens_under_load_fails_test01(tmp_path, timed_flag):
    models = [entry(tmp_path, "tiny-llama", "llama-decoder", TINY_LLAMA)]
    honest = run_serving(spec_for(models, QUICK), get_backend("cpu"))
    assert consistency(honest)["verdict"] == "pass" and consistency(honest)["against"] == [
        "float64_reference"
    ]
    backend = timed_flag["backend"] = DegradesUnderLoad(garbage=True)
    document = run_serving(spec_for(models, QUICK), backend)
    accuracy = next(c for c in document["cases"] if c["case"] == "serving_accuracy")
    assert accuracy["status"] == "pass"
    item = consistency(document)
    assert item["verdict"] == "fail" and item["mismatches"] == item["sampled"] > 0
    assert item["details"][0]["tokens_within_rounding"] < 1.0


def test_reservoir_positions_are_uniform_seeded_and_recomputable():
    sampler = ServedOutputSampler("cd" * 32, "m:float32:Server-0", k=4)
    for position in range(500):
        sampler.offer(position % 7, torch.tensor([float(position)]))
    kept = sampler.kept()
    assert [p for p, _i, _o in kept] == reservoir_positions("cd" * 32, "m:float32:Server-0", 500)
    assert all(float(o) == p and i == p % 7 for p, i, o in kept)  # each output is its own position's
    assert reservoir_positions("ef" * 32, "m:float32:Server-0", 500) != sampler.record()["positions"]
    late = sum(max(reservoir_positions(str(s), "x", 500)) >= 250 for s in range(50))
    assert late > 40  # not only the first completions: the run's later half is sampled too


# Continuous batching ----------------------------------------------------------------------------


@pytest.fixture
def llama(tmp_path):
    loaded = load_model(ModelSpec.from_dict(entry(tmp_path, "tiny-llama", "llama-decoder", TINY_LLAMA)))
    module = loaded.place(torch.device("cpu"), torch.float32, free_bytes=None)
    prompts = torch.randint(0, TINY_LLAMA["vocab_size"], (8, 6), generator=torch.Generator().manual_seed(3))
    return module, prompts


class Sample:
    def __init__(self, sid: int, index: int) -> None:
        self.id, self.index = sid, index


def _drive(sut_class, module, prompts, monkeypatch) -> tuple[list[tuple[str, int]], object]:
    """Issues samples 0-1, and 2-5 while the first two are mid-decode; the callbacks' order."""
    events: list[tuple[str, int]] = []
    done = threading.Event()
    monkeypatch.setattr(lg, "FirstTokenComplete", lambda rs: events.extend(("first", r.id) for r in rs))

    def complete(responses):
        events.extend(("done", r.id) for r in responses)
        if sum(e == "done" for e, _ in events) == 6:
            done.set()

    monkeypatch.setattr(lg, "QuerySamplesComplete", complete)
    calls = {"n": 0}
    second_issued = threading.Event()

    def forward(ids, cache):  # hold the first decode step until the second group is queued
        calls["n"] += 1
        if calls["n"] == 2:
            second_issued.wait(10)
        return module(ids, cache)

    engine = ServingEngine(module, forward, (prompts,), decoder=True, output_tokens=10)
    sut = sut_class(engine, max_batch=8, record=True)
    try:
        sut.issue([Sample(0, 0), Sample(1, 1)])
        while calls["n"] < 2:
            threading.Event().wait(0.001)
        sut.issue([Sample(i, i) for i in range(2, 6)])
        second_issued.set()
        assert done.wait(30)
    finally:
        sut.close()
    return events, sut


def test_continuous_batching_admits_requests_between_decode_steps(llama, monkeypatch):
    module, prompts = llama
    events, sut = _drive(ContinuousDecoderSUT, module, prompts, monkeypatch)
    assert sut.error is None and sut.joins == 4
    # The later requests got their first token while the first two were still decoding.
    order = {event: n for n, event in enumerate(events)}
    assert max(order[("first", i)] for i in range(2, 6)) < min(order[("done", 0)], order[("done", 1)])
    # Same tokens as generating each prompt alone (rows at different positions share each step).
    expected = module.generate(prompts[:6], 10)
    for index in range(6):
        assert torch.equal(sut.outputs[index], expected[index]), index
    assert len(sut.request_latencies) == 6 and all(t >= 0 and p > 0 for t, p in sut.request_latencies)


def test_static_batching_makes_later_requests_wait_for_the_batch(llama, monkeypatch):
    module, prompts = llama
    events, sut = _drive(DecoderSUT, module, prompts, monkeypatch)
    order = {event: n for n, event in enumerate(events)}
    assert min(order[("first", i)] for i in range(2, 6)) > order[("done", 0)]


@pytest.mark.slow
def test_the_document_states_the_batching_mode(tmp_path):
    models = [entry(tmp_path, "tiny-llama", "llama-decoder", TINY_LLAMA)]
    static = {**QUICK, "llm": {**QUICK["llm"], "batching": "static"}}
    document = run_serving(spec_for(models, static), get_backend("cpu"))
    model = document["serving"]["models"][0]
    assert model["batching"] == "static"
    assert "continuous_batching" not in model["scenarios"]["Server"]["requested"]
    document = run_serving(spec_for(models, QUICK), get_backend("cpu"))
    validate_document(document)
    model = document["serving"]["models"][0]
    assert model["batching"] == "continuous"
    figures = model["scenarios"]["Server"]["requested"]["continuous_batching"]
    assert figures["requests"] > 0 and figures["ttft_p90_s"] > 0
    bad = {**QUICK, "llm": {**QUICK["llm"], "batching": "dynamic-ish"}}
    refused = run_serving(spec_for(models, bad), get_backend("cpu"))
    assert refused["cases"][0]["status"] == "error" and "batching" in refused["cases"][0]["message"]
