"""Issue 15: a tender ranks serving figures at a bound. A Server QPS weight compares only figures LoadGen
judged at a query latency bound at least as strict as the weight's (or its tender's requirement's), a
tokens/s weight only figures judged in token-latency mode at a TPOT bound at least as strict; any
other figure is missing from the ranking, with the reason, and the formula states the bound.

The figures are the runner's own: the real H200 document (bench/evidence/h200-2026-11-30: a decoder
judged by TTFT and TPOT, a ResNet judged at p90 <= 100 ms), and tiny BERT Server runs served through
LoadGen on this CPU at two latency bounds. Their bounds are read by the judge from the LoadGen summaries
the documents digest (judge.serving_bound), as the candidate selector reads them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from apps.certificates import judge
from apps.procurement.eligibility import _serving_cell
from apps.procurement.scoring import metric_value, scoring_bounds, scoring_clean, scoring_rank

H200 = Path(__file__).resolve().parents[2] / "bench/evidence/h200-2026-11-30/serving.json"
LLAMA, RESNET = "llama-small-seeded", "resnet-small-seeded"


def _figure(item: dict, summary: str) -> dict:
    """A candidate's serving figure as selectors._attach_serving builds it: the value and the bound the
    judge reads from the run's LoadGen summary."""
    bound, problem = judge.serving_bound({**item["params"], "loadgen_summary": summary})
    assert problem is None, problem
    return {"value": item["value"], "unit": item["unit"], "measurement": 1, "document": "ab" * 32} | (
        bound.as_params()
    )


def h200_figures() -> dict[tuple[str, str, str], dict]:
    document = json.loads(H200.read_text())
    figures = {}
    for model in document["serving"]["models"]:
        summary = model["scenarios"]["Server"]["summary_text"]
        for item in document["measurements"]:
            params = item["params"]
            if (
                item["kind"] in ("serving_qps", "serving_tokens")
                and params.get("model") == model["name"]
                and params.get("scenario") == "Server"
            ):
                figures[(model["name"], item["dtype"], item["kind"])] = _figure(item, summary)
    return figures


def candidate(serial: str, serving: dict) -> SimpleNamespace:
    return SimpleNamespace(serial=serial, serving=serving, gemm={}, certified_source=f"certificate {serial}")


def qps(model: str, **bound) -> dict:
    return {"metric": "serving_qps", "weight": 1.0, "model": model, "dtype": "bfloat16", **bound}


def tokens(**fields) -> dict:
    return {"metric": "serving_tokens", "weight": 1.0, "model": LLAMA, "dtype": "bfloat16", **fields}


def test_a_qps_weight_reads_only_figures_judged_at_its_latency_bound_or_tighter():
    chip = candidate("H200", h200_figures())
    value, why = metric_value(item=qps(RESNET, max_latency_ms=100), candidate=chip, currency="USD")
    assert value == pytest.approx(5635.95375) and why == ""
    assert metric_value(item=qps(RESNET, max_latency_ms=250), candidate=chip, currency="USD")[0] == value
    # Judged at p90 <= 100 ms: not a 50 ms figure, nor a p99 one.
    assert metric_value(item=qps(RESNET, max_latency_ms=50), candidate=chip, currency="USD") == (
        None,
        "certified at p90 <= 100 ms, looser than latency <= 50 ms",
    )
    assert metric_value(
        item=qps(RESNET, max_latency_ms=100, percentile=0.99), candidate=chip, currency="USD"
    ) == (None, "certified at p90 <= 100 ms, looser than p99 <= 100 ms")
    # The decoder's Server QPS was judged by TTFT and TPOT (token-latency mode), not by a query latency
    # bound: LoadGen counted every one of its queries over the nominal 100 ms and still judged it VALID.
    assert metric_value(item=qps(LLAMA, max_latency_ms=100), candidate=chip, currency="USD") == (
        None,
        "certified at TTFT p90 <= 2000 ms and TPOT p90 <= 200 ms: not judged by a latency bound",
    )


def test_a_tokens_weight_reads_only_figures_judged_at_its_tpot_bound_or_tighter():
    chip = candidate("H200", h200_figures())
    value, why = metric_value(item=tokens(max_tpot_ms=200), candidate=chip, currency="USD")
    assert value == pytest.approx(3039.72) and why == ""
    value, why = metric_value(item=tokens(max_tpot_ms=150), candidate=chip, currency="USD")
    assert value is None and why.endswith("looser than TPOT <= 150 ms")
    # A weight with no bound of its own and no requirement stating one compares nothing.
    value, why = metric_value(item=tokens(), candidate=chip, currency="USD")
    assert value is None and why.startswith("the weight states no TPOT bound")


def test_a_weight_without_a_bound_takes_the_tightest_the_tender_requires():
    def requirement(bound: float) -> dict:
        return {
            "kind": "serving_qps",
            "params": {"model": RESNET, "dtype": "bfloat16", "min_qps": 1.0, "max_latency_ms": bound},
        }

    weights = [qps(RESNET), qps(RESNET, max_latency_ms=30), qps("other")]
    resolved = scoring_bounds(scoring=weights, requirements=[requirement(200), requirement(100)])
    assert [w.get("max_latency_ms") for w in resolved] == [100, 30, None]
    # A new tender's serving weight must have a bound, its own or its requirement's.
    with pytest.raises(ValidationError, match="needs its bound"):
        scoring_clean(rows=[qps(RESNET)], requirements=[])
    assert scoring_clean(rows=[qps(RESNET)], requirements=[requirement(100)]) == [qps(RESNET)]
    assert scoring_clean(rows=[qps(RESNET, max_latency_ms="80", percentile=0.9)], requirements=[]) == [
        qps(RESNET, max_latency_ms=80.0, percentile=0.9)
    ]
    with pytest.raises(ValidationError, match="percentile"):
        scoring_clean(rows=[qps(RESNET, max_latency_ms=80, percentile=90)], requirements=[])


