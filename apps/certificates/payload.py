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
from typing import Any

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


def _subject(
    campaign: Campaign, documents: list[ResultDocument], declared_peaks: dict[str, float]
) -> dict[str, Any]:
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
    campaign: Campaign, level: dict[str, Any], thresholds: judge.Thresholds
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
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
) -> list[dict[str, Any]]:
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
    models: dict[int, dict[str, Any]] = {}
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


def _document_contents(documents: list[ResultDocument]) -> dict[int, dict[str, Any]]:
    """The stored runner documents of the timed suites (document id -> content): the measurement rows
    keep neither the confidence interval nor the runner's claims, which the headline needs."""
    contents: dict[int, dict[str, Any]] = {}
    for document in documents:
        if document.suite == JobSuite.CONFORMANCE or not document.content:
            continue
        try:
            with document.content.open("rb") as handle:
                content = json.loads(handle.read())
        except (OSError, ValueError):
            continue
        if isinstance(content, dict):
            contents[document.pk] = content
    return contents


def _document_stats(contents: dict[int, dict[str, Any]]) -> dict[tuple[int, str, str, str], dict[str, Any]]:
    """Each measurement item of the documents: (document id, kind, name, dtype) -> item."""
    items: dict[tuple[int, str, str, str], dict[str, Any]] = {}
    for document_id, content in contents.items():
        for item in content.get("measurements") or []:
            if isinstance(item, dict):
                key = (
                    document_id,
                    str(item.get("kind", "")),
                    str(item.get("name", "")),
                    str(item.get("dtype") or ""),
                )
                items[key] = item
    return items


def _gemm_claims(contents: dict[int, dict[str, Any]]) -> dict[tuple[int, str], dict[str, Any]]:
    """The runner's per-dtype claims (best_gemm, best_gemm_tflops, ...): (document id, dtype) -> claim."""
    claims: dict[tuple[int, str], dict[str, Any]] = {}
    for document_id, content in contents.items():
        per_dtype = (
            (content.get("claims") or {}).get("dtypes") if isinstance(content.get("claims"), dict) else None
        )
        for dtype, claim in (per_dtype or {}).items() if isinstance(per_dtype, dict) else ():
            if isinstance(claim, dict):
                claims[(document_id, str(dtype))] = claim
    return claims


