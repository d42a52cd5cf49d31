"""Requirement and weight validation: a table of valid and invalid inputs, contradictions refused."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.procurement.requirements import Vocabulary, requirements_clean
from apps.procurement.scoring import scoring_clean

VOCABULARY = Vocabulary(
    programs={"AIA": {"baseline": 1, "standard": 2, "advanced": 3}},
    backends=frozenset({"cpu", "cuda", "npu"}),
    export_classes=("excluded", "3A090.a", "3A090.b", "not-3A090", "undetermined"),
)

VALID = [
    ("certificate_level", {"program": "aia", "level": "standard"}, {"program": "AIA", "level": "standard"}),
    ("conformance_dtype", {"dtype": "bfloat16"}, {"dtype": "bfloat16"}),
    (
        "model_performance",
        {"model": "resnet50", "dtype": "float16", "metric": "throughput", "bound": 1000},
        {"model": "resnet50", "dtype": "float16", "metric": "throughput", "bound": 1000.0},
    ),
    (
        "model_performance",
        {"model": "bert", "dtype": "float32", "metric": "latency", "bound": "5"},
        {"model": "bert", "dtype": "float32", "metric": "latency", "bound": 5.0},
    ),
    ("memory_gib", {"op": ">=", "value": 80}, {"op": ">=", "value": 80.0}),
    ("tdp_w", {"op": "<=", "value": 700}, {"op": "<=", "value": 700.0}),
    ("domestic_content_pct", {"op": ">=", "value": 50}, {"op": ">=", "value": 50.0}),
    (
        "origin_country",
        {"field": "fab", "countries": ["us", "DE"]},
        {"field": "fab", "countries": ["DE", "US"]},
    ),
    (
        "origin_country",
        {"field": "either", "countries": "TW, JP"},
        {"field": "either", "countries": ["JP", "TW"]},
    ),
    ("export_class", {"mode": "not_in", "classes": ["3A090.a"]}, {"mode": "not_in", "classes": ["3A090.a"]}),
    ("backend", {"backends": ["CUDA", "npu"]}, {"backends": ["cuda", "npu"]}),
]


@pytest.mark.parametrize(("kind", "params", "cleaned"), VALID)
def test_it_accepts_and_normalises(kind, params, cleaned):
    assert requirements_clean(rows=[{"kind": kind, "params": params}], vocabulary=VOCABULARY) == [
        {"kind": kind, "params": cleaned}
    ]


INVALID = [
    ([("certificate_level", {"program": "XYZ", "level": "baseline"})], "Unknown program 'XYZ'"),
    ([("certificate_level", {"program": "AIA", "level": "platinum"})], "Unknown level of AIA 'platinum'"),
    ([("conformance_dtype", {"dtype": "float64x"})], "Unknown dtype"),
    (
        [("model_performance", {"model": "m", "dtype": "float32", "metric": "speed", "bound": 1})],
        "Unknown metric",
    ),
    (
        [("model_performance", {"model": "m", "dtype": "float32", "metric": "latency", "bound": 0})],
        "impossible",
    ),
    ([("model_performance", {"model": "", "dtype": "float32", "metric": "latency", "bound": 3})], "'model'"),
    ([("tdp_w", {"op": "<=", "value": 0})], "TDP <= 0 W is impossible"),
    ([("tdp_w", {"op": "<=", "value": -5})], "impossible"),
    ([("memory_gib", {"op": ">=", "value": "lots"})], "must be a number"),
    ([("memory_gib", {"op": ">=", "value": float("nan")})], "finite"),
    ([("memory_gib", {"op": "==", "value": 5})], "Unknown comparison"),
    ([("domestic_content_pct", {"op": ">=", "value": 120})], "impossible"),
    (
        [("memory_gib", {"op": ">=", "value": 100}), ("memory_gib", {"op": "<=", "value": 50})],
        "Requirements 1 and 2 contradict: memory >= 100 GiB and memory <= 50 GiB",
    ),
    ([("tdp_w", {"op": "<=", "value": 300}), ("tdp_w", {"op": ">=", "value": 500})], "contradict"),
    ([("origin_country", {"field": "fab", "countries": ["XX"]})], "Not ISO 3166-1 alpha-2 country codes: XX"),
    ([("origin_country", {"field": "fab", "countries": ["USA"]})], "USA"),
    ([("origin_country", {"field": "fab", "countries": []})], "non-empty"),
    (
        [
            ("origin_country", {"field": "fab", "countries": ["US"]}),
            ("origin_country", {"field": "both", "countries": ["TW"]}),
        ],
        "no common fab country",
    ),
    ([("export_class", {"mode": "in", "classes": ["4A994"]})], "Unknown export-control classes: 4A994"),
    (
        [
            ("export_class", {"mode": "in", "classes": ["3A090.a"]}),
            ("export_class", {"mode": "not_in", "classes": ["3A090.a"]}),
        ],
        "exclude every export-control class",
    ),
    ([("backend", {"backends": ["quantum"]})], "Unknown backends: quantum"),
    ([("backend", {"backends": ["cuda"]}), ("backend", {"backends": ["npu"]})], "no common backend"),
    (
        [
            ("certificate_level", {"program": "AIA", "level": "baseline"}),
            ("certificate_level", {"program": "AIA", "level": "standard"}),
        ],
        None,
    ),
    ([("warp_drive", {})], "Unknown requirement kind"),
]


@pytest.mark.parametrize(("rows", "message"), INVALID)
def test_it_refuses_with_a_clear_message(rows, message):
    payload = [{"kind": kind, "params": params} for kind, params in rows]
    if message is None:  # a control: two levels of one program are consistent
        requirements_clean(rows=payload, vocabulary=VOCABULARY)
        return
    with pytest.raises(ValidationError) as caught:
        requirements_clean(rows=payload, vocabulary=VOCABULARY)
    text = " ".join(caught.value.message_dict["requirements"])
    assert message in text


def test_two_programs_cannot_be_met_by_one_certificate():
    vocabulary = Vocabulary(
        programs={"AIA": {"baseline": 1}, "XYZ": {"basic": 1}}, backends=frozenset(), export_classes=()
    )
    with pytest.raises(ValidationError, match="one certificate is issued under one program"):
        requirements_clean(
            rows=[
                {"kind": "certificate_level", "params": {"program": "AIA", "level": "baseline"}},
                {"kind": "certificate_level", "params": {"program": "XYZ", "level": "basic"}},
            ],
            vocabulary=vocabulary,
        )


def test_every_invalid_row_is_named_by_position():
    with pytest.raises(ValidationError) as caught:
        requirements_clean(
            rows=[
                {"kind": "conformance_dtype", "params": {"dtype": "float32"}},
                {"kind": "tdp_w", "params": {"op": "<=", "value": 0}},
                {"kind": "backend", "params": {"backends": ["nope"]}},
            ],
            vocabulary=VOCABULARY,
        )
    messages = caught.value.message_dict["requirements"]
    assert [m.split(" (")[0] for m in messages] == ["Requirement 2", "Requirement 3"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "at least one scoring weight"),
        ([{"metric": "tflops_per_watt", "weight": -1}], "cannot be negative"),
        (
            [{"metric": "tflops_per_watt", "weight": 0}, {"metric": "memory_gib", "weight": 0}],
            "All weights are zero",
        ),
        ([{"metric": "beauty", "weight": 1}], "unknown metric"),
        ([{"metric": "model_throughput", "weight": 1}], "needs the model"),
        ([{"metric": "model_throughput", "weight": 1, "model": "bert", "dtype": "fp64"}], "needs a dtype"),
        ([{"metric": "tflops_per_watt", "weight": "x"}], "must be a number"),
    ],
)
def test_weights_refused(rows, message):
    with pytest.raises(ValidationError) as caught:
        scoring_clean(rows=rows)
    assert message in " ".join(caught.value.message_dict["scoring"])


def test_weights_accepted():
    assert scoring_clean(
        rows=[
            {"metric": "tflops_per_watt", "weight": 2},
            {"metric": "model_throughput", "weight": "1", "model": "bert", "dtype": "float16"},
            {"metric": "memory_gib", "weight": 0},
        ]
    ) == [
        {"metric": "tflops_per_watt", "weight": 2.0},
        {"metric": "model_throughput", "weight": 1.0, "model": "bert", "dtype": "float16"},
        {"metric": "memory_gib", "weight": 0.0},
    ]
