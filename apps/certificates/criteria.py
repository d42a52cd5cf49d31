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

from django.db.models import Count

from apps.certificates.models import CriterionOutcome
from apps.runs.models import Campaign, CaseResult, Job, JobSuite, Measurement, ResultDocument

# The chip's declared-peak keys (registry PEAK_FIELDS) for the dtype names the runners use.
PEAK_KEY_OF_DTYPE = {
    "float32": "fp32",
    "tfloat32": "tf32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "float8_e4m3fn": "fp8",
    "float8_e5m2": "fp8",
    "int8": "int8",
}
# The accuracy metrics the model suite reports (runners/model_suite/workloads.py).
COSINE_METRICS = {"cosine_min"}
AGREEMENT_METRICS = {"greedy_token_agreement", "top1_agreement"}
# What the fingerprint of every document of one campaign must agree on.
FINGERPRINT_IDENTITY = (
    "backend",
    "device_name",
    "device_count",
    "driver_version",
    "runtime_version",
    "torch_version",
    "plugin_versions",
)


@dataclass
class Judgement:
    outcome: str
    explanation: str
    measured: float | None = None
    threshold: float | None = None
    evidence: dict = field(default_factory=dict)


def _doc_ref(document: ResultDocument) -> dict:
    return {"sha256": document.sha256, "job": document.job_id, "suite": document.suite}


def _documents(campaign: Campaign, suite: str | None = None) -> list[ResultDocument]:
    queryset = ResultDocument.objects.filter(job__campaign=campaign).select_related("job").order_by("job_id")
    return list(queryset.filter(suite=suite) if suite else queryset)


def _fail(explanation: str, **kwargs) -> Judgement:
    return Judgement(CriterionOutcome.FAIL, explanation, **kwargs)


def conformance_pass_rate(campaign: Campaign, params: dict) -> Judgement:
    """passed / (cases of the dtypes [and kernels] excluding status "unsupported") >= min_pass_rate."""
    threshold = float(params["min_pass_rate"])
    documents = _documents(campaign, JobSuite.CONFORMANCE)
    if not documents:
        return _fail("No accepted conformance evidence.", threshold=threshold)
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
            f"No supported cases of {', '.join(params['dtypes'])}.", threshold=threshold, evidence=evidence
        )
    rate = passed / judged
    # A level that names a dtype requires it: a device that supports none of its cases cannot pass
    # by leaving it out of the rate.
    unsupported = [d for d in params["dtypes"] if not any(n for status, n in counts.get(d, {}).items()
                                                          if status != "unsupported")]
    if unsupported:
        return _fail(
            f"{passed} of {judged} supported cases pass, but the device runs no case of "
            f"{', '.join(unsupported)}, which this level requires.",
            measured=rate, threshold=threshold, evidence=evidence,
        )
    if rate >= threshold:
        return Judgement(
            CriterionOutcome.PASS,
            f"{passed} of {judged} cases pass ({rate:.2%}).",
            rate,
            threshold,
            evidence,
        )
    return _fail(
        f"{passed} of {judged} cases pass ({rate:.2%}), below {threshold:.2%}.",
        measured=rate,
        threshold=threshold,
        evidence=evidence,
    )


def _measurement_model(row: Measurement) -> str:
    params = row.params or {}
    nested = params.get("params") if isinstance(params.get("params"), dict) else {}
    return str(params.get("model") or nested.get("model") or row.name.removesuffix(" accuracy"))


def _runner_threshold(row: Measurement) -> float | None:
    params = row.params or {}
    nested = params.get("params") if isinstance(params.get("params"), dict) else {}
    value = params.get("threshold", nested.get("threshold"))
    return float(value) if isinstance(value, int | float) else None


def _why(verdict: dict) -> str:
    if verdict.get("reason"):
        return verdict["reason"]
    return f"{verdict['metric']} {verdict['value']} below {verdict['threshold']}"


