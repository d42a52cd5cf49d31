"""An FP8 bar, so that FP8 computation can be required in a level (issue 16, AIA 1.3 draft).

The platform, not the runner, decides that a model run is an FP8-path run: from the registered file (its
safetensors header, read as data: F8_E4M3 weights with their F32 weight_scale_inv) and the job's plan
(options ``fp8_compute``, from the level's model plan). Such a run's bfloat16 accuracy is judged by the
level's FP8 bars (``fp8_accuracy``: greedy-token agreement and mean logit cosine); a plain bfloat16 run
by the bfloat16 bar. A document whose FP8 record claims another path than the file and plan imply is
refused at ingestion (``fp8_path_problems``; tests/runs/test_fp8_path_ingestion.py runs it end to end).
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict

import pytest

from apps.certificates import judge
from apps.certificates.criteria import criterion_judge
from apps.certificates.models import CriterionOutcome
from apps.registry.models import Architecture, ModelArtifact, ModelTask
from apps.registry.weights import fp8_weight_names, stored_fp8_weight_names
from apps.runs.models import Job, JobSuite, Measurement
from apps.runs.services.model_evidence import fp8_path_dtype, fp8_path_problems
from apps.runs.services.programs import PROGRAMS_DIR, program_definition_check, program_load
from runners.models.deepseek import DeepseekV3Config
from runners.models.seeded import seeded_weights_bytes
from tests.certificates.evidence import campaign_with_evidence
from tests.factories import ModelArtifactFactory, OrganizationFactory

DEFINITION = json.loads((PROGRAMS_DIR / "aia-1.3.json").read_text())
ADVANCED = next(level for level in DEFINITION["levels"] if level["code"] == "advanced")
FP8_BARS = ADVANCED["thresholds"]["fp8_accuracy"]["value"]
BF16_BAR = ADVANCED["thresholds"]["accuracy"]["value"]["bfloat16"]["greedy_token_agreement"]
CONFIG = asdict(DeepseekV3Config.small_fp8())
pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def fp8_bytes() -> bytes:
    """The FP8 test model's file (runners/model_suite deepseek_tiny_fp8_model's weights)."""
    return seeded_weights_bytes("deepseek-v3", CONFIG, seed=0, fp8=True, outliers=True)


def _deepseek(owner, content: bytes) -> ModelArtifact:
    return ModelArtifactFactory(
        owner=owner,
        architecture=Architecture.DEEPSEEK_V3,
        task=ModelTask.LLM_DECODE,
        config=CONFIG,
        content=content,
    )


def _campaign(content: bytes | None, *, plan_fp8: bool, bf16: float, cosine: float | None):
    """An AIA 1.3 Advanced campaign whose one model job ran ``content`` (None: a plain file) under a
    plan with or without ``fp8_compute``, its bfloat16 agreement ``bf16`` and mean logit cosine."""
    vendor = OrganizationFactory()
    program, _ = program_load(definition=DEFINITION)
    campaign = campaign_with_evidence(
        vendor=vendor,
        program=program,
        level="advanced",
        accuracy=[0.99999],
        accuracy_metric="greedy_token_agreement",
    )
    job = Job.objects.get(campaign=campaign, suite=JobSuite.MODEL)
    plain = seeded_weights_bytes("deepseek-v3", CONFIG, seed=0)
    job.model = _deepseek(vendor, content if content is not None else plain)
    job.spec = {**job.spec, "options": {"fp8_compute": True} if plan_fp8 else {}}
    job.save(update_fields=["model", "spec"])
    rows = Measurement.objects.filter(document__job=job, kind="accuracy", dtype="bfloat16")
    params = {
        "params": {"model": job.model.name, **({"logit_cosine_mean": cosine} if cosine is not None else {})}
    }
    rows.update(value=bf16, params=params)
    return campaign, job


def _criterion(kind_or_id: str) -> dict:
    return next(c for c in ADVANCED["criteria"] if kind_or_id in (c["id"], c["kind"]))


def _bf16_accuracy() -> dict:
    return next(
        c
        for c in ADVANCED["criteria"]
        if c["kind"] == "model_accuracy" and c["params"]["dtype"] == "bfloat16"
    )


def _fp8_criterion() -> dict:
    (criterion,) = [
        c for c in ADVANCED["criteria"] if c["kind"] == "model_architectures" and c["params"].get("fp8")
    ]
    return criterion


def test_the_header_says_which_weights_are_fp8_read_as_data(fp8_bytes):
    """F8_E4M3 weights with their F32 scale_inv, from the header alone; a plain file has none, and an
    F8_E4M3 tensor without its scale is no FP8 weight."""
    owner = OrganizationFactory()
    fp8 = _deepseek(owner, fp8_bytes)
    plain = _deepseek(owner, seeded_weights_bytes("deepseek-v3", CONFIG, seed=0))
    names = stored_fp8_weight_names(fp8)
    assert len(names) > 20 and "model.layers.0.mlp.down_proj.weight" in names
    assert stored_fp8_weight_names(plain) == []
    header = {"w": {"dtype": "F8_E4M3", "shape": [2, 2]}, "v": {"dtype": "F8_E4M3", "shape": [2, 2]}}
    header["w_scale_inv"] = {"dtype": "F32", "shape": [1, 1]}
    header["v_scale_inv"] = {"dtype": "BF16", "shape": [1, 1]}
    assert fp8_weight_names(header) == ["w"]


def test_the_platform_decides_the_fp8_path_from_the_file_and_the_plan(fp8_bytes):
    _, fp8_planned = _campaign(fp8_bytes, plan_fp8=True, bf16=0.8, cosine=0.99)
    _, fp8_unplanned = _campaign(fp8_bytes, plan_fp8=False, bf16=0.8, cosine=0.99)
    _, plain_planned = _campaign(None, plan_fp8=True, bf16=0.8, cosine=0.99)
    assert fp8_path_dtype(fp8_planned) == "bfloat16"
    assert fp8_path_dtype(fp8_unplanned) is None
    assert fp8_path_dtype(plain_planned) is None


def _record(job, **fp8):
    return {
        "models": [
            {
                "name": job.model.name,
                "weights_sha256": job.model.weights_sha256,
                "loaded": True,
                **({"fp8": fp8} if fp8 else {}),
            }
        ]
    }


def test_a_runner_claiming_another_path_than_the_file_and_plan_imply_is_refused(fp8_bytes):
    _, planned = _campaign(fp8_bytes, plan_fp8=True, bf16=0.8, cosine=0.99)
    _, unplanned = _campaign(fp8_bytes, plan_fp8=False, bf16=0.8, cosine=0.99)
    _, plain = _campaign(None, plan_fp8=True, bf16=0.8, cosine=0.99)
    count = len(stored_fp8_weight_names(planned.model))
    assert (
        fp8_path_problems(document=_record(planned, path="block_scaled_fp8", fp8_weights=count), job=planned)
        == []
    )
    assert (
        fp8_path_problems(document=_record(unplanned, path="dequantized", fp8_weights=count), job=unplanned)
        == []
    )
    assert fp8_path_problems(document=_record(plain), job=plain) == []
    # The plan asked for the FP8 path; the runner says it dequantized (or the reverse), or says nothing.
    [problem] = fp8_path_problems(
        document=_record(planned, path="dequantized", fp8_weights=count), job=planned
    )
    assert "records the FP8 path dequantized" in problem and "imply block_scaled_fp8" in problem
    [problem] = fp8_path_problems(
        document=_record(unplanned, path="block_scaled_fp8", fp8_weights=count), job=unplanned
    )
    assert "imply dequantized" in problem
    [problem] = fp8_path_problems(document=_record(planned), job=planned)
    assert "records the FP8 path None" in problem
    # An FP8 record for a file that holds no FP8 weights; a count that is not the header's.
    [problem] = fp8_path_problems(document=_record(plain, path="block_scaled_fp8", fp8_weights=3), job=plain)
    assert "a file that holds no FP8 weights" in problem
    [problem] = fp8_path_problems(
        document=_record(planned, path="block_scaled_fp8", fp8_weights=1), job=planned
    )
    assert f"the registered file holds {count}" in problem


def test_an_fp8_path_run_is_judged_by_the_fp8_bar_and_a_plain_bfloat16_run_by_the_bfloat16_bar(fp8_bytes):
    between = (FP8_BARS["greedy_token_agreement"] + BF16_BAR) / 2
    good_cosine = (FP8_BARS["logit_cosine_mean"] + 1) / 2
    fp8_run, _ = _campaign(fp8_bytes, plan_fp8=True, bf16=between, cosine=good_cosine)
    judgement = criterion_judge(campaign=fp8_run, criterion=_bf16_accuracy())
    assert judgement.outcome == CriterionOutcome.PASS, judgement.explanation
    assert judgement.evidence["models"][0]["path"] == judge.FP8_ACCURACY
    assert judgement.threshold == FP8_BARS["greedy_token_agreement"]
    # The same figures from a plain bfloat16 run (the plan did not ask, or the file is not FP8): the
    # bfloat16 bar, which they miss.
    for content, plan in ((fp8_bytes, False), (None, True)):
        plain_run, _ = _campaign(content, plan_fp8=plan, bf16=between, cosine=good_cosine)
        judgement = criterion_judge(campaign=plain_run, criterion=_bf16_accuracy())
        assert judgement.outcome == CriterionOutcome.FAIL, judgement.explanation
        assert judgement.threshold == BF16_BAR
    # Agreement above the FP8 bar but the mean logit cosine below its bar (or not reported): fails.
    for cosine in (FP8_BARS["logit_cosine_mean"] - 0.01, None):
        low, _ = _campaign(fp8_bytes, plan_fp8=True, bf16=between, cosine=cosine)
        judgement = criterion_judge(campaign=low, criterion=_bf16_accuracy())
        assert judgement.outcome == CriterionOutcome.FAIL
        assert "on the block-scaled FP8 path" in judgement.explanation
    below, _ = _campaign(
        fp8_bytes, plan_fp8=True, bf16=FP8_BARS["greedy_token_agreement"] - 0.01, cosine=good_cosine
    )
    assert criterion_judge(campaign=below, criterion=_bf16_accuracy()).outcome == CriterionOutcome.FAIL


def test_advanced_requires_an_fp8_path_run_at_the_fp8_bar(fp8_bytes):
    criterion = _fp8_criterion()
    assert criterion["blocker"] is True
    assert criterion["params"] == {"architectures": ["deepseek-v3"], "dtypes": ["bfloat16"], "fp8": True}
    good = (FP8_BARS["greedy_token_agreement"] + 0.01, (FP8_BARS["logit_cosine_mean"] + 1) / 2)
    passing, _ = _campaign(fp8_bytes, plan_fp8=True, bf16=good[0], cosine=good[1])
    judgement = criterion_judge(campaign=passing, criterion=criterion)
    assert judgement.outcome == CriterionOutcome.PASS, judgement.explanation
    # A plain bfloat16 run, however accurate, is no FP8-path run.
    plain, _ = _campaign(None, plan_fp8=True, bf16=1.0, cosine=1.0)
    judgement = criterion_judge(campaign=plain, criterion=criterion)
    assert judgement.outcome == CriterionOutcome.FAIL and "not an FP8-path run" in judgement.explanation
    low, _ = _campaign(fp8_bytes, plan_fp8=True, bf16=good[0], cosine=FP8_BARS["logit_cosine_mean"] - 0.01)
    judgement = criterion_judge(campaign=low, criterion=criterion)
    assert (
        judgement.outcome == CriterionOutcome.FAIL
        and "do not both reach the level's FP8 bars" in judgement.explanation
    )


def test_the_draft_asks_advanced_for_fp8_compute_with_a_sourced_fp8_bar_and_no_other_level_does():
    program_definition_check(DEFINITION)
    assert ADVANCED["suites"]["model"]["fp8_compute"] is True
    entry = ADVANCED["thresholds"]["fp8_accuracy"]
    assert set(entry["value"]) == {"greedy_token_agreement", "logit_cosine_mean"}
    assert entry["value"]["greedy_token_agreement"] < BF16_BAR
    assert "bench/deepseek_fp8_accuracy.py" in entry["source"]
    for level in DEFINITION["levels"]:
        if level["code"] != "advanced":
            assert "fp8_compute" not in level["suites"].get("model", {})
            assert "fp8_accuracy" not in level["thresholds"]
    broken = copy.deepcopy(DEFINITION)
    level = next(lvl for lvl in broken["levels"] if lvl["code"] == "advanced")
    del level["thresholds"]["fp8_accuracy"]
    with pytest.raises(Exception, match="asks for fp8_compute"):
        program_definition_check(broken)


def test_the_plan_puts_fp8_compute_in_the_model_job_spec_only_where_the_level_asks(fp8_bytes):
    from apps.runs.specs import job_spec_build

    _, job = _campaign(fp8_bytes, plan_fp8=True, bf16=0.8, cosine=0.99)
    spec = job_spec_build(job=job, suite_plan=ADVANCED["suites"]["model"], time_limit_s=600)
    assert spec["options"]["fp8_compute"] is True
    standard = next(level for level in DEFINITION["levels"] if level["code"] == "standard")
    spec = job_spec_build(job=job, suite_plan=standard["suites"]["model"], time_limit_s=600)
    assert "fp8_compute" not in spec["options"]
    published = json.loads((PROGRAMS_DIR / "aia-1.2.json").read_text())
    for level in published["levels"]:
        assert "fp8_compute" not in (level["suites"].get("model") or {})
