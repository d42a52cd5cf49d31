"""Issue 13, AIA 1.2 without loopholes: integrity checks, impossible figures and semantic cases are
blockers at every level, every model dtype a level names has its own accuracy bar, and the claims
criterion measures every declared peak. Judged from the runner's real documents."""

from __future__ import annotations

import copy
import functools
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from apps.certificates.models import CriterionOutcome
from apps.certificates.services import review_approve
from apps.runs.services.programs import PROGRAMS_DIR, program_definition_check, program_load
from runners import catalog
from runners.backends import get_backend
from runners.commitment import OutputCommitment, OutputStore
from runners.document import summarize
from runners.spec import attempt_tag
from runners.suites import run_suite
from tests.cpu_findings import explained, unexplained
from tests.real_documents import CHALLENGE, campaign_from_runner, gemm_items, peak_fp32, runner_documents

# Cheap kernels beside attention: 212 honest cases in float32 and bfloat16, so that two failing
# attention cases leave the pass rate above Baseline's 99% (the loophole this issue closes).
OTHER_KERNELS = [
    "matmul",
    "bmm",
    "conv2d_nchw",
    "conv2d_channels_last",
    "layer_norm",
    "add",
    "mul",
    "sum",
    "mean",
    "amax",
    "argmax",
    "topk",
    "cumsum",
    "gelu_erf",
    "silu",
]
DTYPES = ["float32", "bfloat16"]


def definition() -> dict:
    return json.loads(Path(PROGRAMS_DIR, "aia-1.2.json").read_text())


@pytest.fixture
def aia12(db):
    program, _ = program_load(definition=definition())
    return program


def conformance_run(kernels: list[str], root: Path) -> dict:
    """A real conformance run whose judged outputs are committed and kept in `root`'s store (as on a
    runner host, for the platform's reveal)."""
    spec = {
        "schema_version": "1.0",
        "job_id": "0",
        "device": "cpu",
        "challenge": CHALLENGE,
        "suite": "conformance",
        "dtypes": DTYPES,
        "kernels": kernels,
        "limits": {"time_s": 900},
    }
    commitment = OutputCommitment(OutputStore(root, attempt_tag(CHALLENGE)))
    return run_suite(
        spec, backend=get_backend("cpu"), progress=lambda fraction, label: None, commitment=commitment
    )


@functools.lru_cache(maxsize=1)
def other_kernels_document() -> tuple[dict, Path]:
    root = Path(tempfile.mkdtemp(prefix="loophole-outputs-"))
    return conformance_run(OTHER_KERNELS, root), root


def _sdpa_class():
    return type(catalog.get_kernel("sdpa"))


class CausalOnlyWhenShort(_sdpa_class()):
    """Attention that ignores the causal mask past 1,024 tokens (a tiling bug of long prefills)."""

    def run(self, inputs):
        if inputs["causal"] and inputs["q"].shape[-2] > 1024:
            inputs = {**inputs, "causal": False}
        return super().run(inputs)


class NanForFullyMaskedRows(_sdpa_class()):
    """Attention that returns NaN for rows whose keys are all masked (softmax over only -inf)."""

    def run(self, inputs):
        out = super().run(inputs)
        if inputs["mask"] is None:
            return out
        dead = ~inputs["mask"].to(out.device).any(dim=-1)
        return out.masked_fill(dead[:, None], float("nan"))


