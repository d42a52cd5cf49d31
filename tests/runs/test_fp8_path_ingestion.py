"""The platform decides an FP8 checkpoint's path (issue 16): a real runner on this CPU runs the FP8 test
model's bfloat16 accuracy on the block-scaled FP8 path when the job's plan asks for it, and ingestion
accepts the document; one re-signed to claim the other path than the registered file and the plan
imply is refused, as is an FP8 record for a file without FP8 weights."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from apps.registry.models import Architecture, ModelTask
from apps.runs.models import JobSuite, ResultDocument
from apps.runs.services.campaigns import campaign_submit
from apps.runs.services.ingestion import result_ingest
from apps.runs.services.programs import program_load
from runners.models.deepseek import DeepseekV3Config
from runners.models.seeded import seeded_weights_bytes
from tests.factories import ModelArtifactFactory
from tests.runs.test_ingestion import assert_rejected, produce, resign

CONFIG = asdict(DeepseekV3Config.small_fp8())
PROGRAM = {
    "code": "TSTF",
    "version": "1.0",
    "title": "Test program with an FP8 model",
    "validity_days": 30,
    "surveillance_days": 7,
    "levels": [
        {
            "code": "models",
            "rank": 1,
            "title": "Models",
            "suites": {"model": {"dtypes": ["bfloat16"], "quick": True, "min_models": 1}},
            "criteria": [
                {
                    "id": "M1",
                    "title": "Model accuracy",
                    "kind": "model_accuracy",
                    "blocker": True,
                    "params": {"dtype": "bfloat16", "min_cosine": 0.99, "models": "all"},
                },
            ],
        }
    ],
}


def _job(world, *, fp8: bool, plan_fp8: bool):
    program, _ = program_load(definition=PROGRAM)
    artifact = ModelArtifactFactory(
        owner=world.vendor,
        architecture=Architecture.DEEPSEEK_V3,
        task=ModelTask.LLM_DECODE,
        config=CONFIG,
        content=seeded_weights_bytes("deepseek-v3", CONFIG, seed=0, fp8=fp8, outliers=fp8),
    )
    campaign = campaign_submit(
        vendor=world.vendor,
        target=world.target,
        program=program,
        level="models",
        model_artifacts=[artifact],
        submitted_by=world.engineer,
    )
    job = campaign.jobs.get(suite=JobSuite.MODEL)
    # What the plan of a level with ``fp8_compute`` puts in the spec (apps/runs/specs.py).
    job.spec["options"] = {
        **job.spec.get("options", {}),
        "fp8_compute": plan_fp8,
        "model_performance_dtypes": [],
    }
    job.save(update_fields=["spec"])
    return job


@pytest.mark.slow
def test_the_fp8_path_the_plan_asks_for_is_accepted_and_another_claim_refused(cpu_world):
    job = _job(cpu_world, fp8=True, plan_fp8=True)
    envelope = produce(job, cpu_world.identity)
    [record] = json.loads(envelope["document_json"])["models"]
    assert record["fp8"]["path"] == "block_scaled_fp8"
    # Re-signed to say the weights were dequantized (the bfloat16 bar would then apply): refused.
    lying = resign(envelope, cpu_world.identity, lambda d: d["models"][0]["fp8"].update(path="dequantized"))
    assert not result_ingest(envelope=lying).accepted
    assert_rejected(job, "the registered file and the job's plan imply block_scaled_fp8")
    honest_job = _job(cpu_world, fp8=True, plan_fp8=True)
    outcome = result_ingest(envelope=produce(honest_job, cpu_world.identity))
    assert outcome.accepted, outcome.reason
    assert ResultDocument.objects.filter(job=honest_job).exists()


@pytest.mark.slow
def test_a_plain_file_or_an_unasked_path_claimed_as_fp8_is_refused(cpu_world):
    plain = _job(cpu_world, fp8=False, plan_fp8=True)
    envelope = produce(plain, cpu_world.identity)
    fp8 = {
        "format": "float8_e4m3fn",
        "weight_block_size": [128, 128],
        "fp8_weights": 3,
        "path": "block_scaled_fp8",
        "path_note": "claimed",
    }
    lying = resign(envelope, cpu_world.identity, lambda d: d["models"][0].update(fp8=fp8))
    assert not result_ingest(envelope=lying).accepted
    assert_rejected(plain, "for a file that holds no FP8 weights")
