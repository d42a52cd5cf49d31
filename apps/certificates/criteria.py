"""Criterion kinds of a program definition, each judged over a campaign's stored evidence.

Every judge reads only accepted evidence (ResultDocument and its CaseResult / Measurement rows)
and returns a Judgement: pass / fail / not_applicable, the measured value, the threshold, a
sentence saying why, and the documents (sha256, job) the verdict rests on. Missing evidence is a
failure, never a pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count

from apps.certificates import judge
from apps.certificates.judge import AGREEMENT_METRICS, COSINE_METRICS  # noqa: F401 (re-exported)
from apps.certificates.models import CriterionOutcome
from apps.runs.models import Campaign, CaseResult, Job, JobSuite, Measurement, ResultDocument
from apps.runs.services.model_evidence import fp8_path_dtype
from certification.recorded_text import say
from runners.measurements import best_gemm_per_dtype

# What the fingerprint of every document of one campaign must agree on.
FINGERPRINT_IDENTITY = (
    "backend",
    "device_name",
    "device_count",
    "driver_version",
    "runtime_version",
    "torch_version",
    "plugin_versions",
    "device_identity",
)


@dataclass
class Judgement:
    outcome: str
    explanation: str
    measured: float | None = None
    threshold: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


def _doc_ref(document: ResultDocument) -> dict[str, Any]:
    return {"sha256": document.sha256, "job": document.job_id, "suite": document.suite}


def _documents(campaign: Campaign, suite: str | None = None) -> list[ResultDocument]:
    queryset = ResultDocument.objects.filter(job__campaign=campaign).select_related("job").order_by("job_id")
    return list(queryset.filter(suite=suite) if suite else queryset)


def _fail(explanation: str, **kwargs) -> Judgement:
    return Judgement(CriterionOutcome.FAIL, explanation, **kwargs)


def conformance_pass_rate(
    campaign: Campaign, params: dict[str, Any], thresholds: judge.Thresholds
) -> Judgement:
    """passed / (cases of the dtypes [and kernels] excluding status "unsupported") >= the level's pass
    rate, and no required dtype has more unsupported cases than the level tolerates."""
    threshold = thresholds.conformance_min_pass_rate
    if threshold is None:
        return _fail(say("criterion.no_pass_rate"))
    documents = _documents(campaign, JobSuite.CONFORMANCE)
    if not documents:
        return _fail(say("criterion.no_conformance"), threshold=threshold)
    cases = CaseResult.objects.filter(document__in=documents, dtype__in=params["dtypes"])
    if params.get("kernels"):
        cases = cases.filter(kernel__in=params["kernels"])
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for row in cases.values("dtype", "status").annotate(n=Count("id")).order_by():
        counts[row["dtype"]][row["status"]] = row["n"]
    judged = sum(n for per in counts.values() for status, n in per.items() if status != "unsupported")
    passed = sum(per.get("pass", 0) for per in counts.values())
    evidence = {
        "documents": [_doc_ref(d) for d in documents],
        "counts": dict(counts),
        "passed": passed,
        "judged": judged,
    }
    if judged == 0:
        return _fail(
            say("conformance.none_supported", dtypes=", ".join(params["dtypes"])),
            threshold=threshold,
            evidence=evidence,
        )
    rate = passed / judged
    # A level that names a dtype requires it: a device that supports none of its cases (or more of
    # them unsupported than the level tolerates) cannot pass by leaving them out of the rate.
    problems = [
        problem
        for dtype in params["dtypes"]
        if (
            problem := judge.conformance_dtype_problem(
                counts=judge.DtypeConformance(
                    dtype,
                    counts.get(dtype, {}).get("pass", 0),
                    sum(n for status, n in counts.get(dtype, {}).items() if status != "unsupported"),
                    counts.get(dtype, {}).get("unsupported", 0),
                ),
                thresholds=thresholds,
                with_rate=False,
            )
        )
    ]
    if problems:
        return _fail(
            say("conformance.dtype_missing", passed=passed, judged=judged, problems="; ".join(problems)),
            measured=rate,
            threshold=threshold,
            evidence=evidence,
        )
    if rate >= threshold:
        return Judgement(
            CriterionOutcome.PASS,
            say("conformance.pass", passed=passed, judged=judged, rate=f"{rate:.2%}"),
            rate,
            threshold,
            evidence,
        )
    return _fail(
        say(
            "conformance.fail", passed=passed, judged=judged, rate=f"{rate:.2%}", threshold=f"{threshold:.2%}"
        ),
        measured=rate,
        threshold=threshold,
        evidence=evidence,
    )


def _measurement_model(row: Measurement) -> str:
    params = row.params or {}
    nested = params.get("params") if isinstance(params.get("params"), dict) else {}
    return str(params.get("model") or nested.get("model") or row.name.removesuffix(" accuracy"))


def _accuracy_judged(
    thresholds: judge.Thresholds, dtype: str, row: Measurement, fp8_dtype: str | None
) -> tuple[bool, float | None, dict[str, Any]]:
    """(passed, the bar, what else was judged) of one accuracy measurement: an FP8-path run (the
    platform's decision, ``fp8_dtype``) against the level's FP8 bars, any other run its dtype's bar."""
    if dtype == fp8_dtype:
        bar, cosine_bar = judge.fp8_bars(thresholds=thresholds, metric=row.unit)
        passed = judge.fp8_accuracy_passes(
            thresholds=thresholds, metric=row.unit, value=row.value, params=row.params
        )
        cosine = judge.fp8_cosine_of(row.params)
        return passed, bar, {"path": judge.FP8_ACCURACY, "cosine": cosine, "cosine_threshold": cosine_bar}
    bar = judge.accuracy_bar(
        thresholds=thresholds,
        dtype=dtype,
        metric=row.unit,
        runner_threshold=judge.runner_threshold_of(row.params),
    )
    return judge.accuracy_passes(value=row.value, bar=bar), bar, {}


def _why(verdict: dict[str, Any]) -> str:
    if verdict.get("reason"):
        return verdict["reason"]
    if verdict.get("path"):
        return say(
            "model_accuracy.fp8_below",
            metric=verdict["metric"],
            value=verdict["value"],
            bar=verdict["threshold"],
            cosine=verdict.get("cosine"),
            cosine_bar=verdict.get("cosine_threshold"),
        )
    return say(
        "model_accuracy.below", metric=verdict["metric"], value=verdict["value"], bar=verdict["threshold"]
    )


def model_accuracy(campaign: Campaign, params: dict[str, Any], thresholds: judge.Thresholds) -> Judgement:
    """Every (models=all) or some (models=any) model job reaches the level's accuracy bar in `dtype`.

    Embeddings are judged by their minimum cosine similarity to the float64 reference; decoders and
    classifiers by top-1 agreement with it (judge.accuracy_bar: the level's bar per dtype and metric).
    """
    dtype = params["dtype"]
    min_cosine = judge.accuracy_bar(thresholds=thresholds, dtype=dtype, metric="cosine_min")
    jobs = list(
        Job.objects.filter(campaign=campaign, suite=JobSuite.MODEL).select_related("model").order_by("id")
    )
    if not jobs:
        return _fail(say("model_accuracy.no_model"), threshold=min_cosine)
    rows = Measurement.objects.filter(document__job__in=jobs, kind="accuracy", dtype=dtype).select_related(
        "document"
    )
    by_job: dict[int, list[Measurement]] = defaultdict(list)
    for row in rows:
        by_job[row.document.job_id].append(row)
    verdicts, documents = [], []
    for job in jobs:
        label = str(job.model) if job.model_id else f"job {job.pk}"
        if not by_job.get(job.pk):
            verdicts.append(
                {
                    "model": label,
                    "job": job.pk,
                    "passed": False,
                    "reason": say("model_accuracy.no_evidence", dtype=dtype, state=job.state),
                }
            )
            continue
        fp8_dtype = fp8_path_dtype(job)
        for row in by_job[job.pk]:
            documents.append(_doc_ref(row.document))
            passed, bar, fp8 = _accuracy_judged(thresholds, dtype, row, fp8_dtype)
            verdicts.append(
                {
                    "model": label,
                    "job": job.pk,
                    "name": _measurement_model(row),
                    "metric": row.unit,
                    "value": row.value,
                    "threshold": bar,
                    "passed": passed,
                    **fp8,
                }
            )
    passing = [v for v in verdicts if v["passed"]]
    mode = params.get("models", "all")
    ok = bool(passing) if mode == "any" else len(passing) == len(verdicts)
    metrics = {v.get("metric") for v in verdicts}
    if len(metrics) == 1 and None not in metrics:
        values = [v["value"] for v in verdicts if v["value"] is not None]
        measured = (max(values) if mode == "any" else min(values)) if values else None
        threshold = verdicts[0]["threshold"]
    else:
        measured, threshold = len(passing) / len(verdicts), (1.0 if mode == "all" else 1.0 / len(verdicts))
    failing = "; ".join(say("named.item", name=v["model"], text=_why(v)) for v in verdicts if not v["passed"])
    counts = {"passing": len(passing), "total": len(verdicts), "dtype": dtype}
    mode = "any" if mode == "any" else "all"  # the two the programs state (and `ok` reads)
    evidence = {"documents": documents, "models": verdicts}
    if ok:
        return Judgement(
            CriterionOutcome.PASS, say(f"model_accuracy.{mode}", **counts), measured, threshold, evidence
        )
    return _fail(
        say(f"model_accuracy.{mode}_failing", **counts, failing=failing),
        measured=measured,
        threshold=threshold,
        evidence=evidence,
    )


def model_architectures(
    campaign: Campaign, params: dict[str, Any], thresholds: judge.Thresholds
) -> Judgement:
    """Each architecture the level requires (``architectures``, registry Architecture ids) was run by a
    model job of the campaign whose accuracy reaches the level's bar in every dtype of ``dtypes``
    (judge.accuracy_bar, as ``model_accuracy``): a level that requires a DeepSeek-V3-style decoder is
    not passed by a campaign that ran only a Llama-style one, nor by one whose DeepSeek run failed."""
    required = list(params.get("architectures") or [])
    dtypes = list(params.get("dtypes") or [])
    # AIA 1.3 draft (issue 16): ``fp8`` true counts only FP8-path runs (model_evidence.fp8_path_dtype: an
    # FP8 checkpoint whose plan asked for FP8 computation), their bfloat16 accuracy at the level's FP8 bar.
    fp8_only = params.get("fp8") is True
    if not required or not dtypes:
        return _fail(say("architectures.none_named"))
    jobs = list(
        Job.objects.filter(campaign=campaign, suite=JobSuite.MODEL, model__architecture__in=required)
        .select_related("model")
        .order_by("id")
    )
    rows = Measurement.objects.filter(
        document__job__in=jobs, kind="accuracy", dtype__in=dtypes
    ).select_related("document")
    by_job: dict[int, list[Measurement]] = defaultdict(list)
    for row in rows:
        by_job[row.document.job_id].append(row)
    verdicts, documents, missing = [], [], []
    for architecture in required:
        runs = [job for job in jobs if job.model is not None and job.model.architecture == architecture]
        if not runs:
            missing.append(say("architectures.not_run", architecture=architecture))
            continue
        reasons = []
        for job in runs:
            failed = []
            fp8_dtype = fp8_path_dtype(job)
            if fp8_only and fp8_dtype is None:
                failed.append(say("architectures.not_fp8"))
            for dtype in dtypes:
                judged = [row for row in by_job.get(job.pk, []) if row.dtype == dtype]
                documents += [_doc_ref(row.document) for row in judged]
                passing = [row for row in judged if _accuracy_judged(thresholds, dtype, row, fp8_dtype)[0]]
                if not judged:
                    failed.append(say("model_accuracy.no_evidence", dtype=dtype, state=job.state))
                elif not passing and dtype == fp8_dtype:
                    failed.append(
                        say(
                            "architectures.fp8_below",
                            dtype=dtype,
                            metric=judged[0].unit,
                            value=judged[0].value,
                            cosine=judge.fp8_cosine_of(judged[0].params),
                        )
                    )
                elif not passing:
                    failed.append(
                        say("architectures.below", dtype=dtype, metric=judged[0].unit, value=judged[0].value)
                    )
            verdicts.append(
                {"architecture": architecture, "model": str(job.model), "job": job.pk, "failed": failed}
            )
            if failed:
                reasons.append(
                    say("architectures.model_failed", model=job.model, job=job.pk, failed=", ".join(failed))
                )
        if all(v["failed"] for v in verdicts if v["architecture"] == architecture):
            missing.append(say("named.item", name=architecture, text="; ".join(reasons)))
    evidence = {"documents": documents, "architectures": required, "dtypes": dtypes, "models": verdicts}
    met = len(required) - len(missing)
    names = {"met": met, "required": len(required), "names": ", ".join(required), "dtypes": ", ".join(dtypes)}
    if not missing:
        summary = say("architectures.pass", **names)
        return Judgement(CriterionOutcome.PASS, summary, float(met), float(len(required)), evidence)
    return _fail(
        say("architectures.fail", **names, missing="; ".join(missing)),
        measured=float(met),
        threshold=float(len(required)),
        evidence=evidence,
    )


def integrity(campaign: Campaign, params: dict[str, Any], thresholds: judge.Thresholds) -> Judgement:
    """fingerprint: every accepted document's fingerprint matches the registered target (the
    comparison of ingestion), was recorded under math modes the level accepts, and all name one
    device; output_consistency / caching: every TEST01 / TEST04 result of the documents passes the
    judge's reading of its raw figures; timing: every figure timed by device events agrees with the
    host clock within the level's bounds."""
    check = params["check"]
    documents = _documents(campaign)
    if not documents:
        return _fail(say("criterion.no_evidence_at_all"))
    if check == "fingerprint":
        identities = {
            tuple(str((d.fingerprint or {}).get(k)) for k in FINGERPRINT_IDENTITY) for d in documents
        }
        evidence = {
            "documents": [_doc_ref(d) for d in documents],
            "fingerprint": {k: (documents[0].fingerprint or {}).get(k) for k in FINGERPRINT_IDENTITY},
        }
        problems = [
            say("fingerprint.job_problem", job=d.job_id, problem=problem)
            for d in documents
            for problem in judge.fingerprint_problems(fingerprint=d.fingerprint, target=campaign.target)
        ] + [
            say("fingerprint.math_mode", job=d.job_id, problem=problem)
            for d in documents
            for problem in judge.math_mode_problems(fingerprint=d.fingerprint, thresholds=thresholds)
        ]
        if problems:
            return _fail(
                say("fingerprint.differs", problems="; ".join(problems[:6])),
                measured=float(len(problems)),
                threshold=0.0,
                evidence=evidence,
            )
        if len(identities) != 1:
            return _fail(
                say("fingerprint.several"),
                measured=float(len(identities)),
                threshold=1.0,
                evidence=evidence,
            )
        return Judgement(
            CriterionOutcome.PASS,
            say("fingerprint.pass", count=len(documents)),
            float(len(documents)),
            None,
            evidence,
        )
    if check == "timing":
        return _timing(documents, thresholds)
    if check in LOOPHOLE_CHECKS:
        return LOOPHOLE_CHECKS[check](campaign, documents, thresholds)
    if check == "reveal":
        return _reveal(documents, thresholds)
    if check not in judge.INTEGRITY_NAMES:
        return _fail(say("integrity.unknown", check=repr(check)))
    verdicts = [
        {
            "document": d.sha256,
            "job": d.job_id,
            "verdict": "pass" if v.passed else "fail",
            "detail": v.detail,
            **{
                k: v.item.get(k)
                for k in ("model", "dtype", "benchmark", "speedup_ratio", "mismatches", "sampled")
            },
        }
        for d in documents
        for v in judge.integrity_verdicts(integrity=d.integrity, check=check, thresholds=thresholds)
    ]
    refs = [_doc_ref(d) for d in documents if any(v["document"] == d.sha256 for v in verdicts)]
    evidence = {"documents": refs, "verdicts": verdicts}
    if not verdicts:
        return _fail(say("integrity.none", check=check.replace("_", " ")), threshold=1.0, evidence=evidence)
    passing = [v for v in verdicts if v["verdict"] == "pass"]
    rate = len(passing) / len(verdicts)
    if len(passing) == len(verdicts):
        return Judgement(
            CriterionOutcome.PASS,
            say("integrity.pass", count=len(verdicts), check=check.replace("_", " ")),
            rate,
            1.0,
            evidence,
        )
    failed = ", ".join(
        say(
            "named.item",
            name=" ".join(
                str(part)
                for part in (v.get("model") or v.get("benchmark") or "performance", v.get("dtype"))
                if part
            ),
            text=v["detail"],
        )
        for v in verdicts
        if v["verdict"] != "pass"
    )
    return _fail(
        say(
            "integrity.fail",
            failed=len(verdicts) - len(passing),
            count=len(verdicts),
            check=check.replace("_", " "),
            details=failed,
        ),
        measured=rate,
        threshold=1.0,
        evidence=evidence,
    )


def _timing(documents: list[ResultDocument], thresholds: judge.Thresholds) -> Judgement:
    """Every figure timed by device events agrees with the host clock within the level's bounds
    (judge.clock_verdict, from the raw sums each measurement carries); a document whose runner
    already refused figures fails too. Host-clock timing leaves nothing to cross-check."""
    rows = (
        Measurement.objects.filter(document__in=documents)
        .order_by("document__job_id", "id")
        .values("document_id", "name", "dtype", "params")
    )
    by_document: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        params = row["params"] if isinstance(row["params"], dict) else {}
        by_document[row["document_id"]].append(
            {
                "name": row["name"],
                "dtype": row["dtype"],
                "timing_method": params.get("timing_method"),
                "clock": params.get("clock"),
            }
        )
    verdicts: list[dict[str, Any]] = [
        {"document": d.sha256, "job": d.job_id, "verdict": "pass" if v.passed else "fail", "detail": v.detail}
        for d in documents
        for v in judge.timing_verdicts(
            measurements=by_document.get(d.pk, []), integrity=d.integrity, thresholds=thresholds
        )
    ]
    bounds = [thresholds.clock_ratio_min, thresholds.clock_ratio_max]
    evidence = {
        "documents": [_doc_ref(d) for d in documents if any(v["document"] == d.sha256 for v in verdicts)],
        "verdicts": verdicts,
        "bounds": bounds,
    }
    if not verdicts:
        return Judgement(
            CriterionOutcome.NOT_APPLICABLE,
            say("timing.not_applicable"),
            evidence=evidence,
        )
    failing = [v for v in verdicts if v["verdict"] != "pass"]
    rate = (len(verdicts) - len(failing)) / len(verdicts)
    if not failing:
        return Judgement(
            CriterionOutcome.PASS,
            say("timing.pass", count=len(verdicts), bounds=f"{bounds[0]:g}-{bounds[1]:g}"),
            rate,
            1.0,
            evidence,
        )
    return _fail(
        say(
            "timing.fail",
            failed=len(failing),
            count=len(verdicts),
            details="; ".join(v["detail"] for v in failing[:6]),
        ),
        measured=rate,
        threshold=1.0,
        evidence=evidence,
    )


def _reveal(documents: list[ResultDocument], thresholds: judge.Thresholds) -> Judgement:
    """Commit and reveal: every document's sampled outputs were revealed, match the runner's commitment,
    and the platform's own verdict on each agrees with the runner's (apps/runs/services/reveal.py)."""
    from apps.runs.models import OutputReveal
    from runners.suites import COMMITTING_SUITES

    # The suites that commit their judged outputs (the serving suite's since issue 15's reveal).
    documents = [d for d in documents if d.suite in COMMITTING_SUITES]
    # What the criterion reads of each reveal (not the judging excerpt or the exclusions it also holds).
    fields = ("document_id", "state", "findings", "requested", "committed", "checked")
    reveals = {r.document_id: r for r in OutputReveal.objects.filter(document__in=documents).only(*fields)}
    rows: list[dict[str, Any]] = []
    for document in documents:
        reveal = reveals.get(document.pk)
        problem = judge.reveal_problem(
            state=reveal.state if reveal else None,
            findings=reveal.findings if reveal else [],
            sample_size=thresholds.reveal_sample_size,
        )
        rows.append(
            {
                "document": document.sha256,
                "job": document.job_id,
                "suite": document.suite,
                "state": reveal.state if reveal else None,
                "requested": len(reveal.requested) if reveal else 0,
                "committed": reveal.committed if reveal else 0,
                "checked": len(reveal.checked) if reveal else 0,
                "findings": (reveal.findings if reveal else [])[:10],
                "verdict": "fail" if problem else "pass",
                "detail": problem or "",
            }
        )
    evidence = {"documents": [_doc_ref(d) for d in documents], "reveals": rows}
    failing = [r for r in rows if r["verdict"] == "fail"]
    revealed = sum(r["requested"] for r in rows)
    if failing:
        return _fail(
            say(
                "reveal.fail",
                details="; ".join(
                    say("reveal.job_detail", job=r["job"], suite=r["suite"], detail=r["detail"])
                    for r in failing[:4]
                ),
            ),
            measured=float(len(failing)),
            threshold=0.0,
            evidence=evidence,
        )
    return Judgement(
        CriterionOutcome.PASS,
        say("reveal.pass", revealed=revealed, documents=len(rows)),
        float(revealed),
        None,
        evidence,
    )


def claims(campaign: Campaign, params: dict[str, Any], thresholds: judge.Thresholds) -> Judgement:
    """Best stable GEMM per dtype, as a share of the peak declared at submission, reaches the level's
    ratio; a GEMM above the declared peak by more than the level's above-peak ratio means a wrong
    declaration or a cheated timing. Unstable or flagged measurements do not count."""
    threshold = thresholds.claims_min_ratio
    if threshold is None:
        return _fail(say("criterion.no_claims_ratio"))
    declared = judge.campaign_declared_peaks(campaign=campaign)
    level = campaign.program.level(campaign.level) or {}
    planned = (level.get("suites", {}).get("performance") or {}).get("dtypes") or []
    unmeasured: list[str] = []
    if params.get("dtypes") == "declared":  # AIA 1.2: every declared peak is measured and judged
        planned, unmeasured = judge.measured_declared_dtypes(declared)
    dtypes = [d for d in planned if judge.peak_for(declared, d) is not None]
    if params.get("above_peak") == "any_figure" and (impossible := _impossible_figures(campaign, thresholds)):
        return _fail(
            say(
                "claims.impossible",
                ratio=f"{thresholds.above_peak_ratio:.0%}",
                figures="; ".join(impossible[:6]),
            ),
            threshold=thresholds.above_peak_ratio,
            evidence={"impossible": impossible, "above_peak_ratio": thresholds.above_peak_ratio},
        )
    if not dtypes:
        return Judgement(
            CriterionOutcome.NOT_APPLICABLE,
            say("claims.no_peak"),
            threshold=threshold,
        )
    rows = Measurement.objects.filter(
        document__job__campaign=campaign,
        document__suite=JobSuite.PERFORMANCE,
        kind="gemm",
        dtype__in=dtypes,
    ).select_related("document")
    counted: list[tuple[float, Measurement]] = []
    excluded: list[dict[str, Any]] = []
    for row in rows:
        reason = judge.measurement_exclusion(value=row.value, unstable=row.unstable, flags=row.flags)
        if reason:
            excluded.append({"measurement": row.name, "dtype": row.dtype, "reason": reason})
            continue
        ratio = judge.peak_ratio(value=row.value, peak=judge.peak_for(declared, row.dtype))
        if ratio is not None:
            counted.append((ratio, row))
    best = best_gemm_per_dtype(counted, dtype=lambda c: c[1].dtype, value=lambda c: c[1].value)
    per_dtype = {
        d: {
            "declared_peak_tflops": judge.peak_for(declared, d),
            "best_gemm_tflops": best[d][1].value if d in best else None,
            "best_gemm_efficiency": best[d][0] if d in best else None,
            "measurement": best[d][1].name if d in best else None,
        }
        for d in dtypes
    }
    documents = sorted({(row.document.sha256, row.document.job_id) for _, row in best.values()})
    evidence = {
        "documents": [{"sha256": s, "job": j, "suite": JobSuite.PERFORMANCE} for s, j in documents],
        "dtypes": per_dtype,
        "excluded": excluded,
        "above_peak_ratio": thresholds.above_peak_ratio,
        "not_measurable": unmeasured,
    }
    above = [
        f"{d} {best[d][0]:.0%}" for d in best if judge.above_peak(ratio=best[d][0], thresholds=thresholds)
    ]
    if above:  # a figure that is not credible outweighs anything else the measurements say
        return _fail(
            say("claims.above_peak", ratio=f"{thresholds.above_peak_ratio:.0%}", figures=", ".join(above)),
            measured=max(best[d][0] for d in best),
            threshold=threshold,
            evidence=evidence,
        )
    missing = [d for d in dtypes if d not in best]
    if missing:
        return _fail(
            say("claims.not_measured", dtypes=", ".join(missing)), threshold=threshold, evidence=evidence
        )
    worst = min(best[d][0] for d in dtypes)
    low = [f"{d} {best[d][0]:.0%}" for d in dtypes if best[d][0] < threshold]
    if low:
        return _fail(
            say("claims.low", ratio=f"{threshold:.0%}", figures=", ".join(low)),
            measured=worst,
            threshold=threshold,
            evidence=evidence,
        )
    return Judgement(
        CriterionOutcome.PASS,
        say(
            "claims.pass",
            figures=", ".join(say("claims.figure", dtype=d, ratio=f"{best[d][0]:.0%}") for d in dtypes),
        ),
        worst,
        threshold,
        evidence,
    )


def performance_stability(
    campaign: Campaign, params: dict[str, Any], thresholds: judge.Thresholds
) -> Judgement:
    """The fraction of timed measurements flagged unstable (noisy timing) is at most the level's bound."""
    threshold = thresholds.max_unstable_fraction
    if threshold is None:
        return _fail(say("criterion.no_stability_bound"))
    rows = Measurement.objects.filter(document__job__campaign=campaign, median__isnull=False)
    total = rows.count()
    if total == 0:
        return _fail(say("stability.none"), threshold=threshold)
    unstable = rows.filter(unstable=True).count()
    fraction = unstable / total
    documents = [
        _doc_ref(d)
        for d in ResultDocument.objects.filter(pk__in=rows.values("document_id"))
        .select_related("job")
        .order_by("job_id")
    ]
    evidence = {"documents": documents, "unstable": unstable, "timed": total}
    text = say(
        "stability.result",
        unstable=unstable,
        total=total,
        fraction=f"{fraction:.1%}",
        bound=f"{threshold:.0%}",
    )
    if fraction <= threshold:
        return Judgement(CriterionOutcome.PASS, text, fraction, threshold, evidence)
    return _fail(text, measured=fraction, threshold=threshold, evidence=evidence)


DECODER_ARCHITECTURES = ("llama-decoder", "deepseek-v3")


def _item(row: Measurement) -> dict[str, Any]:
    return {"value": row.value, "flags": row.flags, "params": row.params}


def serving(campaign: Campaign, params: dict[str, Any], thresholds: judge.Thresholds) -> Judgement:
    """Every submitted model (models=all), or every decoder LLM (models=decoders), serves a VALID MLPerf
    LoadGen Server run at the level's latency bound with the level's settings, and what it served in
    LoadGen's accuracy mode reaches the level's accuracy bar against the float64 reference."""
    if thresholds.serving is None:
        return _fail(say("criterion.no_serving"))
    bound_ms = ((thresholds.serving.get("scenarios") or {}).get("Server") or {}).get("latency_bound_ms")
    threshold = float(bound_ms) / 1000 if isinstance(bound_ms, int | float) else None
    jobs = list(
        Job.objects.filter(campaign=campaign, suite=JobSuite.SERVING).select_related("model").order_by("id")
    )
    if params.get("models") == "decoders":
        # Decoders are judged by TTFT and TPOT (LoadGen's token-latency mode), two bounds the lines
        # state; the level's query latency bound is not theirs.
        threshold = None
        jobs = [j for j in jobs if j.model is not None and j.model.architecture in DECODER_ARCHITECTURES]
        if not jobs:
            return Judgement(CriterionOutcome.NOT_APPLICABLE, say("serving.no_decoder"), None, threshold)
    if not jobs:
        return _fail(say("serving.no_job"), threshold=threshold)
    documents = {d.job_id: d for d in ResultDocument.objects.filter(job__in=jobs)}
    rows = defaultdict(list)
    for row in Measurement.objects.filter(
        document__in=documents.values(), kind__in=["serving_qps", "serving_accuracy"]
    ).order_by("id"):
        rows[row.document_id].append(row)
    lines: list[str] = []
    failures: list[str] = []
    lowest: float | None = None
    for job in jobs:
        name = job.model.name if job.model else f"job {job.pk}"
        document = documents.get(job.pk)
        if document is None:
            failures.append(say("named.item", name=name, text=say("serving.no_evidence")))
            continue
        server = next((r for r in rows[document.pk] if r.kind == "serving_qps"), None)
        decoder = job.model is not None and job.model.architecture in DECODER_ARCHITECTURES
        ok, text = judge.serving_server_verdict(
            qps=_item(server) if server else None, decoder=decoder, thresholds=thresholds
        )
        served = [r for r in rows[document.pk] if r.kind == "serving_accuracy"]
        if decoder:  # the level says which of the decoder's scores it judges (judge.serving_decoder_metric)
            served = [
                r
                for r in served
                if r.unit == judge.serving_decoder_metric(thresholds=thresholds, dtype=r.dtype)
            ]
        accuracy = served[0] if served else None
        if accuracy is None or accuracy.value is None:
            ok, text = False, say("serving.no_accuracy", text=text)
        else:
            bar = judge.accuracy_bar(thresholds=thresholds, dtype=accuracy.dtype, metric=accuracy.unit)
            if not judge.accuracy_passes(value=accuracy.value, bar=bar):
                ok, text = (
                    False,
                    say(
                        "serving.accuracy_below",
                        text=text,
                        metric=accuracy.unit,
                        value=f"{accuracy.value:.6f}",
                        bar=bar,
                    ),
                )
        (lines if ok else failures).append(say("named.item", name=name, text=text))
        if ok and server is not None and server.value is not None:  # a passing Server run has a value
            lowest = server.value if lowest is None else min(lowest, server.value)
    evidence = {
        "documents": [_doc_ref(d) for d in documents.values()],
        "models": lines + failures,
    }
    if failures:
        return _fail(
            say("serving.lines", lines="; ".join(failures + lines)),
            measured=lowest,
            threshold=threshold,
            evidence=evidence,
        )
    return Judgement(
        CriterionOutcome.PASS, say("serving.lines", lines="; ".join(lines)), lowest, threshold, evidence
    )


def collectives(campaign: Campaign, params: dict[str, Any], thresholds: judge.Thresholds) -> Judgement:
    """The target's collectives (all_reduce, all_gather, reduce_scatter, uneven all_to_all) give the
    float64 reference's answer on every device it declares; not applicable to a one-device target (the
    platform's registry says how many, not the document). Measured: the lowest bus bandwidth among the
    largest messages, in GB/s as nccl-tests defines it; no level sets a bandwidth bar yet."""
    devices = campaign.target.device_count
    if devices < 2:
        return Judgement(
            CriterionOutcome.NOT_APPLICABLE,
            say("collectives.one_device", devices=devices),
        )
    documents = _documents(campaign, JobSuite.COLLECTIVES)
    if not documents:
        return _fail(say("collectives.no_evidence", devices=devices))
    evidence: dict[str, Any] = {"documents": [_doc_ref(d) for d in documents], "devices": devices}
    summary = documents[-1].summary or {}
    total, passed = int(summary.get("total") or 0), int(summary.get("passed") or 0)
    rows = Measurement.objects.filter(document__in=documents, kind=judge.COLLECTIVE_KIND).order_by("id")
    largest: dict[str, tuple[int, float]] = {}
    # Stored rows keep the runner's params nested (judge.collective_figures reads both forms).
    for figure in judge.collective_figures(rows):
        size, op = figure.size_bytes, figure.op
        if figure.busbw_gbps is not None and (op not in largest or size >= largest[op][0]):
            largest[op] = (size, figure.busbw_gbps)
    evidence["busbw_gbps_largest"] = {op: value for op, (_size, value) in sorted(largest.items())}
    if total == 0 or passed != total:
        return _fail(
            say("collectives.fail", passed=passed, total=total, devices=devices),
            evidence=evidence,
        )
    lowest = min((value for _size, value in largest.values()), default=None)
    figures = ", ".join(f"{op} {value:.3g} GB/s" for op, (_size, value) in sorted(largest.items()))
    return Judgement(
        CriterionOutcome.PASS,
        say("collectives.pass", total=total, devices=devices, figures=figures),
        lowest,
        None,
        evidence,
    )


# AIA 1.2: programs without loopholes (issue 13) -------------------------------------------------


def _impossible_figures(campaign: Campaign, thresholds: judge.Thresholds) -> list[str]:
    """Every performance figure above the level's above-peak ratio of the declaration it is measured
    against: compute (GEMM, conv, attention) against the dtype's declared peak, bandwidth against the
    declared memory bandwidth. Figures no headline may use (unstable, refused) are left out, as in the
    best-GEMM rule."""
    from apps.runs.models import Job

    specs = list(Job.objects.filter(campaign=campaign).order_by("id").values_list("spec", flat=True))
    peaks = judge.declared_peaks_of_specs(specs)
    bandwidth = judge.declared_bandwidth_of_specs(specs)
    rows = Measurement.objects.filter(
        document__job__campaign=campaign,
        document__suite=JobSuite.PERFORMANCE,
        kind__in=(*judge.COMPUTE_KINDS, "bandwidth"),
        value__isnull=False,
    ).order_by("id")
    found = []
    for row in rows:
        if judge.measurement_exclusion(value=row.value, unstable=row.unstable, flags=row.flags):
            continue
        declared = bandwidth if row.kind == "bandwidth" else judge.peak_for(peaks, row.dtype)
        ratio = judge.peak_ratio(value=row.value, peak=declared)
        if judge.above_peak(ratio=ratio, thresholds=thresholds):
            found.append(f"{row.name} {row.dtype} {row.value:.4g} {row.unit} = {ratio:.0%} of {declared:g}")
    return found


def _server_verdicts_check(
    campaign: Campaign, documents: list[ResultDocument], thresholds: judge.Thresholds
) -> Judgement:
    """No server-side recomputation stored with a document disagrees with the runner."""
    problems = [
        say("fingerprint.job_problem", job=d.job_id, problem=problem)
        for d in documents
        for problem in judge.server_verdict_problems(d.spot_check)
    ]
    evidence = {"documents": [_doc_ref(d) for d in documents], "problems": problems}
    if problems:
        return _fail(
            say("server_verdicts.fail", problems="; ".join(problems[:6])),
            measured=float(len(problems)),
            threshold=0.0,
            evidence=evidence,
        )
    return Judgement(
        CriterionOutcome.PASS,
        say("server_verdicts.pass", count=len(documents)),
        0.0,
        0.0,
        evidence,
    )


LOOPHOLE_CHECKS = {"server_verdicts": _server_verdicts_check}


def semantic_cases(campaign: Campaign, params: dict[str, Any], thresholds: judge.Thresholds) -> Judgement:
    """Semantic cases (masking, causality, NaN/Inf propagation, overflow: judge.SemanticRule) of the
    dtypes pass in every kernel family, at most the level's failures per family (zero), whatever the
    overall pass rate: one attention that ignores its causal mask is a broken chip, not 1% of cases."""
    rule = judge.semantic_rule(thresholds.semantic_cases)
    if rule is None:
        return _fail(say("semantic.no_rule"))
    documents = _documents(campaign, JobSuite.CONFORMANCE)
    if not documents:
        return _fail(say("criterion.no_conformance"), threshold=float(rule.max_failures))
    rows = CaseResult.objects.filter(document__in=documents, dtype__in=params["dtypes"]).values_list(
        "kernel", "dtype", "case", "status"
    )
    tags_of: dict[tuple[str, str], tuple[str, ...]] = {}
    families: dict[str, dict[str, Any]] = {}
    for kernel, dtype, case, status in rows.iterator():
        key = (kernel, case)
        if key not in tags_of:
            tags_of[key] = judge.semantic_tags(kernel=kernel, case=case, rule=rule)
        if not tags_of[key]:
            continue
        family = families.setdefault(judge.kernel_family(kernel), {"cases": 0, "failed": []})
        family["cases"] += 1
        if status != "pass":
            family["failed"].append(f"{kernel}/{dtype}/{case} [{', '.join(tags_of[key])}]: {status}")
    evidence = {
        "documents": [_doc_ref(d) for d in documents],
        "families": families,
        "edges": sorted(rule.edges),
        "options": sorted(rule.options),
    }
    total = sum(f["cases"] for f in families.values())
    if total == 0:
        return _fail(
            say("semantic.none", dtypes=", ".join(params["dtypes"])),
            threshold=float(rule.max_failures),
            evidence=evidence,
        )
    failing = {name: f for name, f in families.items() if len(f["failed"]) > rule.max_failures}
    if failing:
        worst = max(len(f["failed"]) for f in failing.values())
        detail = "; ".join(f"{name}: {', '.join(f['failed'][:4])}" for name, f in sorted(failing.items()))
        return _fail(
            say("semantic.fail", families=len(failing), tolerated=rule.max_failures, details=detail),
            measured=float(worst),
            threshold=float(rule.max_failures),
            evidence=evidence,
        )
    return Judgement(
        CriterionOutcome.PASS,
        say("semantic.pass", total=total, families=len(families)),
        0.0,
        float(rule.max_failures),
        evidence,
    )


JUDGES: dict[str, Callable[[Campaign, dict[str, Any], judge.Thresholds], Judgement]] = {
    "conformance_pass_rate": conformance_pass_rate,
    "model_accuracy": model_accuracy,
    "model_architectures": model_architectures,
    "integrity": integrity,
    "claims": claims,
    "performance_stability": performance_stability,
    "serving": serving,
    "semantic_cases": semantic_cases,
    "collectives": collectives,
}


def criterion_judge(
    *, campaign: Campaign, criterion: dict[str, Any], thresholds: judge.Thresholds | None = None
) -> Judgement:
    """One criterion of the campaign's level, judged with the level's thresholds (judge.level_thresholds)."""
    kind_judge = JUDGES.get(criterion.get("kind"))
    if kind_judge is None:
        return _fail(say("criterion.unknown_kind", kind=repr(criterion.get("kind"))))
    try:
        thresholds = thresholds or judge.campaign_thresholds(campaign=campaign)
        return kind_judge(campaign, criterion.get("params") or {}, thresholds)
    except (KeyError, TypeError, ValueError) as exc:  # a malformed program is a failed criterion, not a crash
        return _fail(say("criterion.error", error=f"{type(exc).__name__}: {exc}"))