def _headline(
    campaign: Campaign,
    level: dict[str, Any],
    thresholds: judge.Thresholds,
    declared_peaks: dict[str, float],
    documents: list[ResultDocument],
) -> dict[str, Any]:
    """Published figures: the best certifiable GEMM per dtype, model accuracy and latency.

    The GEMM figure is the one the runner's claim names (`claims.dtypes[d].best_gemm` and
    `best_gemm_tflops`), checked by the judge against the document's own measurements
    (judge.claimed_best); unstable, flagged, above-peak and quick-policy figures are left out (listed
    under `excluded`). Every timed figure is rounded by the judge's one rule (judge.published_figure:
    the digits its confidence interval supports, never more than the runner's significant_digits)."""
    rows = Measurement.objects.filter(
        document__job__campaign=campaign, kind__in=["gemm", "accuracy", "model_latency"]
    ).select_related("document__job__model")
    contents = _document_contents(documents)
    items = _document_stats(contents)
    claims = _gemm_claims(contents)
    quick = {
        suite for suite in ("performance", "model") if (level.get("suites", {}).get(suite) or {}).get("quick")
    }
    gemm_candidates: dict[tuple[int, str], list[tuple[dict[str, Any], str | None]]] = defaultdict(list)
    accuracy, latency, excluded = [], [], []

    def publish(row: Measurement, value: float) -> float:
        item = items.get((row.document_id, row.kind, row.name, row.dtype)) or {}
        stats = (
            item.get("stats") if isinstance(item.get("stats"), dict) else {"median": row.median, "cv": row.cv}
        )
        return judge.published_figure(value=value, stats=stats, runner_digits=item.get("significant_digits"))

    for row in rows:
        if row.kind == "accuracy":
            if row.value is None:
                continue
            model = row.document.job.model.name if row.document.job.model is not None else row.name
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
        if row.kind == "gemm":
            gemm_candidates[(row.document_id, row.dtype)].append(
                ({"name": row.name, "value": row.value, "row": row}, reason)
            )
        if reason or row.value is None:  # a row without a value always has a reason ("no value")
            if row.value is not None:
                excluded.append(
                    {"measurement": row.name, "kind": row.kind, "dtype": row.dtype, "reason": reason}
                )
            continue
        if row.kind != "gemm":
            model = row.document.job.model.name if row.document.job.model is not None else row.name
            latency.append(
                {"model": model, "dtype": row.dtype, "value": publish(row, row.value), "unit": row.unit}
            )
    gemm: dict[str, tuple[float, Measurement]] = {}
    for (document_id, dtype), candidates in sorted(gemm_candidates.items(), key=lambda kv: kv[0]):
        chosen, problem = judge.claimed_best(
            claim=claims.get((document_id, dtype)),
            key="best_gemm",
            value_key="best_gemm_tflops",
            candidates=candidates,
        )
        if chosen is None:
            if (document_id, dtype) in claims:  # without a claim each row is already listed with its reason
                excluded.append(
                    {"measurement": "best_gemm", "kind": "gemm", "dtype": dtype, "reason": problem}
                )
            continue
        row = chosen["row"]
        if dtype not in gemm or row.value > gemm[dtype][1].value:
            gemm[dtype] = (publish(row, row.value), row)
    order = lambda item: (item["model"], item["dtype"])  # noqa: E731
    serving = _serving_headline(campaign, thresholds, excluded)
    headline = {
        "best_gemm_tflops": {dtype: figure for dtype, (figure, _) in sorted(gemm.items())},
        "model_accuracy": sorted(accuracy, key=order),
        "model_latency": sorted(latency, key=order),
        "excluded": sorted(excluded, key=lambda item: (item["kind"], item["dtype"], item["measurement"])),
    }
    if serving:  # only campaigns with serving evidence (AIA 1.2 on) carry the key
        headline["serving"] = serving
    collectives = collectives_headline(campaign)
    if collectives is not None:  # only campaigns with a collectives job (AIA 1.3 draft on) carry the key
        headline["collectives"] = collectives
    return headline


