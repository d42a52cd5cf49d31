"""The self-contained job spec a runner receives: everything it needs, nothing of the platform.

The layout is the runners' spec schema (runners/schema/spec.schema.json)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from apps.registry.models import PEAK_FIELDS, PEAK_MEASURED_DTYPE, HardwareTarget, ModelArtifact
from apps.runs.models import Job, JobSuite
from apps.runs.services.programs import program_runner_bars

SPEC_SCHEMA_VERSION = "1.0"


def expected_fingerprint(target) -> dict[str, Any]:
    """What the runner's own fingerprint must show for this target (empty strings are not checked)."""
    return {
        "backend": target.backend,
        "torch_version": target.torch_version,
        "driver_version": target.driver_version,
        "runtime_version": target.runtime_version,
        "plugin_versions": target.plugin_versions,
        "device_count": target.device_count,
        "device_identity": target.device_identity,
    }


def model_entry(artifact: ModelArtifact) -> dict[str, Any]:
    return {
        "name": artifact.name,
        "version": artifact.version,
        "task": artifact.task,
        "architecture": artifact.architecture,
        "config": artifact.config,
        "weights_path": artifact.weights.path,
        # For runner hosts without the platform's storage: fetched with a signed request (runners/artifacts.py).
        "weights_url": reverse("runner-artifact", kwargs={"sha256": artifact.weights_sha256}),
        "sha256": artifact.weights_sha256,
    }


def runner_bar_options(job: Job) -> dict[str, Any]:
    """The program level's bars the runner applies while timing (the clock cross-check bounds in
    ``timing``, the TEST04 bound in ``integrity``): the runner takes them from here and decides none
    of its own; the platform's judge re-decides every one from the raw figures with the same values."""
    bars = program_runner_bars(program=job.campaign.program, level=job.campaign.level)
    return {
        "timing": {"clock_ratio_min": bars["clock_ratio_min"], "clock_ratio_max": bars["clock_ratio_max"]},
        "integrity": {"caching_threshold": bars["caching_threshold"]},
    }


COLLECTIVES_PLAN_KEYS = ("ops", "dtypes", "sizes_bytes", "warmup", "iterations")


def collectives_options(*, target: HardwareTarget, suite_plan: dict[str, Any]) -> dict[str, Any]:
    """The collectives suite runs on every device the target declares (world_size = device_count, so
    a one-device target's document says not applicable) and records its declared interconnect; what
    it runs (ops, dtypes, sizes) is the level's plan, the runner's defaults where the plan is silent."""
    options: dict[str, Any] = {key: suite_plan[key] for key in COLLECTIVES_PLAN_KEYS if key in suite_plan}
    options["world_size"] = target.device_count
    options["interconnect"] = target.interconnect or None
    return options


def job_spec_build(*, job: Job, suite_plan: dict[str, Any], time_limit_s: int) -> dict[str, Any]:
    target = job.campaign.target
    chip = target.chip
    spec: dict[str, Any] = {
        "schema_version": SPEC_SCHEMA_VERSION,
        "job_id": str(job.pk),
        "suite": job.suite,
        "device": target.backend,
        "challenge": job.challenge,
        "target": {
            "slug": target.slug,
            "backend": target.backend,
            "expected_fingerprint": expected_fingerprint(target),
        },
        "declared": {
            "peak_tflops": {key: value for key, value in chip.declared_peaks().items() if key in PEAK_FIELDS},
            "memory_bandwidth_gbs": chip.memory_bandwidth_gbs,
        },
        "limits": {"time_s": time_limit_s},
    }
    options: dict[str, Any] = {}
    if job.suite == JobSuite.CONFORMANCE:
        if suite_plan.get("dtypes"):
            spec["dtypes"] = list(suite_plan["dtypes"])
        if suite_plan.get("kernels"):
            spec["kernels"] = list(suite_plan["kernels"])
    elif job.suite == JobSuite.PERFORMANCE:
        dtypes = list(suite_plan.get("dtypes") or [])
        if suite_plan.get("declared_dtypes"):
            # AIA 1.2: every declared peak is measured (fp8 and int8 included), not only the level's dtypes.
            declared = spec["declared"]["peak_tflops"]
            dtypes += [d for k, d in PEAK_MEASURED_DTYPE.items() if k in declared and d not in dtypes]
        options["performance"] = {"dtypes": dtypes}
        options["quick"] = bool(suite_plan.get("quick", False))
        options.update(runner_bar_options(job))
    elif job.suite == JobSuite.MODEL:
        if job.model is not None:
            spec["models"] = [model_entry(job.model)]
        if suite_plan.get("dtypes"):
            options["model_dtypes"] = list(suite_plan["dtypes"])
        options["quick"] = bool(suite_plan.get("quick", False))
        if suite_plan.get("fp8_compute") is True:
            # The level asks an FP8 checkpoint's bfloat16 run to compute on the block-scaled FP8 path
            # (AIA 1.3 draft, issue 16); whether a run is one is the platform's decision from this plan
            # and the registered file (apps/runs/services/model_evidence.py), never the runner's.
            options["fp8_compute"] = True
        options.update(runner_bar_options(job))
    elif job.suite == JobSuite.SERVING:
        if job.model is not None:
            spec["models"] = [model_entry(job.model)]
        if isinstance(suite_plan.get("settings"), dict):
            options["serving"] = suite_plan["settings"]
        options["quick"] = bool(suite_plan.get("quick", False))
    elif job.suite == JobSuite.COLLECTIVES:
        options["collectives"] = collectives_options(target=target, suite_plan=suite_plan)
    if options:
        spec["options"] = options
    if spec["declared"]["memory_bandwidth_gbs"] is None:
        del spec["declared"]["memory_bandwidth_gbs"]
    return spec
