"""Case dimensions are drawn from the job's challenge within the catalog's ranges (issue 13, item 3)."""

from __future__ import annotations

import json
import re

import pytest
import torch

from runners.backends import get_backend
from runners.catalog import Case, Derived, Span, all_kernels, get_kernel
from runners.catalog.linear_algebra import MatmulKernel
from runners.cli import main
from runners.conformance import planned_cases, recompute_case, run_case, run_conformance
from runners.document import validate_document
from runners.spec import build_spec

CHALLENGE = "0123456789abcdef" * 4
OTHER_CHALLENGE = "fedcba9876543210" * 4
# The shapes every job ran before issue 13 (the catalog printed them): matmul's (M, K, N).
OLD_MATMUL_SHAPES = {
    "square": (64, 64, 64),
    "llama_qproj_decode": (1, 4096, 4096),
    "llama_kvproj_decode": (1, 4096, 1024),
    "llama_kvproj_prefill_trimmed_n": (128, 4096, 256),
    "odd_sizes": (127, 129, 131),
    "long_reduction": (8, 16384, 8),
    "transposed_b": (48, 96, 80),
    "nan_inf": (32, 32, 32),
    "empty_m0": (0, 64, 32),
    "empty_k0": (16, 0, 16),
}


def _within(value: int, declared) -> bool:
    if isinstance(declared, int):
        return value == declared
    if isinstance(declared, Span):
        return value in declared.choices()
    return isinstance(declared, Derived)


def test_every_case_draws_int_dims_within_its_declared_ranges_and_the_same_draw_from_the_same_challenge():
    for kernel in all_kernels():
        for case in kernel.cases:
            drawn = case.draw(CHALLENGE, kernel.name)
            assert drawn.drawn and drawn.draw(OTHER_CHALLENGE, kernel.name) is drawn
            assert list(drawn.dims) == list(case.dims)
            for key, value in drawn.dims.items():
                assert isinstance(value, int) and value >= 0, (kernel.name, case.name, key)
                assert _within(value, case.dims[key]), (kernel.name, case.name, key, value)
            assert case.draw(CHALLENGE, kernel.name) == drawn  # deterministic
            assert (drawn.edge, drawn.options, drawn.dtypes) == (case.edge, case.options, case.dtypes)


# Number formats and model versions a case name may mention (sum_past_fp16_max, deepseek_v3_...,
# dsv3_...): not dimensions.
FORMAT_TOKENS = re.compile(r"(?:fp|bf|int|float|uint)\d+|e\dm\d|v\d+")


def test_a_case_name_states_no_number_the_draw_can_change():
    """A job's dims are drawn, so a name like "square_64" would lie about the case it runs: a number
    in a case name must be a dimension or option every draw keeps (empty_m0, 3x3, stride2)."""
    for kernel in all_kernels():
        for case in kernel.cases:
            fixed = {v for v in (*case.dims.values(), *case.options.values()) if type(v) is int}
            numbers = {int(n) for n in re.findall(r"\d+", FORMAT_TOKENS.sub("", case.name))}
            assert numbers <= fixed, (kernel.name, case.name, sorted(numbers - fixed))


def test_derived_dims_keep_the_structure_of_the_case():
    sdpa = get_kernel("sdpa").case("llama_short_prefill_gqa")
    decode = get_kernel("decode_attention").case("llama_long_context")
    for challenge in (CHALLENGE, OTHER_CHALLENGE, "ab" * 32, "cd" * 32):
        gqa = sdpa.draw(challenge, "sdpa")
        assert gqa["Hq"] == gqa["Hkv"] * gqa["group"] and gqa["Hq"] > gqa["Hkv"] and gqa["L"] == gqa["S"]
        ctx = decode.draw(challenge, "decode_attention")
        assert ctx["cache"] > ctx["length"] >= 1664
        odd = get_kernel("matmul").case("odd_sizes").draw(challenge, "matmul")
        assert all(odd[d] % 2 == 1 for d in "MKN")
        int8 = get_kernel("int8_matmul").case("long_reduction").draw(challenge, "int8_matmul")
        assert int8["M"] > 16 and int8["K"] % 8 == int8["N"] % 8 == 0 and int8["K"] >= 16384