def model_accuracy(campaign: Campaign, params: dict) -> Judgement:
    """Every (models=all) or some (models=any) model job reaches the program's accuracy bar in `dtype`.

    Embeddings are judged by their minimum cosine similarity to the float64 reference (min_cosine);
    decoders and classifiers by top-1 agreement with it (min_agreement, else the runner's bar).
    """
    dtype, min_cosine = params["dtype"], float(params["min_cosine"])
    min_agreement = params.get("min_agreement")
    jobs = list(
        Job.objects.filter(campaign=campaign, suite=JobSuite.MODEL).select_related("model").order_by("id")
    )
    if not jobs:
        return _fail("The campaign ran no model.", threshold=min_cosine)
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
                    "reason": f"no {dtype} accuracy evidence (job {job.state})",
                }
            )
            continue
        for row in by_job[job.pk]:
            documents.append(_doc_ref(row.document))
            if row.unit in COSINE_METRICS:
                bar = min_cosine
            elif row.unit in AGREEMENT_METRICS:
                bar = float(min_agreement) if min_agreement is not None else _runner_threshold(row)
            else:
                bar = _runner_threshold(row)
            passed = row.value is not None and bar is not None and row.value >= bar
            verdicts.append(
                {
                    "model": label,
                    "job": job.pk,
                    "name": _measurement_model(row),
                    "metric": row.unit,
                    "value": row.value,
                    "threshold": bar,
                    "passed": passed,
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
    failing = "; ".join(f"{v['model']}: {_why(v)}" for v in verdicts if not v["passed"])
    summary = f"{len(passing)} of {len(verdicts)} model(s) reach the {dtype} accuracy bar ({mode} required)."
    evidence = {"documents": documents, "models": verdicts}
    if ok:
        return Judgement(CriterionOutcome.PASS, summary, measured, threshold, evidence)
    return _fail(f"{summary} {failing}", measured=measured, threshold=threshold, evidence=evidence)


def _integrity_verdicts(document: ResultDocument, check: str) -> list[dict]:
    integrity = document.integrity or {}
    names = {"output_consistency": ("output_consistency", "consistency"), "caching": ("caching",)}[check]
    found: list[dict] = []
    for name in names:
        value = integrity.get(name)
        items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
        found.extend(item for item in items if isinstance(item, dict))
    return found


def integrity(campaign: Campaign, params: dict) -> Judgement:
    """fingerprint: every accepted document's fingerprint (verified at ingestion) names one device;
    output_consistency / caching: every TEST01 / TEST04 verdict of the documents is "pass"."""
    check = params["check"]
    documents = _documents(campaign)
    if not documents:
        return _fail("No accepted evidence.")
    if check == "fingerprint":
        identities = {
            tuple(str((d.fingerprint or {}).get(k)) for k in FINGERPRINT_IDENTITY) for d in documents
        }
        evidence = {
            "documents": [_doc_ref(d) for d in documents],
            "fingerprint": {k: (documents[0].fingerprint or {}).get(k) for k in FINGERPRINT_IDENTITY},
        }
        if len(identities) != 1:
            return _fail(
                "The documents of this campaign report different devices or software stacks.",
                measured=float(len(identities)),
                threshold=1.0,
                evidence=evidence,
            )
        return Judgement(
            CriterionOutcome.PASS,
            f"{len(documents)} document(s) accepted; each fingerprint matched the registered target.",
            float(len(documents)),
            None,
            evidence,
        )
    if check not in {"output_consistency", "caching"}:
        return _fail(f"Unknown integrity check {check!r}.")
    verdicts = [
        {
            "document": d.sha256,
            "job": d.job_id,
            **{k: v.get(k) for k in ("verdict", "model", "dtype", "speedup_ratio", "mismatches")},
        }
        for d in documents
        for v in _integrity_verdicts(d, check)
    ]
    refs = [_doc_ref(d) for d in documents if any(v["document"] == d.sha256 for v in verdicts)]
    evidence = {"documents": refs, "verdicts": verdicts}
    if not verdicts:
        return _fail(
            f"No {check.replace('_', ' ')} verdict in the evidence.", threshold=1.0, evidence=evidence
        )
    passing = [v for v in verdicts if v["verdict"] == "pass"]
    rate = len(passing) / len(verdicts)
    if len(passing) == len(verdicts):
        return Judgement(
            CriterionOutcome.PASS,
            f"All {len(verdicts)} {check.replace('_', ' ')} verdicts pass.",
            rate,
            1.0,
            evidence,
        )
    failed = ", ".join(
        f"{v.get('model') or 'performance'} {v.get('dtype') or ''}".strip()
        for v in verdicts
        if v["verdict"] != "pass"
    )
    return _fail(
        f"{len(verdicts) - len(passing)} of {len(verdicts)} {check.replace('_', ' ')} verdicts fail: "
        f"{failed}.",
        measured=rate,
        threshold=1.0,
        evidence=evidence,
    )


def claims(campaign: Campaign, params: dict) -> Judgement:
    """Best GEMM efficiency (achieved / declared peak) per dtype with a declared peak >= min_ratio;
    a GEMM above the declared peak by more than 10% means a wrong declaration or a cheated timing."""
    threshold = float(params["min_ratio"])
    declared = campaign.target.chip.declared_peaks()
    level = campaign.program.level(campaign.level) or {}
    planned = (level.get("suites", {}).get("performance") or {}).get("dtypes") or []
    dtypes = [d for d in planned if PEAK_KEY_OF_DTYPE.get(d) in declared]
    if not dtypes:
        return Judgement(
            CriterionOutcome.NOT_APPLICABLE,
            "The chip declares no peak for the measured dtypes.",
            threshold=threshold,
        )
    rows = Measurement.objects.filter(
        document__job__campaign=campaign,
        document__suite=JobSuite.PERFORMANCE,
        kind="gemm",
        dtype__in=dtypes,
        efficiency__isnull=False,
    ).select_related("document")
    best: dict[str, Measurement] = {}
    for row in rows:
        if row.dtype not in best or row.efficiency > best[row.dtype].efficiency:
            best[row.dtype] = row
    per_dtype = {
        d: {
            "declared_peak_tflops": declared[PEAK_KEY_OF_DTYPE[d]],
            "best_gemm_tflops": best[d].value if d in best else None,
            "best_gemm_efficiency": best[d].efficiency if d in best else None,
            "measurement": best[d].name if d in best else None,
        }
        for d in dtypes
    }
    evidence = {
        "documents": sorted({(r.document.sha256, r.document.job_id) for r in best.values()}),
        "dtypes": per_dtype,
    }
    evidence["documents"] = [
        {"sha256": s, "job": j, "suite": JobSuite.PERFORMANCE} for s, j in evidence["documents"]
    ]
    missing = [d for d in dtypes if d not in best]
    if missing:
        return _fail(f"No GEMM measurement for {', '.join(missing)}.", threshold=threshold, evidence=evidence)
    worst = min(best[d].efficiency for d in dtypes)
    low = [f"{d} {best[d].efficiency:.0%}" for d in dtypes if best[d].efficiency < threshold]
    above = [f"{d} {best[d].efficiency:.0%}" for d in dtypes if best[d].efficiency > 1.10]
    if low:
        return _fail(
            f"Best GEMM below {threshold:.0%} of the declared peak: {', '.join(low)}.",
            measured=worst,
            threshold=threshold,
            evidence=evidence,
        )
    if above:
        return _fail(
            f"Best GEMM above 110% of the declared peak (declaration or timing not credible): "
            f"{', '.join(above)}.",
            measured=worst,
            threshold=threshold,
            evidence=evidence,
        )
    return Judgement(
        CriterionOutcome.PASS,
        "Best GEMM per dtype: "
        + ", ".join(f"{d} {best[d].efficiency:.0%} of declared" for d in dtypes)
        + ".",
        worst,
        threshold,
        evidence,
    )


def performance_stability(campaign: Campaign, params: dict) -> Judgement:
    """The fraction of timed measurements flagged unstable (noisy timing) is at most max_unstable_fraction."""
    threshold = float(params["max_unstable_fraction"])
    rows = Measurement.objects.filter(document__job__campaign=campaign, median__isnull=False)
    total = rows.count()
    if total == 0:
        return _fail("No timed measurement in the evidence.", threshold=threshold)
    unstable = rows.filter(unstable=True).count()
    fraction = unstable / total
    documents = [
        _doc_ref(d)
        for d in ResultDocument.objects.filter(pk__in=rows.values("document_id"))
        .select_related("job")
        .order_by("job_id")
    ]
    evidence = {"documents": documents, "unstable": unstable, "timed": total}
    text = f"{unstable} of {total} timed measurements unstable ({fraction:.1%}; at most {threshold:.0%})."
    if fraction <= threshold:
        return Judgement(CriterionOutcome.PASS, text, fraction, threshold, evidence)
    return _fail(text, measured=fraction, threshold=threshold, evidence=evidence)


JUDGES: dict[str, Callable[[Campaign, dict], Judgement]] = {
    "conformance_pass_rate": conformance_pass_rate,
    "model_accuracy": model_accuracy,
    "integrity": integrity,
    "claims": claims,
    "performance_stability": performance_stability,
}


def criterion_judge(*, campaign: Campaign, criterion: dict) -> Judgement:
    judge = JUDGES.get(criterion.get("kind"))
    if judge is None:
        return _fail(f"Unknown criterion kind {criterion.get('kind')!r}.")
    try:
        return judge(campaign, criterion.get("params") or {})
    except (KeyError, TypeError, ValueError) as exc:  # a malformed program is a failed criterion, not a crash
        return _fail(f"The criterion could not be evaluated: {type(exc).__name__}: {exc}")
