"""The kernel catalog: coverage, named edge cases, tolerances with sources, seeded inputs, cost model."""

from __future__ import annotations

import torch

from runners.catalog import EDGE_CASES, all_kernels, case_generator, get_kernel

CHALLENGE = "ef" * 16


def test_the_catalog_covers_the_issue_list():
    names = {kernel.name for kernel in all_kernels()}
    assert len(names) >= 20
    assert {
        "matmul",
        "linear",
        "bmm",
        "int8_matmul",
        "conv2d_nchw",
        "conv2d_channels_last",
        "conv2d_depthwise",
        "sdpa",
        "decode_attention",
        "layer_norm",
        "rms_norm",
        "softmax",
        "log_softmax",
        "gelu_erf",
        "gelu_tanh",
        "silu",
        "swiglu",
        "rope",
        "embedding",
        "topk",
        "argmax",
        "cumsum",
        "sum",
        "add",
        "mul",
        "quantize_per_channel",
        "dequantize_per_channel",
    } <= names


def test_every_named_edge_case_is_exercised():
    edges = {case.edge for kernel in all_kernels() for case in kernel.cases}
    assert set(EDGE_CASES) <= edges


def test_real_model_shapes_are_within_the_ranges_jobs_draw_from():
    drawn = [
        case.draw(challenge, kernel.name).dims
        for kernel in all_kernels()
        for case in kernel.cases
        for challenge in (CHALLENGE, "12" * 16, "34" * 16)
    ]
    assert any(d.get("Hq", 0) >= 16 and d.get("Hq", 0) == 4 * d.get("Hkv", -1) for d in drawn)
    assert any(3072 <= d.get("K", 0) <= 5120 and d.get("M") == 1 for d in drawn)
    assert any(1664 <= d.get("S", 0) <= 2176 for d in drawn) and any(d.get("K", 0) >= 16384 for d in drawn)


def test_every_tolerance_names_its_source_and_scales_with_reduction_length():
    for kernel in all_kernels():
        for dtype in kernel.dtypes:
            for case in kernel.drawn_cases(dtype, CHALLENGE):
                assert kernel.tolerance(case, dtype).source
    matmul = get_kernel("matmul")
    short, long = matmul.case("square", CHALLENGE), matmul.case("long_reduction", CHALLENGE)
    a_short = torch.ones(short["M"], short["K"], dtype=torch.float64)
    a_long = torch.ones(long["M"], long["K"], dtype=torch.float64)
    bound_short = matmul.error_bound({"a": a_short, "b": a_short.t().clone()}, short, "float32")
    bound_long = matmul.error_bound({"a": a_long, "b": a_long.t().clone()}, long, "float32")
    assert float(bound_long.max()) > float(bound_short.max()) * (long["K"] / short["K"]) ** 2 / 2


def test_inputs_depend_on_the_challenge_only():
    kernel = get_kernel("linear")
    case = kernel.case("small", CHALLENGE)

    def draw(challenge: str) -> torch.Tensor:
        return kernel.make_inputs(
            case, "bfloat16", case_generator(challenge, kernel.name, case.name, "bfloat16"), "cpu"
        )["x"]

    assert torch.equal(draw(CHALLENGE), draw(CHALLENGE))
    assert not torch.equal(draw(CHALLENGE), draw("12" * 16))


def test_make_inputs_and_run_work_outside_the_suite_with_the_cost_model():
    kernel = get_kernel("matmul")
    case = kernel.case("square", CHALLENGE)
    n = case["M"]
    inputs = kernel.make_inputs(
        case, "float32", case_generator(CHALLENGE, "matmul", case.name, "float32"), "cpu"
    )
    assert kernel.run(inputs).shape == (n, n)
    assert kernel.flops(case) == 2 * n**3
    assert kernel.bytes(case, "bfloat16") == 2 * 3 * n * n


def test_non_contiguous_cases_really_hand_over_views():
    for name, case_name, key in [
        ("matmul", "transposed_b", "b"),
        ("linear", "strided_input", "x"),
        ("softmax", "strided_rows", "x"),
        ("rope", "view_of_fused_qkv", "x"),
    ]:
        kernel = get_kernel(name)
        case = kernel.case(case_name, CHALLENGE)
        inputs = kernel.make_inputs(
            case, "float32", case_generator(CHALLENGE, name, case_name, "float32"), "cpu"
        )
        assert not inputs[key].is_contiguous(), name
