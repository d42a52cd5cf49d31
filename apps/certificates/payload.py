"""What a certificate says: the payload that is signed, built from the campaign and its evidence.

The payload is self-contained (a verifier needs nothing else): subject snapshot, program and
level, scope, headline figures, every criterion's verdict, notes, and the sha256 of every result
document the certificate rests on.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime

from django.db.models import Count

from apps.certificates.models import CriterionOutcome, CriterionResult, SigningKey
from apps.runs.models import Campaign, CaseResult, JobSuite, Measurement, ResultDocument

PAYLOAD_FORMAT = "accelerator-certificate/1"
FINGERPRINT_FIELDS = (
    "backend",
    "device_name",
    "device_count",
    "capability",
    "driver_version",
    "runtime_version",
    "torch_version",
    "plugin_versions",
    "host_cpu",
    "os",
    "python",
)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _finite(value):
    """JSON cannot carry NaN or infinities; the canonical form refuses them, so they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _subject(campaign: Campaign, documents: list[ResultDocument]) -> dict:
    target, chip, vendor = campaign.target, campaign.target.chip, campaign.vendor
    measured = next((d.fingerprint for d in documents if d.fingerprint), {})
    return {
        "vendor": {"name": vendor.name, "slug": vendor.slug, "country": vendor.country},
        "chip": {
            "sku": chip.sku,
            "name": chip.name,
            "architecture": chip.architecture,
            "process_node_nm": chip.process_node_nm,
            "memory_gib": chip.memory_gib,
            "memory_bandwidth_gbs": chip.memory_bandwidth_gbs,
            "tdp_w": chip.tdp_w,
            "declared_peak_tflops": chip.declared_peaks(),
            # Declarations buyers filter on, frozen at certification so a later registry edit
            # cannot change what a certificate-based tender evaluation reads.
            "die_area_mm2": chip.die_area_mm2,
            "interconnect_bandwidth_gbs": chip.interconnect_bandwidth_gbs,
            "data_center": chip.data_center,
            "fab_country": chip.fab_country,
            "assembly_country": chip.assembly_country,
            "domestic_content_pct": chip.domestic_content_pct,
            "list_price": str(chip.list_price) if chip.list_price is not None else None,
            "currency": chip.currency,
            "spec_source": chip.spec_source,
        },
        "target": {
            "slug": target.slug,
            "backend": target.backend,
            "device_count": target.device_count,
            "driver_version": target.driver_version,
            "runtime_version": target.runtime_version,
            "torch_version": target.torch_version,
            "plugin_versions": target.plugin_versions,
            "host_cpu": target.host_cpu,
        },
        "measured_fingerprint": {k: measured.get(k) for k in FINGERPRINT_FIELDS if k in measured},
    }


def _conformance_scope(campaign: Campaign, level: dict) -> tuple[list[str], list[str]]:
    """Dtypes whose own pass rate meets the level's conformance bar; kernels with no failed case in them."""
    bars: dict[str, float] = {}
    for criterion in level.get("criteria", []):
        if criterion.get("kind") == "conformance_pass_rate":
            for dtype in criterion["params"]["dtypes"]:
                bars[dtype] = max(bars.get(dtype, 0.0), float(criterion["params"]["min_pass_rate"]))
    cases = CaseResult.objects.filter(
        document__job__campaign=campaign, document__suite=JobSuite.CONFORMANCE, dtype__in=list(bars)
    ).exclude(status="unsupported")
    per_dtype: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    kernels_failed: set[str] = set()
    kernels_seen: set[str] = set()
    for row in cases.values("dtype", "kernel", "status").annotate(n=Count("id")).order_by():
        per_dtype[row["dtype"]][1] += row["n"]
        kernels_seen.add(row["kernel"])
        if row["status"] == "pass":
            per_dtype[row["dtype"]][0] += row["n"]
        else:
            kernels_failed.add(row["kernel"])
    dtypes = sorted(d for d, (passed, judged) in per_dtype.items() if judged and passed / judged >= bars[d])
    return dtypes, sorted(kernels_seen - kernels_failed)


