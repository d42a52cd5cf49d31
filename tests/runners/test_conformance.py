"""The conformance suite: broken kernels are caught, errors are classified, seeds bind the data."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from runners.backends import get_backend
from runners.catalog import case_generator, get_kernel
from runners.catalog.elementwise import BroadcastKernel, UnaryKernel, _gelu_erf_reference
from runners.catalog.linear_algebra import LinearKernel, MatmulKernel
from runners.conformance import recompute_case, run_conformance
from runners.document import validate_document
from runners.spec import build_spec
from tests.cpu_findings import explained, unexplained

CHALLENGE = "0123456789abcdef" * 4
OTHER_CHALLENGE = "fedcba9876543210" * 4
# Small cases keep these tests at seconds; the slow test runs everything.
SMALL_GEMM = [
    "square",
    "small",
    "odd_sizes",
    "long_reduction",
    "transposed_b",
    "nan_inf",
    "empty_m0",
]


def run(
    kernels: list[str],
    dtypes: list[str] | None = None,
    challenge: str = CHALLENGE,
    cases: list[str] | None = None,
) -> dict:
    spec = build_spec(
        suite="conformance", device="cpu", challenge=challenge, kernels=kernels, dtypes=dtypes, cases=cases
    )
    document = run_conformance(spec, get_backend("cpu"))
    validate_document(document)
    return document


def cases_of(document: dict, kernel: str) -> dict[tuple[str, str], dict]:
    return {(c["dtype"], c["case"]): c for c in document["cases"] if c["kernel"] == kernel}


class LinearDroppingBias(LinearKernel):
    name = "broken_linear_no_bias"

    def run(self, inputs):
        return F.linear(inputs["x"], inputs["weight"])


class MatmulWithFloat16Accumulator(MatmulKernel):
    """Rounds the running sum to float16 after every 16 terms, like a narrow accumulator."""

    name = "broken_matmul_fp16_accumulator"

    def run(self, inputs):
        a, b = inputs["a"], inputs["b"]
        acc = torch.zeros(a.shape[0], b.shape[1], dtype=torch.float16)
        for start in range(0, a.shape[1], 16):
            partial = a[:, start : start + 16].float() @ b[start : start + 16].float()
            acc = (acc.float() + partial).half()
        return acc.to(a.dtype)


class MatmulReturningStaleOutputs(MatmulKernel):
    """Computes each case once (the n-th call of a suite) and replays that output at the n-th call
    of every later suite, whatever the inputs: a replay of another challenge's results."""

    name = "broken_matmul_stale"

    def __init__(self) -> None:
        self.cache: dict[int, torch.Tensor] = {}
        self.calls = 0

    def run(self, inputs):
        per_suite = sum(case.name in SMALL_GEMM for case in self.cases)  # the matmul cases run
        key, self.calls = self.calls % per_suite, self.calls + 1
        if key not in self.cache:
            self.cache[key] = super().run(inputs)
        return self.cache[key]


class MatmulThatRaises(MatmulKernel):
    name = "broken_matmul_raises"

    def run(self, inputs):
        raise RuntimeError("device lost")


class MatmulWrongShape(MatmulKernel):
    name = "broken_matmul_wrong_shape"

    def run(self, inputs):
        return super().run(inputs)[:, :-1]


class MatmulWrongDtype(MatmulKernel):
    name = "broken_matmul_wrong_dtype"

    def run(self, inputs):
        return super().run(inputs).float().double()


class MatmulNotImplemented(MatmulKernel):
    name = "broken_matmul_not_implemented"

    def run(self, inputs):
        raise NotImplementedError('"addmm" not implemented for this dtype')


def test_the_honest_kernels_pass_the_cases_the_broken_ones_fail():
    document = run(["linear", "matmul"], ["float16", "float32"], cases=SMALL_GEMM)
    assert document["summary"]["failed"] == document["summary"]["errors"] == 0


def test_it_catches_a_linear_that_drops_the_bias(registered):
    registered(LinearDroppingBias())
    document = run(["broken_linear_no_bias"], ["float32"], cases=SMALL_GEMM)
    statuses = {c["case"]: c["status"] for c in document["cases"]}
    non_empty = [name for name, status in statuses.items() if not name.startswith("empty")]
    assert all(statuses[name] == "fail" for name in non_empty)