@functools.lru_cache(maxsize=3)
def attention_document(planted: type | None) -> dict:
    """A real conformance document of sdpa beside the other kernels, the device's sdpa `planted`."""
    honest = catalog.get_kernel("sdpa")
    if planted is not None:
        catalog.register(planted(), replace=True)
    others, others_root = other_kernels_document()
    # Each variant's own output store: the other kernels' outputs and this variant's sdpa outputs.
    # (and the session's real runs' outputs, which the campaign's other jobs commit to).
    root = Path(tempfile.mkdtemp(prefix="loophole-outputs-"))
    shutil.copytree(runner_documents().output_root, root, dirs_exist_ok=True)
    shutil.copytree(others_root, root, dirs_exist_ok=True)
    try:
        sdpa = conformance_run(["sdpa"], root)
    finally:
        catalog.register(honest, replace=True)
    document = copy.deepcopy(others)
    document["spec"]["kernels"] = [*OTHER_KERNELS, "sdpa"]
    document["cases"] += sdpa["cases"]
    document["summary"] = summarize(document["cases"])
    # The document commits to every output it judged (runners/commitment.py), sdpa's included.
    outputs = document["commitment"]["outputs"] + sdpa["commitment"]["outputs"]
    document["commitment"]["outputs"] = sorted(outputs, key=lambda entry: entry["id"])
    return document, root


def with_attention(planted: type | None):
    """Options of `campaign_from_runner`: its conformance job runs (and plans) sdpa with the others."""
    document, root = attention_document(planted)

    def plan(suite, spec):
        if suite == "conformance":
            spec.update(kernels=document["spec"]["kernels"], dtypes=DTYPES)
            spec.pop("cases", None)  # every case of these kernels, as this document ran them

    def edit(suite, document_of_job):
        if suite == "conformance":
            job_id = document_of_job["spec"]["job_id"]
            document_of_job.clear()
            document_of_job.update(copy.deepcopy(document))
            document_of_job["spec"]["job_id"] = job_id
        if suite == "performance":  # a busy test host may time a tiny GEMM as unstable
            for item in gemm_items(document_of_job):
                item["unstable"] = False

    return {"plan": plan, "edit": edit, "reveal_root": root}


def outcome(campaign, criterion_id):
    return campaign.criterion_results.get(criterion_id=criterion_id)


# Semantic cases ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("planted", "failing_case"),
    [
        (CausalOnlyWhenShort, "llama_long_prefill_gqa_few_heads [causal]"),
        (NanForFullyMaskedRows, "fully_masked_rows [masked_rows, mask]"),
    ],
)
@pytest.mark.slow
def test_attention_that_breaks_its_mask_fails_baseline_and_standard_whatever_the_pass_rate(
    cast, aia12, planted, failing_case
):
    document, _ = attention_document(planted)
    # This CPU's own real findings (tests/cpu_findings.py, probed) fail too where it has them.
    findings = [c for c in document["cases"] if explained(c)]
    failed = unexplained(document["cases"])
    assert {(c["kernel"], c["case"]) for c in failed} == {("sdpa", failing_case.split(" ")[0])}
    assert len(failed) == 2  # float32 and bfloat16, of 227 cases

    baseline = campaign_from_runner(
        vendor=cast.vendor, program=aia12, submitted_by=cast.owner, **with_attention(planted)
    )
    if not findings:  # 225 of 227: above 99% (a CPU with findings is below it anyway)
        assert outcome(baseline, "B1").outcome == CriterionOutcome.PASS
    semantic = outcome(baseline, "B11")
    assert semantic.blocker and semantic.outcome == CriterionOutcome.FAIL
    assert f"sdpa/float32/{failing_case}: fail" in semantic.explanation
    assert "attention" in semantic.evidence["families"]
    assert "B11" in baseline.state_reason and "failed blocker" in baseline.state_reason
    with pytest.raises(ValidationError, match="B11"):
        review_approve(campaign=baseline, reviewer=cast.reviewer, reason="Looks fine.")

    standard = campaign_from_runner(
        vendor=cast.vendor,
        program=aia12,
        level="standard",
        submitted_by=cast.owner,
        **with_attention(planted),
    )
    semantic = outcome(standard, "S12")
    assert semantic.blocker and semantic.outcome == CriterionOutcome.FAIL
    assert f"sdpa/bfloat16/{failing_case}: fail" in semantic.explanation


