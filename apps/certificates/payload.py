"""What a certificate says: the payload that is signed, built from the campaign and its evidence.

The payload is self-contained (a verifier needs nothing else): subject snapshot, program and
level, scope, headline figures, every criterion's verdict, notes, and the sha256 of every result
document the certificate rests on.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime

from django.db.models import Count

from apps.certificates import judge
from apps.certificates.models import CriterionOutcome, CriterionResult, SigningKey
from apps.runs.models import Campaign, CaseResult, JobSuite, Measurement, ResultDocument
from runners.canonical import JCS

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


def _subject(campaign: Campaign, documents: list[ResultDocument], declared_peaks: dict[str, float]) -> dict:
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
            # As declared when the campaign was submitted (the figures the campaign was judged against).
            "declared_peak_tflops": dict(sorted(declared_peaks.items())),
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


def _conformance_scope(
    campaign: Campaign, level: dict, thresholds: judge.Thresholds
) -> tuple[list[str], list[str], list[dict]]:
    """Dtypes that meet the level on their own (judge.conformance_dtype_problem); kernels with no failed
    case in them; and what was left out of the scope, with why."""
    required: list[str] = []
    for criterion in level.get("criteria", []):
        if criterion.get("kind") == "conformance_pass_rate":
            required += [d for d in criterion["params"]["dtypes"] if d not in required]
    cases = CaseResult.objects.filter(
        document__job__campaign=campaign, document__suite=JobSuite.CONFORMANCE, dtype__in=required
    )
    per_dtype: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # passed, judged, unsupported
    unsupported: dict[tuple[str, str], int] = defaultdict(int)
    kernels_failed: set[str] = set()
    kernels_seen: set[str] = set()
    for row in cases.values("dtype", "kernel", "status").annotate(n=Count("id")).order_by():
        if row["status"] == "unsupported":
            per_dtype[row["dtype"]][2] += row["n"]
            unsupported[(row["dtype"], row["kernel"])] += row["n"]
            continue
        per_dtype[row["dtype"]][1] += row["n"]
        kernels_seen.add(row["kernel"])
        if row["status"] == "pass":
            per_dtype[row["dtype"]][0] += row["n"]
        else:
            kernels_failed.add(row["kernel"])
    dtypes, excluded = [], []
    for dtype in sorted(required):
        passed, judged, missing = per_dtype.get(dtype, [0, 0, 0])
        problem = judge.conformance_dtype_problem(
            counts=judge.DtypeConformance(dtype, passed, judged, missing), thresholds=thresholds
        )
        if problem is None:
            dtypes.append(dtype)
        else:
            excluded.append({"dtype": dtype, "reason": problem})
    excluded += [
        {"dtype": dtype, "kernel": kernel, "cases": n, "reason": "unsupported by the device"}
        for (dtype, kernel), n in sorted(unsupported.items())
    ]
    return dtypes, sorted(kernels_seen - kernels_failed), excluded


def _model_scope(
    campaign: Campaign, results: list[CriterionResult], thresholds: judge.Thresholds
) -> list[dict]:
    """Models that passed their accuracy criterion, each with the dtypes in which it reaches the
    level's bar for that dtype and metric (the judge's, never the runner's flag)."""
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
        bar = judge.accuracy_bar(
            thresholds=thresholds,
            dtype=row.dtype,
            metric=row.unit,
            runner_threshold=judge.runner_threshold_of(row.params),
        )
        if judge.accuracy_passes(value=row.value, bar=bar) and row.dtype not in entry["dtypes"]:
            entry["dtypes"].append(row.dtype)
    for entry in models.values():
        entry["dtypes"].sort()
    return sorted(models.values(), key=lambda m: (m["name"], m["version"]))


def _document_stats(documents: list[ResultDocument]) -> dict[tuple[int, str, str, str], dict]:
    """Timing statistics (median, confidence interval) of each measurement, from the stored documents
    themselves (the measurement rows keep no interval): (document id, kind, name, dtype) -> stats."""
    stats: dict[tuple[int, str, str, str], dict] = {}
    for document in documents:
        if document.suite == JobSuite.CONFORMANCE or not document.content:
            continue
        try:
            with document.content.open("rb") as handle:
                content = json.loads(handle.read())
        except (OSError, ValueError):
            continue
        for item in content.get("measurements") or [] if isinstance(content, dict) else []:
            if isinstance(item, dict) and isinstance(item.get("stats"), dict):
                key = (
                    document.pk,
                    str(item.get("kind", "")),
                    str(item.get("name", "")),
                    str(item.get("dtype") or ""),
                )
                stats[key] = item["stats"]
    return stats