def test_it_catches_a_long_reduction_accumulated_in_float16(registered):
    registered(MatmulWithFloat16Accumulator())
    only = ["long_reduction"]
    honest = cases_of(run(["matmul"], ["float16"], cases=only), "matmul")[("float16", "long_reduction")]
    document = run(["broken_matmul_fp16_accumulator"], ["float16"], cases=only)
    broken = cases_of(document, "broken_matmul_fp16_accumulator")[("float16", "long_reduction")]
    assert honest["status"] == "pass"
    assert broken["status"] == "fail"
    assert broken["stats"]["max_abs"] > 10 * honest["stats"]["max_abs"]


def test_it_catches_stale_outputs_replayed_from_another_challenge(registered):
    stale = registered(MatmulReturningStaleOutputs())
    first = run(["broken_matmul_stale"], ["float32"], challenge=OTHER_CHALLENGE, cases=SMALL_GEMM)
    assert first["summary"]["failed"] == 0  # first sight of each shape computes honestly
    second = run(["broken_matmul_stale"], ["float32"], challenge=CHALLENGE, cases=SMALL_GEMM)
    # Another challenge draws other shapes (a replay has the wrong shape) and other values.
    caught = {c["case"] for c in second["cases"] if c["status"] in ("fail", "error")}
    assert {"square", "long_reduction", "odd_sizes", "transposed_b", "nan_inf"} <= caught
    assert stale.cache


def test_a_kernel_that_raises_is_a_product_failure_and_the_suite_goes_on(registered):
    registered(MatmulThatRaises())
    document = run(["broken_matmul_raises", "add"], ["float32"], cases=["square", "odd_sizes"])
    raised = cases_of(document, "broken_matmul_raises")
    assert all(c["status"] == "error" and c["error_class"] == "product_failure" for c in raised.values())
    assert "device lost" in next(iter(raised.values()))["message"]
    assert all(c["status"] == "pass" for c in cases_of(document, "add").values())


@pytest.mark.parametrize(
    "kernel, message", [(MatmulWrongShape, "wrong shape"), (MatmulWrongDtype, "wrong dtype")]
)
def test_wrong_shape_or_dtype_is_a_product_failure(registered, kernel, message):
    registered(kernel())
    document = run([kernel.name], ["float32"], cases=["square"])
    square = cases_of(document, kernel.name)[("float32", "square")]
    assert square["status"] == "error"
    assert square["error_class"] == "product_failure"
    assert message in square["message"]


def test_not_implemented_on_a_declared_kernel_is_a_failure_not_unsupported(registered):
    # The cpu backend declares bfloat16 and every catalog kernel: raising afterwards is a failure.
    registered(MatmulNotImplemented())
    document = run([MatmulNotImplemented.name], ["bfloat16"], cases=["square"])
    assert {c["status"] for c in document["cases"]} == {"error"}
    assert {c["code"] for c in document["cases"]} == {"product_failure"}


def test_unknown_kernel_and_dtype_are_recorded_as_bad_spec_errors():
    document = run(["add", "warp_field"], ["float32", "float128"], cases=["odd_sizes"])
    errors = [c for c in document["cases"] if c["error_class"] == "bad_spec"]
    assert {(c["kernel"], c["dtype"]) for c in errors} == {("warp_field", "*"), ("*", "float128")}
    assert cases_of(document, "add")  # the known kernel still ran


def test_an_unavailable_backend_gives_infrastructure_errors_not_a_crash():
    spec = build_spec(
        suite="conformance", device="cuda", challenge=CHALLENGE, kernels=["add"], dtypes=["float32"]
    )
    backend = get_backend("cuda")
    if backend.is_available():
        pytest.skip("this host has a GPU")
    document = run_conformance(spec, backend)
    validate_document(document)
    assert {c["error_class"] for c in document["cases"]} == {"infrastructure"}


