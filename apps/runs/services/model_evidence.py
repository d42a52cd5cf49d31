"""Which weights a model document says ran, against the artifacts the campaign registered.

The runner records, per model, the sha256 of the weights file over the very bytes it parsed
(the document's ``models`` section, runners/model_suite). Evidence about other weights, a file
changed on disk after upload, or weights that replaced the upload, is not evidence about the
registered model: such a document is refused.
"""

from __future__ import annotations

from typing import Any

from apps.registry.models import ModelArtifact
from apps.registry.weights import NotSafetensors, stored_fp8_weight_names
from apps.runs.models import Job
from certification.recorded_text import say


def model_weights_problems(*, document: dict, job: Job) -> list[str]:
    """Every way the document's model digests disagree with the job's registered artifact(s)."""
    if job.model_id is not None:
        expected = {job.model.weights_sha256}
    else:
        expected = set(job.campaign.model_artifacts.values_list("weights_sha256", flat=True))
    records = document.get("models")
    if not isinstance(records, list):
        return [say("weights.no_record")]
    problems: list[str] = []
    loaded = 0
    for record in records:
        if not isinstance(record, dict):
            problems.append(say("weights.not_object"))
            continue
        name, digest = record.get("name"), record.get("weights_sha256")
        if digest is None:
            if record.get("loaded"):
                problems.append(say("weights.no_digest", name=name))
            continue
        if digest not in expected:
            problems.append(say("weights.other", name=name, digest=digest))
        elif record.get("loaded"):
            loaded += 1
    scored = [
        c for c in document.get("cases") or [] if isinstance(c, dict) and c.get("status") in {"pass", "fail"}
    ]
    if (scored or document.get("measurements")) and not loaded:
        problems.append(say("weights.none_loaded"))
    return problems


# Which path an FP8 checkpoint's run computed on is the platform's decision, never the runner's word:
# the registered file decides whether the model is an FP8 checkpoint (its safetensors header: F8_E4M3
# weights with their F32 weight_scale_inv, apps/registry/weights.py), and the job's plan whether its
# bfloat16 run computes with them (options ``fp8_compute``, set from the level's model plan). The names
# of the paths are the runner's (runners/models/fp8.py DEQUANTIZED, BLOCK_SCALED, BLOCK_SCALED_DTYPE).
DEQUANTIZED_PATH = "dequantized"
FP8_PATH = "block_scaled_fp8"
FP8_PATH_DTYPE = "bfloat16"


def planned_fp8_compute(job: Job) -> bool:
    """Whether the job's plan (the spec the platform built and sent) asks for FP8 computation."""
    options = (job.spec or {}).get("options") if isinstance(job.spec, dict) else None
    return isinstance(options, dict) and options.get("fp8_compute") is True


def artifact_fp8_weights(artifact: ModelArtifact) -> int | None:
    """How many FP8 weights the registered artifact's file holds (0: none), from its header; None when
    the stored file cannot be read as the safetensors file registered."""
    try:
        return len(stored_fp8_weight_names(artifact))
    except (NotSafetensors, OSError, ValueError):
        return None


def expected_fp8_path(*, job: Job, artifact: ModelArtifact) -> tuple[str | None, int]:
    """(the path the run of ``artifact`` in ``job`` computes an FP8 checkpoint on, or None for a file
    with no FP8 weights; how many FP8 weights the file holds). Raises ValueError for an unreadable file."""
    count = artifact_fp8_weights(artifact)
    if count is None:
        raise ValueError(artifact.weights_sha256)
    if not count:
        return None, 0
    return (FP8_PATH if planned_fp8_compute(job) else DEQUANTIZED_PATH), count


def fp8_path_dtype(job: Job) -> str | None:
    """The dtype whose accuracy in ``job`` is an FP8-path run (judged with the level's FP8 bar), or None:
    its model is an FP8 checkpoint and its plan asked for FP8 computation. Decided from the artifact and
    the plan alone; ingestion has refused any document that claims otherwise (``fp8_path_problems``)."""
    if job.model is None or not planned_fp8_compute(job):
        return None
    try:
        path, _count = expected_fp8_path(job=job, artifact=job.model)
    except ValueError:
        return None
    return FP8_PATH_DTYPE if path == FP8_PATH else None


def fp8_path_problems(*, document: dict[str, Any], job: Job) -> list[str]:
    """Every way the document's account of an FP8 checkpoint (``models[].fp8``) departs from what the
    registered file and the job's plan imply: an FP8 record for a file without FP8 weights, none for
    one with them, another path than the plan's, another count of FP8 weights than the header's."""
    if job.model is not None:
        artifacts = {job.model.weights_sha256: job.model}
    else:
        artifacts = {a.weights_sha256: a for a in job.campaign.model_artifacts.all()}
    problems: list[str] = []
    for record in document.get("models") or []:
        if not isinstance(record, dict) or not record.get("loaded"):
            continue
        artifact = artifacts.get(str(record.get("weights_sha256")))
        if artifact is None:
            continue  # model_weights_problems names it
        name = record.get("name")
        try:
            expected, count = expected_fp8_path(job=job, artifact=artifact)
        except ValueError:
            problems.append(say("fp8.unreadable", name=name))
            continue
        fp8 = record.get("fp8")
        claimed = fp8.get("path") if isinstance(fp8, dict) else None
        if expected is None and fp8 is not None:
            problems.append(say("fp8.not_fp8", name=name, claimed=claimed))
        elif expected is not None and claimed != expected:
            problems.append(say("fp8.path", name=name, claimed=claimed, expected=expected))
        elif expected is not None and isinstance(fp8, dict) and fp8.get("fp8_weights") != count:
            problems.append(say("fp8.count", name=name, claimed=fp8.get("fp8_weights"), count=count))
    return problems