@pytest.fixture(scope="module")
def bert_servers(tmp_path_factory):
    """Two real Server runs of one tiny BERT on this CPU, the level's bound 500 ms and 50 ms."""
    pytest.importorskip("mlperf_loadgen")
    from runners.backends import get_backend
    from runners.serving import run_serving
    from tests.runners.test_serving import SETTINGS, TINY_BERT, entry, spec_for

    tmp = tmp_path_factory.mktemp("bert-bounds")
    models = [entry(tmp, "tiny-bert", "bert-encoder", TINY_BERT)]
    documents = {}
    for bound in (500, 50):
        settings = copy.deepcopy(SETTINGS)
        settings["scenarios"]["Server"]["latency_bound_ms"] = bound
        settings["server_search"].update(max_steps=1, start_fraction=0.05)
        documents[bound] = run_serving(spec_for(models, settings), get_backend("cpu"))
    return documents


def _bert_server(document: dict) -> dict:
    item = next(
        m
        for m in document["measurements"]
        if m["kind"] == "serving_qps" and m["params"].get("scenario") == "Server"
    )
    if item["value"] is None:
        pytest.skip(f"this host's loaded CPU left the tiny Server step uncertified: {item['params']}")
    run = next(m for m in document["serving"]["models"] if m["name"] == "tiny-bert")
    return _figure(item, run["scenarios"]["Server"]["summary_text"])


def test_chips_are_ranked_by_figures_at_the_tenders_bound_only(bert_servers):
    loose, tight = _bert_server(bert_servers[500]), _bert_server(bert_servers[50])
    # The chip certified at 500 ms is made the faster one: at a 100 ms weight it must still not count.
    loose = {**loose, "value": tight["value"] * 10}
    key = ("tiny-bert", "float32", "serving_qps")
    candidates = {"LOOSE": candidate("LOOSE", {key: loose}), "TIGHT": candidate("TIGHT", {key: tight})}
    rows = [{"serial": s, "chip": {"sku": s}} for s in candidates]
    weight = {"metric": "serving_qps", "weight": 1.0, "model": "tiny-bert", "dtype": "float32"}
    formula = scoring_rank(
        rows=rows, candidates=candidates, scoring=[{**weight, "max_latency_ms": 100}], currency="USD"
    )
    assert formula == (
        "score = (1 x serving_qps[tiny-bert float32 at latency <= 100 ms]"
        "/max(serving_qps[tiny-bert float32 at latency <= 100 ms])) / 1"
    )
    by_serial = {row["serial"]: row for row in rows}
    assert [row["serial"] for row in rows] == ["TIGHT", "LOOSE"]
    assert by_serial["TIGHT"]["score"] == 1.0 and by_serial["LOOSE"]["score"] == 0.0
    assert by_serial["LOOSE"]["terms"][0]["missing"] == (
        "certified at p90 <= 500 ms, looser than latency <= 100 ms"
    )
    # At a 500 ms weight both count, and the faster one ranks first.
    rows = [{"serial": s, "chip": {"sku": s}} for s in candidates]
    scoring_rank(
        rows=rows, candidates=candidates, scoring=[{**weight, "max_latency_ms": 500}], currency="USD"
    )
    assert [row["serial"] for row in rows] == ["LOOSE", "TIGHT"]
    # The requirement's cell reads the same bound, by the same rule.
    cell = _serving_cell(
        "serving_qps",
        {"model": "tiny-bert", "dtype": "float32", "min_qps": 0.001, "max_latency_ms": 100},
        candidates["LOOSE"],
    )
    assert not cell["ok"] and "at latency p90 <= 500 ms" in cell["value"]


def test_an_encoders_server_case_records_the_queries_over_its_judged_bound(bert_servers):
    """Outside token-latency mode LoadGen judges each query against the bound: the count is a verdict."""
    case = next(c for c in bert_servers[500]["cases"] if c["case"] == "serving_Server")
    metrics = case["metrics"]
    assert metrics["overlatency_judged"] is True
    queries = next(
        m["params"]["query_count"]
        for m in bert_servers[500]["measurements"]
        if m["kind"] == "serving_qps" and m["params"].get("scenario") == "Server"
    )
    assert case["stats"]["mismatch_fraction"] == pytest.approx(
        metrics["loadgen_overlatency_query_count"] / queries
    )


def test_a_missing_terms_reason_reads_in_chinese_and_the_form_names_the_bound():
    from django.utils import translation

    from apps.procurement.forms import ScoringRowForm
    from certification.recorded_text import localize

    chip = candidate("H200", h200_figures())
    _value, why = metric_value(item=qps(RESNET, max_latency_ms=50), candidate=chip, currency="USD")
    _value, other = metric_value(item=qps(LLAMA, max_latency_ms=100), candidate=chip, currency="USD")
    with translation.override("zh-hans"):
        assert localize(why) == "认证依据为 p90 <= 100 ms，宽于 latency <= 50 ms"
        assert localize(other).startswith("认证依据为 TTFT p90 <= 2000 ms and TPOT p90 <= 200 ms：并非按")
    form = ScoringRowForm(
        data={"metric": "serving_tokens", "weight": "2", "model": LLAMA, "dtype": "bfloat16", "bound": "150"}
    )
    assert form.is_valid(), form.errors
    assert form.item() == tokens(weight=2.0, max_tpot_ms=150.0)