@pytest.mark.slow
def test_the_same_cases_of_an_honest_attention_pass_every_family(cast, aia12):
    campaign = campaign_from_runner(
        vendor=cast.vendor, program=aia12, submitted_by=cast.owner, **with_attention(None)
    )
    semantic = outcome(campaign, "B11")
    document, _ = attention_document(None)
    findings = [c for c in document["cases"] if explained(c)]
    if findings:  # this CPU's real findings are semantic cases: B11 fails on them and on nothing else
        assert semantic.outcome == CriterionOutcome.FAIL, semantic.explanation
        named = {f"{c['kernel']}/{c['dtype']}/{c['case']}" for c in findings}
        failed = [line.split(" [")[0] for f in semantic.evidence["families"].values() for line in f["failed"]]
        assert failed and set(failed) <= named, (failed, named)
    else:
        assert semantic.outcome == CriterionOutcome.PASS, semantic.explanation
    families = semantic.evidence["families"]
    # Causal and masked attention, NaN/Inf propagation in GEMM, convolution, norms, elementwise and
    # reductions, fp16-overflow magnitudes in the norms and activations.
    assert {
        "attention",
        "linear_algebra",
        "convolution",
        "normalization",
        "elementwise",
        "reductions",
    } <= set(families)
    # Per dtype 3 causal prefills, a padding mask and fully masked rows; large_logits (fp16_overflow) in float32.
    assert families["attention"]["cases"] == 2 * 5 + 1


# Integrity and impossible figures at Baseline ---------------------------------------------------


def test_a_skip_compute_cheat_fails_baseline_on_integrity_and_physics(cast, aia12):
    """The issue's cheat: TEST01 and TEST04 failed and the best GEMM at 6,695% of the declared peak
    reached "every blocker passes" at Baseline; under AIA 1.2 each of them is a failed blocker."""

    def skip_compute(suite, document):
        if suite == "performance":
            for item in gemm_items(document):
                item["unstable"] = False
            gemm_items(document)[-1]["value"] = peak_fp32() * 66.95
            consistency = document["integrity"]["output_consistency"]
            consistency["mismatches"] = consistency["items"][0]["mismatches"] = 3
            consistency["verdict"] = consistency["items"][0]["verdict"] = "fail"
            caching = document["integrity"]["caching"]
            for item in caching["items"]:
                item.update(repeated_median_s=item["fresh_median_s"] / 5, repeated_ci_s=[0, 1e-12])
            caching["verdict"] = "fail"

    campaign = campaign_from_runner(
        vendor=cast.vendor, program=aia12, submitted_by=cast.owner, edit=skip_compute
    )
    for criterion_id, text in (("B4", "6695%"), ("B8", "mismatch"), ("B9", "speed-up")):
        result = outcome(campaign, criterion_id)
        assert result.blocker and result.outcome == CriterionOutcome.FAIL, criterion_id
        assert text in result.explanation, result.explanation
    assert "awaiting review" not in campaign.state_reason


def test_an_honest_baseline_campaign_passes_every_new_blocker(cast, aia12):
    campaign = campaign_from_runner(
        vendor=cast.vendor, program=aia12, submitted_by=cast.owner, **with_attention(None)
    )
    results = {r.criterion_id: r for r in campaign.criterion_results.all()}
    document, _ = attention_document(None)
    findings = {f"{c['kernel']}/{c['dtype']}/{c['case']}" for c in document["cases"] if explained(c)}
    for criterion_id in ("B4", "B7", "B8", "B9", "B5", "B10", "B11", "B12"):
        assert results[criterion_id].blocker, criterion_id
        if criterion_id == "B11" and findings:
            # This CPU's real findings (tests/cpu_findings.py, probed) are semantic cases: B11 fails
            # on them and on nothing else.
            families = results["B11"].evidence["families"].values()
            failed = {line.split(" [")[0] for family in families for line in family["failed"]}
            assert results["B11"].outcome == CriterionOutcome.FAIL and failed and failed <= findings, failed
            continue
        # The timing cross-check (B5) has nothing to cross-check where the host clock timed every figure.
        allowed = (
            {CriterionOutcome.PASS, CriterionOutcome.NOT_APPLICABLE}
            if criterion_id == "B5"
            else {CriterionOutcome.PASS}
        )
        assert results[criterion_id].outcome in allowed, (
            criterion_id,
            results[criterion_id].explanation,
        )
    assert "host clock" in results["B5"].explanation  # the CPU has no device events to cross-check