def _serving_headline(
    campaign: Campaign, thresholds: judge.Thresholds, excluded: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Serving figures as certified: scenario, percentile, bound and LoadGen's VALID verdict with each;
    a figure from an INVALID run or weaker settings than the level's goes to `excluded` instead, with
    its model, scenario, LoadGen's verdict and summary digest, so the certificate says which scenario
    yielded no certified figure and why (apps/certificates/serving.py reads both lists).
    Energy (J/query, J/token) is certified from the Server run at the level's bound only, where a meter
    measured it (judge.serving_energy_problem); a run with no meter has no energy figure at all."""
    rows = Measurement.objects.filter(
        document__job__campaign=campaign, kind__in=(*judge.SERVING_FIGURE_KINDS, "energy")
    ).select_related("document__job__model")
    figures = []
    for row in rows.order_by("document__job_id", "id"):
        params = judge.serving_params({"params": row.params})
        model = (
            row.document.job.model.name if row.document.job.model is not None else str(params.get("model"))
        )

        energy: dict[str, Any] = {}
        if row.kind == "energy":
            if row.document.suite != "serving" or params.get("scenario") != "Server" or row.value is None:
                continue  # the model suite's estimate, another scenario's, or no meter: never certified
            energy = given if isinstance(given := params.get("energy"), dict) else {}
            problem = judge.serving_energy_problem(
                value=row.value, unit=row.unit, flags=row.flags, params=params, thresholds=thresholds
            )
            if problem:
                excluded.append(_serving_refusal(row, params, model, problem))
                continue
        problem = judge.serving_figure_problem(
            value=row.value, flags=row.flags, params=params, thresholds=thresholds
        )
        if problem or row.value is None:  # no value is always a problem ("no value")
            excluded.append(_serving_refusal(row, params, model, problem))
            continue
        figures.append(
            {
                "model": model,
                "scenario": params.get("scenario"),
                "kind": row.kind,
                "dtype": row.dtype,
                "value": judge.round_significant(row.value, 4),
                "unit": row.unit,
                **_serving_bound(params),
                "result_valid": True,
                "loadgen_summary_sha256": params.get("summary_sha256"),
                **_offline_runs(params),
                **(
                    {"meter": energy.get("meter"), "power_samples": energy.get("power_samples")}
                    if row.kind == "energy"
                    else {}
                ),
            }
        )
    return figures


def _offline_runs(params: dict[str, Any]) -> dict[str, Any]:
    """An Offline figure is the best of its VALID runs (runners/serving OFFLINE_SIZING_RULE; ingestion
    checks the kept run is the one the Server search was checked against): how many, as the record
    states them, so the certificate says "best of N VALID runs" where N > 1."""
    runs = params.get("offline_valid_runs")
    if params.get("scenario") != "Offline" or isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        return {}
    return {"best_of_valid_runs": runs}


def _serving_bound(params: dict[str, Any]) -> dict[str, Any]:
    """The bound a serving figure was judged by, as the certificate signs it: for a Server run what
    LoadGen judged (judge.serving_bound: one latency bound, or TTFT and TPOT with `token_latencies` for
    a decoder), none where that cannot be read from its digested summary; other scenarios judge no
    bound (their percentile, and a decoder's configured TTFT / TPOT bounds, as the runner states them)."""
    if params.get("scenario") == "Server":
        bound, _problem = judge.serving_bound(params)
        if bound is not None:
            return bound.as_params()
        return {
            "percentile": params.get("percentile"),
            "token_latencies": None,
            "latency_bound_s": None,
            "ttft_bound_s": None,
            "tpot_bound_s": None,
        }
    return {
        "percentile": params.get("percentile"),
        "latency_bound_s": None,
        "ttft_bound_s": params.get("ttft_bound_s"),
        "tpot_bound_s": params.get("tpot_bound_s"),
    }


def _serving_refusal(
    row: Measurement, params: dict[str, Any], model: str, reason: str | None
) -> dict[str, Any]:
    """The `excluded` entry of a serving figure the level may not certify."""
    return {
        "measurement": row.name,
        "kind": row.kind,
        "dtype": row.dtype,
        "reason": reason,
        "model": model,
        "scenario": params.get("scenario"),
        "unit": row.unit,
        **_serving_bound(params),
        "result_valid": params.get("result_valid") is True,
        "loadgen_summary_sha256": params.get("summary_sha256"),
    }


COLLECTIVES_NOT_APPLICABLE = "not applicable (one device)"


def collectives_headline(campaign: Campaign) -> dict[str, Any] | None:
    """The scale-out figures of a campaign with a collectives job (issue 16; None without one): the
    device count and interconnect the target declares and, per operation, dtype and message size, the
    bandwidth as nccl-tests defines it (judge.CollectiveFigure). A one-device target has no collective
    to measure: `applicable` false, COLLECTIVES_NOT_APPLICABLE, no figure (the collectives criterion is
    then not applicable, apps/certificates/criteria.py). A figure the runner refused (no value) is
    left out; an unstable one is published marked so."""
    if not campaign.jobs.filter(suite=JobSuite.COLLECTIVES).exists():
        return None
    target = campaign.target
    section: dict[str, Any] = {
        "devices": target.device_count,
        "interconnect": target.interconnect or None,
        "unit": "GB/s",
        "source": "nccl-tests doc/PERFORMANCE.md: algbw = S/t, busbw = algbw x 2(n-1)/n (all_reduce) or (n-1)/n",
    }
    if target.device_count < 2:
        return {**section, "applicable": False, "reason": COLLECTIVES_NOT_APPLICABLE, "figures": []}
    rows = Measurement.objects.filter(document__job__campaign=campaign, kind=judge.COLLECTIVE_KIND).order_by(
        "document__job_id", "id"
    )
    figures = [
        {
            "op": figure.op,
            "case": figure.case,
            "dtype": figure.dtype,
            "bytes": figure.size_bytes,
            "world_size": figure.world_size,
            "time_us": None if figure.time_us is None else judge.round_significant(figure.time_us, 4),
            "algbw_gbps": None
            if figure.algbw_gbps is None
            else judge.round_significant(figure.algbw_gbps, 4),
            "busbw_gbps": judge.round_significant(figure.busbw_gbps, 4),
            "unstable": figure.unstable,
        }
        for figure in judge.collective_figures(rows)
        if figure.busbw_gbps is not None
    ]
    return {**section, "applicable": True, "reason": None, "figures": figures}


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
) -> dict[str, Any]:
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