def _model_scope(campaign: Campaign, results: list[CriterionResult]) -> list[dict]:
    passed_jobs = {
        verdict["job"]
        for result in results
        if result.kind == "model_accuracy"
        for verdict in (result.evidence or {}).get("models", [])
        if verdict.get("passed")
    }
    accuracy = Measurement.objects.filter(document__job_id__in=passed_jobs, kind="accuracy").select_related(
        "document__job__model"
    )
    models: dict[int, dict] = {}
    for row in accuracy:
        artifact = row.document.job.model
        if artifact is None:
            continue
        entry = models.setdefault(
            artifact.pk,
            {
                "name": artifact.name,
                "version": artifact.version,
                "task": artifact.task,
                "weights_sha256": artifact.weights_sha256,
                "dtypes": [],
            },
        )
        if "below_threshold" not in (row.flags or []) and row.dtype not in entry["dtypes"]:
            entry["dtypes"].append(row.dtype)
    for entry in models.values():
        entry["dtypes"].sort()
    return sorted(models.values(), key=lambda m: (m["name"], m["version"]))


def _headline(campaign: Campaign) -> dict:
    rows = Measurement.objects.filter(
        document__job__campaign=campaign, kind__in=["gemm", "accuracy", "model_latency"]
    ).select_related("document__job__model")
    gemm: dict[str, float] = {}
    accuracy, latency = [], []
    for row in rows:
        if row.value is None:
            continue
        if row.kind == "gemm":
            gemm[row.dtype] = max(gemm.get(row.dtype, 0.0), row.value)
        else:
            model = row.document.job.model.name if row.document.job.model_id else row.name
            item = {"model": model, "dtype": row.dtype, "value": row.value, "unit": row.unit}
            (accuracy if row.kind == "accuracy" else latency).append(item)
    order = lambda item: (item["model"], item["dtype"])  # noqa: E731
    return {
        "best_gemm_tflops": dict(sorted(gemm.items())),
        "model_accuracy": sorted(accuracy, key=order),
        "model_latency": sorted(latency, key=order),
    }


def certificate_notes(results: list[CriterionResult]) -> list[str]:
    """Failed non-blockers become notes; a waiver says who waived it and why."""
    notes = []
    for result in results:
        if result.outcome != CriterionOutcome.FAIL or result.blocker:
            continue
        note = f"{result.criterion_id} {result.title}: not met. {result.explanation}"
        if result.waived:
            note += f" Waived by the authority: {result.waiver_reason}"
        notes.append(note)
    return notes


def certificate_payload_build(
    *,
    campaign: Campaign,
    serial: str,
    key: SigningKey,
    issued_at: datetime,
    valid_until: datetime,
    issuer_name: str,
    approvals: int,
    supersedes: str | None,
) -> dict:
    program = campaign.program
    level = program.level(campaign.level) or {}
    documents = list(ResultDocument.objects.filter(job__campaign=campaign).order_by("job_id"))
    results = list(CriterionResult.objects.filter(campaign=campaign).order_by("id"))
    dtypes, kernels = _conformance_scope(campaign, level)
    payload = {
        "format": PAYLOAD_FORMAT,
        "serial": serial,
        "issuer": {"name": issuer_name, "key_id": key.key_id, "algorithm": key.algorithm},
        "program": {
            "code": program.code,
            "version": program.version,
            "title": program.title,
            "definition_sha256": program.definition_sha256,
            "level": campaign.level,
            "level_title": level.get("title", campaign.level),
        },
        "subject": _subject(campaign, documents),
        "scope": {"dtypes": dtypes, "kernels": kernels, "models": _model_scope(campaign, results)},
        "headline": _headline(campaign),
        "criteria": [
            {
                "id": r.criterion_id,
                "title": r.title,
                "blocker": r.blocker,
                "outcome": r.outcome,
                "measured": r.measured_value,
                "threshold": r.threshold,
                "waived": r.waived,
            }
            for r in results
        ],
        "notes": certificate_notes(results),
        "evidence": [{"sha256": d.sha256, "suite": d.suite, "job": d.job_id} for d in documents],
        "campaign": {"id": campaign.pk, "purpose": campaign.purpose},
        "approvals": approvals,
        "supersedes": supersedes,
        "issued_at": iso(issued_at),
        "valid_until": iso(valid_until),
    }
    return _finite(payload)