# The program's structure ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda level: level["criteria"].pop(
                next(i for i, c in enumerate(level["criteria"]) if c["params"].get("check") == "caching")
            ),
            "integrity checks \\['caching'\\] must be blocker",
        ),
        (
            lambda level: next(c for c in level["criteria"] if c["kind"] == "claims").update(blocker=False),
            "blocker claims criterion",
        ),
        (
            lambda level: next(c for c in level["criteria"] if c["kind"] == "semantic_cases").update(
                blocker=False
            ),
            "semantic cases of",
        ),
        (
            lambda level: level["criteria"].pop(
                next(i for i, c in enumerate(level["criteria"]) if c["params"].get("dtype") == "bfloat16")
            ),
            "model dtypes \\['bfloat16'\\]",
        ),
    ],
)
def test_a_level_that_reopens_a_loophole_is_refused(change, message):
    changed = copy.deepcopy(definition())
    change(changed["levels"][0])
    with pytest.raises(ValidationError, match=message):
        program_definition_check(changed)


def test_every_level_judges_each_model_dtype_with_its_own_sourced_bar():
    for level in definition()["levels"]:
        bars = level["thresholds"]["accuracy"]["value"]
        judged = {c["params"]["dtype"] for c in level["criteria"] if c["kind"] == "model_accuracy"}
        assert judged == set(level["suites"]["model"]["dtypes"])
        assert all(bars[d]["greedy_token_agreement"] > 0.77 for d in judged)  # FP8 inside bf16: 0.77
        assert "FP8" in level["thresholds"]["accuracy"]["source"]
        assert level["suites"]["performance"]["declared_dtypes"] is True


def test_the_runner_plan_measures_every_declared_peak(cast, aia12):
    from apps.runs.services.campaigns import campaign_submit
    from tests.factories import ModelArtifactFactory
    from tests.real_documents import cpu_target

    target = cpu_target(vendor=cast.vendor)
    type(target.chip).objects.filter(pk=target.chip_id).update(
        peak_fp8_tflops=2.0, peak_int8_tops=2.0, peak_tf32_tflops=1.0
    )
    target.chip.refresh_from_db()
    campaign = campaign_submit(
        vendor=cast.vendor,
        target=target,
        program=aia12,
        level="baseline",
        model_artifacts=[ModelArtifactFactory(owner=cast.vendor)],
        submitted_by=cast.owner,
    )
    spec = campaign.jobs.get(suite="performance").spec
    # The level's float32 and bfloat16, then every other declared peak the suite can measure (tf32: none).
    assert spec["options"]["performance"]["dtypes"] == ["float32", "bfloat16", "float8_e4m3fn", "int8"]


# Model accuracy per dtype -------------------------------------------------------------------------