def _headline(
    campaign: Campaign,
    level: dict,
    thresholds: judge.Thresholds,
    declared_peaks: dict[str, float],
    documents: list[ResultDocument],
) -> dict:
    """Published figures: the best certifiable GEMM per dtype, model accuracy and latency. Unstable,
    flagged, above-peak and quick-policy figures are left out (listed under `excluded`); every figure
    is rounded to the digits its confidence interval supports."""
    rows = Measurement.objects.filter(
        document__job__campaign=campaign, kind__in=["gemm", "accuracy", "model_latency"]
    ).select_related("document__job__model")
    stats = _document_stats(documents)
    quick = {
        suite for suite in ("performance", "model") if (level.get("suites", {}).get(suite) or {}).get("quick")
    }
    gemm: dict[str, tuple[float, Measurement]] = {}
    accuracy, latency, excluded = [], [], []
    for row in rows:
        if row.value is None:
            continue
        if row.kind == "accuracy":
            model = row.document.job.model.name if row.document.job.model_id else row.name
            accuracy.append(
                {
                    "model": model,
                    "dtype": row.dtype,
                    "value": judge.published_accuracy(row.value),
                    "unit": row.unit,
                }
            )
            continue
        reason = judge.measurement_exclusion(value=row.value, unstable=row.unstable, flags=row.flags)
        suite = "performance" if row.kind == "gemm" else "model"
        if reason is None and suite in quick:
            reason = "timed with the quick policy (not certification-grade)"
        ratio = judge.peak_ratio(value=row.value, peak=judge.peak_for(declared_peaks, row.dtype))
        if reason is None and row.kind == "gemm" and judge.above_peak(ratio=ratio, thresholds=thresholds):
            reason = f"{ratio:.2f} x the declared peak, above the credible {thresholds.above_peak_ratio:.2f}"
        if reason:
            excluded.append({"measurement": row.name, "kind": row.kind, "dtype": row.dtype, "reason": reason})
            continue
        row_stats = stats.get((row.document_id, row.kind, row.name, row.dtype)) or {
            "median": row.median,
            "cv": row.cv,
        }
        figure = judge.published_figure(value=row.value, stats=row_stats)
        if row.kind == "gemm":
            if row.dtype not in gemm or row.value > gemm[row.dtype][1].value:
                gemm[row.dtype] = (figure, row)
        else:
            model = row.document.job.model.name if row.document.job.model_id else row.name
            latency.append({"model": model, "dtype": row.dtype, "value": figure, "unit": row.unit})
    order = lambda item: (item["model"], item["dtype"])  # noqa: E731
    return {
        "best_gemm_tflops": {dtype: figure for dtype, (figure, _) in sorted(gemm.items())},
        "model_accuracy": sorted(accuracy, key=order),
        "model_latency": sorted(latency, key=order),
        "excluded": sorted(excluded, key=lambda item: (item["kind"], item["dtype"], item["measurement"])),
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
    thresholds = judge.campaign_thresholds(campaign=campaign)
    declared_peaks = judge.campaign_declared_peaks(campaign=campaign)
    documents = list(ResultDocument.objects.filter(job__campaign=campaign).order_by("job_id"))
    results = list(CriterionResult.objects.filter(campaign=campaign).order_by("id"))
    dtypes, kernels, excluded = _conformance_scope(campaign, level, thresholds)
    payload = {
        "format": PAYLOAD_FORMAT,
        # Signed as RFC 8785 JSON; a certificate without this field was signed in the legacy form.
        "canonicalization": JCS,
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
        "subject": _subject(campaign, documents, declared_peaks),
        "scope": {
            "dtypes": dtypes,
            "kernels": kernels,
            "models": _model_scope(campaign, results, thresholds),
            "excluded": excluded,
        },
        "headline": _headline(campaign, level, thresholds, declared_peaks, documents),
        "criteria": [
            {
                "id": r.criterion_id,
                "title": r.title,
                "blocker": r.blocker,
                "outcome": r.outcome,
                "measured": (
                    judge.round_significant(r.measured_value, 6) if r.measured_value is not None else None
                ),
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