@pytest.mark.slow
def test_same_challenge_gives_identical_digests_and_another_gives_different_data():
    kernels, small = (
        ["matmul", "softmax", "topk"],
        [*SMALL_GEMM, "strided_rows"],
    )
    first, again = run(kernels, ["bfloat16"], cases=small), run(kernels, ["bfloat16"], cases=small)
    other = run(kernels, ["bfloat16"], challenge=OTHER_CHALLENGE, cases=small)
    digests = [[(c["input_digest"], c["output_digest"]) for c in d["cases"]] for d in (first, again, other)]
    assert digests[0] == digests[1]
    non_empty = [i for i, c in enumerate(first["cases"]) if c["edge"] != "empty"]
    assert len(non_empty) >= 8
    assert all(digests[0][i][0] != digests[2][i][0] for i in non_empty)
    assert all(digests[0][i][1] != digests[2][i][1] for i in non_empty)


def test_recompute_case_matches_the_runner_record():
    document = run(["layer_norm"], ["float16"], cases=["odd_sizes"])
    record = cases_of(document, "layer_norm")[("float16", "odd_sizes")]
    recomputed = recompute_case("layer_norm", "float16", "odd_sizes", CHALLENGE)
    for key in ("input_digest", "reference_digest", "output_digest", "status"):
        assert recomputed[key] == record[key]


@pytest.mark.slow
def test_every_case_records_its_statistics_and_tolerance_source():
    document = run(["rms_norm", "int8_matmul"], cases=["odd_sizes", "long_row", "square", "odd_rows"])
    for case in document["cases"]:
        assert case["status"] == "pass"
        assert case["stats"]["tolerance_source"]
        assert {"max_abs", "max_rel", "mismatch_fraction", "atol", "rtol"} <= set(case["stats"])


def test_nan_inf_edge_cases_pass_only_when_nan_lands_where_the_reference_has_it():
    document = run(["softmax", "sum", "amax"], ["float32"], cases=["nan_inf"])
    nan_cases = [c for c in document["cases"] if c["case"] == "nan_inf"]
    assert len(nan_cases) == 3 and all(c["status"] == "pass" for c in nan_cases)


@pytest.mark.slow
def test_the_whole_suite_passes_on_this_cpu():
    # Its duration is a performance target, measured by bench/conformance_time.py, not asserted here.
    document = run_conformance(
        build_spec(suite="conformance", device="cpu", challenge=CHALLENGE), get_backend("cpu")
    )
    validate_document(document)
    summary = document["summary"]
    assert summary["total"] >= 300 and summary["kernels"] >= 20
    assert {"float32", "bfloat16", "float16", "int8"} <= set(summary["dtypes"])
    # Every case passes but this machine's real findings (tests/cpu_findings.py: probed, each failing
    # with a message that states it); a CPU without them must pass everything.
    assert not unexplained(document["cases"]), unexplained(document["cases"])[:5]
    assert summary["passed"] + sum(explained(c) is not None for c in document["cases"]) == summary["total"]


def test_the_tolerance_ratio_is_the_worst_elements_share_of_its_own_allowance():
    import torch

    from runners.conformance import compare

    # The worst absolute error (0.1 on a reference of 2.1) and the worst relative error (0.5 on a
    # reference of 0.02) sit on different elements; only the per-element ratio is exact.
    stats = compare(torch.tensor([0.03, 2.2]), torch.tensor([0.02, 2.1]), atol=0.01, rtol=0.05)
    assert stats["mismatches"] == 0
    assert stats["tolerance_ratio"] == pytest.approx(
        max(0.01 / (0.01 + 0.05 * 0.02), 0.1 / (0.01 + 0.05 * 2.1)), rel=1e-5
    )
    assert stats["tolerance_ratio"] <= 1.0
    failing = compare(torch.tensor([0.0, 3.0]), torch.tensor([0.0, 2.0]), atol=0.01, rtol=0.05)
    assert failing["mismatches"] == 1 and failing["tolerance_ratio"] > 1.0