def decoder_bfloat16_agreement(tmp_path, monkeypatch, *, fp8_inside: bool) -> float:
    """The seeded Llama-style decoder run by the real model suite in bfloat16; with `fp8_inside`, the
    device rounds every linear layer's operands to FP8 (e4m3) inside the bfloat16 run."""
    import torch
    import torch.nn.functional as F

    from runners.model_suite import run_model_suite
    from runners.models.llama import LlamaConfig
    from runners.models.seeded import seeded_model_entry

    if fp8_inside:
        linear = F.linear

        def fp8_linear(x, weight, bias=None):
            if x.dtype == torch.bfloat16:
                x = x.to(torch.float8_e4m3fn).to(torch.bfloat16)
                weight = weight.to(torch.float8_e4m3fn).to(torch.bfloat16)
            return linear(x, weight, bias)

        monkeypatch.setattr(F, "linear", fp8_linear)
    tmp_path.mkdir(parents=True, exist_ok=True)
    entry = seeded_model_entry(
        "llama-small-seeded", "llama-decoder", dict(LlamaConfig.small().__dict__), seed=0, directory=tmp_path
    )
    spec = {"models": [entry], "options": {"model_dtypes": ["bfloat16"], "model_performance_dtypes": []}}
    out = run_model_suite(spec, get_backend("cpu"), seed=CHALLENGE)
    (row,) = [m for m in out["measurements"] if m["kind"] == "accuracy"]
    assert row["unit"] == "greedy_token_agreement"
    return row["value"]


@pytest.mark.slow
def test_fp8_inside_a_bfloat16_run_fails_the_bfloat16_bar_an_honest_run_passes(tmp_path, monkeypatch):
    from apps.certificates import judge

    for level in ("baseline", "standard", "advanced"):
        thresholds = judge.level_thresholds(program=definition(), level=level)
        bar = judge.accuracy_bar(thresholds=thresholds, dtype="bfloat16", metric="greedy_token_agreement")
        assert bar == 0.9 and thresholds.sources["accuracy"]
    honest = decoder_bfloat16_agreement(tmp_path / "honest", monkeypatch, fp8_inside=False)
    cheat = decoder_bfloat16_agreement(tmp_path / "fp8", monkeypatch, fp8_inside=True)
    assert judge.accuracy_passes(value=honest, bar=bar), honest
    assert not judge.accuracy_passes(value=cheat, bar=bar), cheat  # about 0.77-0.80 (issue 13: 0.77)


# Timing cross-check and server verdicts, judged by the platform ---------------------------------


@pytest.mark.slow
def test_the_judge_refuses_events_that_under_report_time_and_accepts_honest_ones():
    from apps.certificates import judge
    from runners.backends.host_events import HostEventsCpu
    from runners.performance import run_performance
    from runners.spec import build_spec
    from tests.runners.test_performance import GEMM_ONLY, UnderReportingCpu

    thresholds = judge.level_thresholds(program=definition(), level="baseline")
    assert thresholds.clock_ratio_bounds == {"min": 0.5, "max": 1.05}
    spec = build_spec(
        suite="performance", device="cpu", options=GEMM_ONLY, declared={"peak_tflops": {"fp32": 1.0}}
    )
    cheat = run_performance(spec, UnderReportingCpu())["measurements"]
    honest = run_performance(spec, HostEventsCpu())["measurements"]
    verdicts = [judge.clock_verdict(item=m, thresholds=thresholds) for m in cheat]
    assert cheat and all(v is not None and not v.passed and "outside 0.5-1.05" in v.detail for v in verdicts)
    for m in honest:
        verdict = judge.clock_verdict(item=m, thresholds=thresholds)
        assert verdict is None or verdict.passed
    # An events-timed figure whose host-clock bracket was stripped from the document fails as well.
    stripped = {**honest[0], "clock": None, "timing_method": "device_events"}
    assert "without the host-clock check" in judge.clock_verdict(item=stripped, thresholds=thresholds).detail


def test_a_server_verdict_that_disagrees_fails_and_a_clean_spot_check_passes():
    from apps.certificates import judge

    assert judge.server_verdict_problems({"sampled": ["a"], "failures": [], "notes": ["rounding"]}) == []
    assert judge.server_verdict_problems({"failures": ["matmul/float32/x: inputs differ"]}) == [
        "matmul/float32/x: inputs differ"
    ]
    assert judge.server_verdict_problems({"reveal": {"verdict": "fail", "disagreements": ["c1"]}}) == [
        "reveal: c1",
        "reveal: verdict fail",
    ]