def test_fresh_challenges_draw_other_shapes_than_the_old_fixed_catalog():
    matmul = get_kernel("matmul")
    challenges = [f"{i:064x}" for i in range(20)]
    for name, old in OLD_MATMUL_SHAPES.items():
        case = matmul.case(name)
        if all(isinstance(v, int) for v in case.dims.values()):
            continue
        shapes = {tuple(case.draw(c, "matmul")[d] for d in "MKN") for c in challenges}
        assert len(shapes) > 5, (name, shapes)  # many shapes, not one
        assert sum(shape == old for shape in shapes) <= 1


def test_the_catalog_prints_ranges_not_shapes(capsys):
    assert main(["catalog", "--json"]) == 0
    catalog = json.loads(capsys.readouterr().out)
    matmul = next(k for k in catalog if k["name"] == "matmul")
    decode = next(c for c in matmul["cases"] if c["name"] == "llama_qproj_decode")
    assert "dims" not in decode
    assert decode["ranges"]["K"] == {"min": 3072, "max": 5120, "multiple_of": 128}
    assert decode["ranges"]["N"] == {"derived": "K"} and decode["ranges"]["M"] == 1
    for kernel in catalog:
        for case in kernel["cases"]:
            drawn_somewhere = [v for v in case["ranges"].values() if isinstance(v, dict)]
            assert drawn_somewhere or case["edge"] == "empty", (kernel["name"], case["name"])


@pytest.mark.slow
def test_the_document_records_the_drawn_dims_and_the_platform_draws_the_same():
    spec = build_spec(
        suite="conformance", device="cpu", challenge=CHALLENGE, kernels=["matmul"], dtypes=["float32"]
    )
    document = run_conformance(spec, get_backend("cpu"))
    validate_document(document)
    plan, _ = planned_cases(["matmul"], ["float32"], None, CHALLENGE)
    drawn = {case.name: dict(case.dims) for _kernel, _dtype, case in plan}
    assert {c["case"]: c["dims"] for c in document["cases"]} == drawn
    record = next(c for c in document["cases"] if c["case"] == "odd_sizes")
    assert record["shape"] == [record["dims"]["M"], record["dims"]["N"]]
    again = recompute_case("matmul", "float32", "odd_sizes", CHALLENGE)
    assert again["dims"] == record["dims"] and again["input_digest"] == record["input_digest"]


class MatmulRightOnlyAtCatalogShapes(MatmulKernel):
    """The hostile chip of issue 13, item 3: exact at the shapes the catalog used to print, and
    elsewhere a cheaper GEMM whose products are rounded to bfloat16 (0.4% off)."""

    name = "cheat_matmul_catalog_shapes"

    def run(self, inputs):
        a, b = inputs["a"], inputs["b"]
        if (a.shape[0], a.shape[1], b.shape[1]) in set(OLD_MATMUL_SHAPES.values()):
            return torch.matmul(a, b)
        return torch.matmul(a.to(torch.bfloat16), b.to(torch.bfloat16)).to(a.dtype)


def test_a_gemm_right_only_at_the_old_catalog_shapes_passes_them_and_fails_the_drawn_ones(registered):
    cheat = registered(MatmulRightOnlyAtCatalogShapes())
    cases = ["square", "odd_sizes", "transposed_b", "nan_inf"]
    backend = get_backend("cpu")
    for name in cases:  # at the shapes a job used to run, the cheat was indistinguishable
        m, k, n = OLD_MATMUL_SHAPES[name]
        fixed = Case(name, {"M": m, "K": k, "N": n}, edge=cheat.case(name).edge)
        assert run_case(cheat, fixed, "float32", CHALLENGE, backend)["status"] == "pass"
    for challenge in (CHALLENGE, OTHER_CHALLENGE):
        spec = build_spec(
            suite="conformance",
            device="cpu",
            challenge=challenge,
            kernels=[cheat.name],
            dtypes=["float32"],
            cases=cases,
        )
        document = run_conformance(spec, backend)
        assert {c["case"]: c["status"] for c in document["cases"]} == dict.fromkeys(cases, "fail")


@pytest.mark.parametrize("low, high, multiple", [(5, 4, 1), (3, 3, 2)])
def test_an_empty_span_is_refused(low, high, multiple):
    with pytest.raises(ValueError):
        Span(low, high, multiple)


def test_a_derived_dim_accepts_only_arithmetic_on_other_dims():
    assert Derived("Hkv * group + min(2, K) - 1").evaluate({"Hkv": 4, "group": 2, "K": 7}) == 9
    for expression in ("__import__('os')", "K ** 2", "K.real", "unknown + 1"):
        with pytest.raises(ValueError):
            Derived(expression).evaluate({"K": 3})