class AddWithOneUlpNoise(BroadcastKernel):
    """Honest add, then one ulp of rounding noise on 0.1 % of the elements (at least one)."""

    def __init__(self) -> None:
        super().__init__("add_one_ulp_noise", "add with 1-ulp noise", torch.add)

    def run(self, inputs):
        out = super().run(inputs).clone()
        flat = out.reshape(-1)
        count = max(1, flat.numel() // 1000)
        flat[:count] = torch.nextafter(flat[:count], torch.full_like(flat[:count], float("inf")))
        return out


class AddFlushingSubnormals(BroadcastKernel):
    """Flushes subnormal inputs and outputs to zero (FTZ/DAZ), as some accelerators do by default."""

    def __init__(self) -> None:
        super().__init__("add_ftz", "add with flush to zero", torch.add)

    def run(self, inputs):
        tiny = torch.finfo(inputs["x"].dtype).smallest_normal
        out = super().run(inputs)
        return torch.where(out.abs() < tiny, torch.zeros_like(out), out)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_subnormal_sums_are_bit_exact_one_ulp_of_noise_and_a_flush_to_zero_fail(registered, dtype):
    # A sum of two subnormals is exact in gradual underflow (IEEE 754-2019): one answer, bit-exact.
    registered(AddWithOneUlpNoise())
    registered(AddFlushingSubnormals())
    noisy = run(["add", "add_one_ulp_noise", "add_ftz"], [dtype], cases=["subnormals"])
    by_kernel = {c["kernel"]: c for c in noisy["cases"]}
    assert by_kernel["add"]["status"] == "pass", by_kernel["add"]["stats"]
    assert by_kernel["add_one_ulp_noise"]["status"] == "fail"
    assert by_kernel["add_ftz"]["status"] == "fail"
    assert "bit-exact" in by_kernel["add"]["stats"]["tolerance_source"]


def test_swiglu_allows_silu_underflow_before_the_product_and_draws_finite_operands():
    kernel = get_kernel("swiglu")
    case = kernel.case("large_magnitudes", CHALLENGE)
    # -20.75 * sigmoid(-20.75) = -2e-8 rounds to -0 in float16; times up = -33632 the exact
    # product is 6.8e-4: the honest two-rounding result (0) must be within the allowance.
    gate, up = torch.tensor([-20.75], dtype=torch.float64), torch.tensor([-33632.0], dtype=torch.float64)
    allowance = kernel.error_bound({"gate": gate, "up": up}, case, "float16")
    assert float(allowance) >= 6.8e-4
    assert "Higham" in kernel.tolerance(case, "float16").source
    for challenge in (CHALLENGE, OTHER_CHALLENGE):
        drawn = kernel.case("large_magnitudes", challenge)
        inputs = kernel.generate(drawn, "float16", case_generator(challenge, "swiglu", case.name, "float16"))
        assert all(bool(t.isfinite().all()) for t in inputs.values())


@pytest.mark.parametrize("challenge", [f"{i:064x}" for i in range(8)])
def test_the_edge_cases_that_failed_honest_chips_pass_under_fresh_challenges(challenge):
    document = run(
        ["swiglu", "add", "mul"],
        ["float16", "bfloat16", "float32"],
        challenge=challenge,
        cases=["large_magnitudes", "subnormals"],
    )
    assert document["summary"]["failed"] == 0, [c for c in document["cases"] if c["status"] != "pass"]


class GeluTwoUlpsOff(UnaryKernel):
    """gelu_erf, then two subnormal ulps added to one element: beyond any rounding an honest device does."""

    def __init__(self) -> None:
        super().__init__(
            "gelu_two_ulps",
            "gelu two ulps off",
            torch.nn.functional.gelu,
            _gelu_erf_reference,
            flops_per_element=8,
        )

    def run(self, inputs):
        out = super().run(inputs).clone()
        info = torch.finfo(out.dtype)
        out.view(-1)[0] += 2 * info.smallest_normal * info.eps
        return out


class GeluFlushingSubnormals(UnaryKernel):
    def __init__(self) -> None:
        super().__init__(
            "gelu_ftz",
            "gelu with flush to zero",
            torch.nn.functional.gelu,
            _gelu_erf_reference,
            flops_per_element=8,
        )

    def run(self, inputs):
        out = super().run(inputs)
        return torch.where(out.abs() < torch.finfo(out.dtype).smallest_normal, torch.zeros_like(out), out)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_gelu_on_subnormals_allows_the_honest_double_rounding_ulp_and_nothing_more(registered, dtype):
    # gelu(k u) = k u / 2 (1 + O(u)): the rounded reference and a device rounding the float32 tie can
    # differ by one ulp (float16 on x86: every run). The allowance is 1.5 ulp, with its source.
    registered(GeluTwoUlpsOff())
    registered(GeluFlushingSubnormals())
    document = run(["gelu_erf", "gelu_two_ulps", "gelu_ftz"], [dtype], cases=["subnormals"])
    by_kernel = {c["kernel"]: c for c in document["cases"]}
    honest = by_kernel["gelu_erf"]["stats"]
    finding = explained(by_kernel["gelu_erf"])
    if finding is None:
        assert by_kernel["gelu_erf"]["status"] == "pass" and honest["tolerance_ratio"] <= 0.7, by_kernel
    else:  # a CPU whose bfloat16 gelu flushes subnormals (tests/cpu_findings.py): the suite says so
        assert finding.key == "gelu_bf16_ftz" and dtype == "bfloat16", by_kernel["gelu_erf"]["message"]
    assert "double rounding" in honest["tolerance_source"]
    assert by_kernel["gelu_two_ulps"]["status"] == "fail"
    assert by_kernel["gelu_ftz"]["status"] == "fail"


def _compare_by_definition(output, expected, atol, rtol, bound=None):
    """compare's statistics element by element in plain Python floats, from its docstring."""
    import math

    mismatches, max_abs, max_rel, worst = 0, 0.0, 0.0, 0.0
    outs, refs = output.double().reshape(-1).tolist(), expected.double().reshape(-1).tolist()
    extra = [0.0] * len(outs) if bound is None else bound.double().expand(expected.shape).reshape(-1).tolist()
    for out, ref, allowance in zip(outs, refs, extra, strict=True):
        allowance = 0.0 if math.isnan(allowance) else allowance
        if not math.isfinite(out - ref):  # a NaN or an infinity on either side: placement only
            agrees = (math.isnan(out) and math.isnan(ref)) or out == ref
            mismatches += not agrees
            worst = worst if agrees else math.inf
            continue
        diff, budget = abs(out - ref), abs(ref) * rtol + atol + allowance
        mismatches += not diff <= budget
        max_abs = max(max_abs, diff)
        relative = diff / abs(ref) if ref else math.inf
        max_rel = max(max_rel, relative) if math.isfinite(relative) else max_rel  # where it is a number
        worst = max(worst, diff / budget if budget > 0 else (math.inf if diff > 0 else 0.0))
    return mismatches, max_abs, max_rel, worst


@pytest.mark.parametrize("seed", range(6))
def test_compare_gives_its_definitions_statistics_on_nan_infinities_zeros_and_subnormals(seed):
    import math
    import random

    import torch

    from runners.conformance import COMPARE_SLICE, compare

    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(12):
        count = rng.choice([1, 7, 300, COMPARE_SLICE + 5])
        dtype = rng.choice([torch.float32, torch.bfloat16, torch.float16, torch.float64])
        ref = torch.randn(count, generator=generator, dtype=torch.float64) * 10 ** rng.randint(-3, 3)
        out = ref + torch.randn(count, generator=generator, dtype=torch.float64) * 10 ** rng.randint(-9, 0)
        for tensor in (ref, out):
            for _ in range(rng.randint(0, 4)):
                tensor[rng.randrange(count)] = rng.choice([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-310])
        out[: count // 3] = ref[: count // 3]  # exact elements beside the inexact ones
        bound = None
        if rng.random() < 0.5:
            bound = torch.rand(count, generator=generator, dtype=torch.float64) * 10 ** rng.randint(-8, -2)
            bound[rng.randrange(count)] = math.nan  # a NaN allowance counts as none
        atol, rtol = rng.choice([0.0, 1e-6, 1e-3]), rng.choice([0.0, 1e-5, 1e-2])
        output, expected = out.to(dtype), ref.to(dtype)
        stats = compare(output, expected, atol, rtol, bound)
        mismatches, max_abs, max_rel, worst = _compare_by_definition(output, expected, atol, rtol, bound)
        assert stats["mismatches"] == mismatches
        assert stats["mismatch_fraction"] == mismatches / count
        assert stats["max_abs"] == pytest.approx(max_abs, rel=1e-12)
        assert stats["max_rel"] == pytest.approx(max_rel, rel=1e-12)
        assert stats["tolerance_ratio"] == (None if math.isinf(worst) else pytest.approx(worst, rel=1e-12))
