"""The evidence of one campaign, shaped for its portal page: heatmap, roofline, latencies, accuracy,
integrity and the anomalies a reviewer must look at. A fixed number of queries whatever the size
of the evidence: cases and measurements are read as rows once and grouped here."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.text import Truncator
from django.utils.translation import gettext

from apps.certificates import judge
from apps.certificates.models import CriterionResult
from apps.portal.charts import (
    LatencyRow,
    Roof,
    RooflinePoint,
    heat_class,
    latency_svg,
    roofline_svg,
)
from apps.runs.models import (
    Campaign,
    CaseResult,
    EvidenceRejection,
    Job,
    JobState,
    JobSuite,
    Measurement,
    OutputReveal,
    ResultDocument,
)
from certification.recorded_tags import recorded
from certification.recorded_text import localize, say

ROOFLINE_KINDS = ("gemm", "attention", "conv")


@dataclass
class HeatCell:
    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    unsupported: int = 0
    worst_ratio: float | None = None
    worst_case: str = ""

    @property
    def css(self) -> str:
        if self.total and self.unsupported == self.total:
            return "heat-unsupported"
        return heat_class(self.worst_ratio, failed=self.failed, errors=self.errors, total=self.total)

    @property
    def label(self) -> str:
        if self.failed or self.errors:
            return f"{self.failed + self.errors}/{self.total} fail"
        if self.total and self.unsupported == self.total:
            return "n/a"
        return f"{self.worst_ratio:.2f}" if self.worst_ratio is not None else "pass"


@dataclass
class Heatmap:
    dtypes: list[str]
    rows: list[tuple[str, list[HeatCell | None]]]


@dataclass
class Anomaly:
    severity: str  # "bad" or "warn"
    text: str


@dataclass
class DocumentCheck:
    document: ResultDocument
    job: Job
    fingerprint_mismatches: list[str]
    integrity: list[tuple[str, str, str]]  # (check, verdict, detail)
    spot_failures: list[Any]
    spot_sampled: int
    reveal: object | None = None  # the document's commit–reveal round (OutputReveal), if one was drawn
    reveal_problem: str | None = None


@dataclass
class CollectivesEvidence:
    """The scale-out suite's figures (issue 16) on the devices the target declares; none with one
    device, where no collective exists to measure (not applicable)."""

    devices: int
    interconnect: str
    applicable: bool
    figures: list[judge.CollectiveFigure] = field(default_factory=list)


@dataclass
class Evidence:
    heatmap: Heatmap | None = None
    roofline: str = ""
    roofline_rows: list[dict[str, Any]] = field(default_factory=list)
    latency: str = ""
    latency_rows: list[LatencyRow] = field(default_factory=list)
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    model_perf: list[Measurement] = field(default_factory=list)
    # Serving (MLPerf LoadGen) figures, each with LoadGen's verdict and the judge's: certifiable or why not.
    serving: list[dict[str, Any]] = field(default_factory=list)
    documents: list[DocumentCheck] = field(default_factory=list)
    rejections: list[EvidenceRejection] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    # The collectives suite's algbw / busbw per op and size, where the campaign has a collectives job.
    collectives: CollectivesEvidence | None = None
    # (threshold, value, source): the level's bars every verdict on this page was judged by.
    thresholds: list[tuple[str, str, str]] = field(default_factory=list)


def case_ratio(case: CaseResult) -> float | None:
    """Worst error as a fraction of the allclose tolerance (atol + rtol * |reference|); 1.0 means the
    case sits exactly on its tolerance.

    The runner measures it element by element (`tolerance_ratio`). Older documents keep only the worst
    absolute and worst relative errors: at the element of the worst relative error |reference| =
    max_abs / max_rel gives a budget, and the result over-estimates when the two come from different
    elements."""
    if case.tolerance_ratio is not None:
        return case.tolerance_ratio  # measured per element by the runner
    if case.max_abs is None or case.atol is None:
        return None
    # Documents from before the runner measured it: an upper estimate.
    reference = case.max_abs / case.max_rel if case.max_rel else 0.0
    budget = case.atol + (case.rtol or 0.0) * reference
    return case.max_abs / budget if budget > 0 else None


def _heatmap(cases: list[CaseResult], anomalies: list[Anomaly]) -> Heatmap | None:
    if not cases:
        return None
    cells: dict[tuple[str, str], HeatCell] = defaultdict(HeatCell)
    for case in cases:
        cell = cells[(case.kernel, case.dtype)]
        cell.total += 1
        if case.status == "pass":
            cell.passed += 1
        elif case.status == "fail":
            cell.failed += 1
        elif case.status == "unsupported":
            cell.unsupported += 1
        else:
            cell.errors += 1
        ratio = case_ratio(case)
        if ratio is not None and (cell.worst_ratio is None or ratio > cell.worst_ratio):
            cell.worst_ratio, cell.worst_case = ratio, case.case
    dtypes = sorted({dtype for _, dtype in cells})
    kernels = sorted({kernel for kernel, _ in cells})
    rows = [(kernel, [cells.get((kernel, dtype)) for dtype in dtypes]) for kernel in kernels]
    bad = [(k, d, c) for (k, d), c in cells.items() if c.failed or c.errors]
    if bad:
        names = ", ".join(f"{k}/{d}" for k, d, _ in sorted(bad)[:8])
        anomalies.append(
            Anomaly(
                "bad",
                gettext("Conformance failures in %(count)s kernel x dtype cell(s): %(names)s.")
                % {"count": len(bad), "names": names},
            )
        )
    return Heatmap(dtypes=dtypes, rows=rows)


def _roofline(
    campaign: Campaign,
    measurements: list[Measurement],
    anomalies: list[Anomaly],
    *,
    peaks: dict[str, float],
    thresholds: judge.Thresholds,
) -> tuple[str, list[dict[str, Any]]]:
    """Roofline against the peaks declared at submission; "above" is the judge's above-peak rule."""
    chip = campaign.target.chip
    points, rows, dtypes = [], [], set()
    for m in measurements:
        if m.kind not in ROOFLINE_KINDS or not m.value:
            continue
        inner = (m.params or {}).get("params", {})
        inner = inner if isinstance(inner, dict) else {}
        flops, moved = inner.get("flops"), inner.get("bytes")
        flops = flops if isinstance(flops, int | float) else None
        moved = moved if isinstance(moved, int | float) else None
        peak = judge.peak_for(peaks, m.dtype)
        ratio = judge.peak_ratio(value=m.value, peak=peak)
        above = judge.above_peak(ratio=ratio, thresholds=thresholds)
        if above:
            anomalies.append(
                Anomaly(
                    "bad",
                    gettext(
                        "%(name)s (%(dtype)s) measured %(value)s TFLOP/s, %(ratio)s x the declared peak "
                        "%(peak)s, above the credible %(credible)s."
                    )
                    % {
                        "name": m.name,
                        "dtype": m.dtype,
                        "value": f"{m.value:.4g}",
                        "ratio": f"{ratio:.2f}",
                        "peak": f"{peak:.4g}",
                        "credible": f"{thresholds.above_peak_ratio:.2f}",
                    },
                )
            )
        rows.append(
            {
                "m": m,
                "peak": peak,
                "ratio": ratio,
                "above": above,
                "intensity": (flops / moved) if flops and moved else None,
            }
        )
        if flops and moved:
            points.append(
                RooflinePoint(m.name, m.dtype, flops / moved, m.value, anomalous=above, unstable=m.unstable)
            )
            dtypes.add(m.dtype)
    roofs = [
        Roof(dtype, peak) for dtype in sorted(dtypes) if (peak := judge.peak_for(peaks, dtype)) is not None
    ]
    return roofline_svg(points=points, roofs=roofs, bandwidth_gbs=chip.memory_bandwidth_gbs), rows


def _latencies(measurements: list[Measurement]) -> list[LatencyRow]:
    rows = []
    for m in measurements:
        if m.median is None or m.p90 is None or m.p99 is None:
            continue
        label = f"{m.name} {m.dtype}".strip()
        rows.append(LatencyRow(label, m.dtype, m.median * 1000, m.p90 * 1000, m.p99 * 1000, m.cv, m.unstable))
    return rows


def _accuracy(
    measurements: list[Measurement], anomalies: list[Anomaly], thresholds: judge.Thresholds
) -> list[dict[str, Any]]:
    """Accuracy rows against the level's bar for their dtype and metric (judge.accuracy_bar)."""
    rows = []
    for m in measurements:
        if m.kind != "accuracy":
            continue
        inner = (m.params or {}).get("params", {})
        inner = inner if isinstance(inner, dict) else {}
        threshold = judge.accuracy_bar(
            thresholds=thresholds,
            dtype=m.dtype,
            metric=m.unit,
            runner_threshold=judge.runner_threshold_of(m.params),
        )
        ok = None if m.value is None else judge.accuracy_passes(value=m.value, bar=threshold)
        rows.append({"m": m, "model": inner.get("model", m.name), "threshold": threshold, "ok": ok})
        if ok is False:
            bar = "no bar in the program" if threshold is None else f"below {threshold}"
            anomalies.append(Anomaly("bad", f"{m.name} ({m.dtype}) {m.unit} {m.value:.6g} is {bar}."))
    return rows


def _serving(measurements: list[Measurement], thresholds: judge.Thresholds) -> list[dict[str, Any]]:
    """One row per serving figure: scenario, bound, LoadGen's Result, and whether the level may
    certify it (judge.serving_figure_problem); the Server rows carry their QPS search steps."""
    rows = []
    for m in measurements:
        if m.kind not in (*judge.SERVING_FIGURE_KINDS, "serving_accuracy", "energy") or (
            m.kind == "energy" and m.document.suite != JobSuite.SERVING
        ):
            continue
        params = judge.serving_params({"params": m.params})
        problem = None
        if m.kind in judge.SERVING_FIGURE_KINDS:
            problem = judge.serving_figure_problem(
                value=m.value, flags=m.flags, params=params, thresholds=thresholds
            )
        raw_energy = params.get("energy")
        energy: dict[str, Any] = raw_energy if isinstance(raw_energy, dict) else {}
        # A Server run's bound is what LoadGen judged (judge.serving_bound): one latency bound, or TTFT
        # and TPOT for a decoder; none is shown where its digested summary does not state it.
        bound = judge.serving_bound(params)[0] if params.get("scenario") == "Server" else None
        rows.append(
            {
                "m": m,
                "model": params.get("model", m.name),
                "scenario": params.get("scenario", ""),
                "percentile": params.get("percentile"),
                "bound_ms": bound.latency_ms if bound is not None else None,
                "ttft_bound_ms": bound.ttft_ms if bound is not None else None,
                "tpot_bound_ms": bound.tpot_ms if bound is not None else None,
                "valid": params.get("result_valid"),
                "problem": problem,
                "steps": params.get("steps") or [],
                "energy_reason": energy.get("reason") if m.kind == "energy" else None,
            }
        )
    return rows


def _timing_rows(
    job: Job,
    document: ResultDocument,
    measurements: list[Measurement],
    thresholds: judge.Thresholds,
    anomalies: list[Anomaly],
) -> list[tuple[str, str, str]]:
    """The clock cross-check as the judge reads each measurement's raw clock figures (judge.timing_verdicts)."""
    items = [
        {
            "name": m.name,
            "dtype": m.dtype,
            "timing_method": (m.params or {}).get("timing_method"),
            "clock": (m.params or {}).get("clock"),
        }
        for m in measurements
        if m.document_id == document.pk
    ]
    integrity = document.integrity if isinstance(document.integrity, dict) else {}
    verdicts = judge.timing_verdicts(measurements=items, integrity=integrity, thresholds=thresholds)
    if not verdicts:
        return [("timing", "not applicable", say("timing.row_not_applicable"))] if items else []
    failing = [v for v in verdicts if not v.passed]
    for verdict in failing[:6]:
        anomalies.append(
            Anomaly(
                "bad",
                gettext("Integrity check %(check)s of job %(job)s (%(suite)s): %(detail)s.")
                % {"check": "timing", "job": job.pk, "suite": job.suite, "detail": localize(verdict.detail)},
            )
        )
    detail = (
        "; ".join(v.detail for v in failing[:3])
        if failing
        else say(
            "timing.row_pass",
            count=len(verdicts),
            bounds=f"{thresholds.clock_ratio_min:g}-{thresholds.clock_ratio_max:g}",
        )
    )
    return [("timing", "fail" if failing else "pass", detail)]


def _integrity_rows(
    job: Job,
    document: ResultDocument,
    thresholds: judge.Thresholds,
    anomalies: list[Anomaly],
    measurements: Sequence[Measurement] = (),
) -> list[tuple[str, str, str]]:
    """(check, verdict, detail) per TEST01 / TEST04 result and the clock cross-check as the judge
    reads their raw figures; any other section of the document is shown as the runner reported it."""
    rows = []
    integrity = document.integrity if isinstance(document.integrity, dict) else {}
    known = {name for names in judge.INTEGRITY_NAMES.values() for name in names} | {"timing"}
    rows += _timing_rows(job, document, list(measurements), thresholds, anomalies)
    for check in judge.INTEGRITY_NAMES:
        for verdict in judge.integrity_verdicts(integrity=integrity, check=check, thresholds=thresholds):
            outcome = "pass" if verdict.passed else "fail"
            label = (
                verdict.item.get("benchmark") or verdict.item.get("model") or verdict.item.get("suite") or ""
            )
            rows.append((f"{gettext(check.replace('_', ' '))} {label}".strip(), outcome, verdict.detail))
            if not verdict.passed:
                anomalies.append(
                    Anomaly(
                        "bad",
                        gettext("Integrity check %(check)s of job %(job)s (%(suite)s): %(detail)s.")
                        % {
                            "check": check,
                            "job": job.pk,
                            "suite": job.suite,
                            "detail": localize(verdict.detail),
                        },
                    )
                )
    for name, value in sorted(integrity.items()):
        if name in known:
            continue
        outcome = str(value.get("verdict", "?")) if isinstance(value, dict) else str(value)
        rows.append((name, outcome, ""))
        if outcome not in ("pass", "skipped"):
            anomalies.append(
                Anomaly(
                    "bad",
                    gettext("Integrity check %(check)s of job %(job)s (%(suite)s): %(detail)s.")
                    % {"check": name, "job": job.pk, "suite": job.suite, "detail": outcome},
                )
            )
    return rows


def _document_checks(
    campaign: Campaign,
    jobs: list[Job],
    anomalies: list[Anomaly],
    thresholds: judge.Thresholds,
    measurements: Sequence[Measurement] = (),
) -> list[DocumentCheck]:
    # The documents with the runner that signed each (the jobs' prefetch brings the documents alone).
    documents = {
        d.job_id: d for d in ResultDocument.objects.filter(job__campaign=campaign).select_related("runner")
    }
    reveals = {r.document_id: r for r in OutputReveal.objects.filter(job__campaign=campaign)}
    checks = []
    for job in jobs:
        document = documents.get(job.pk)
        if document is None:
            continue
        # The comparison ingestion applies (runners/fingerprint_check.py), against the registered target.
        fingerprint_mismatches = judge.fingerprint_problems(
            fingerprint=document.fingerprint, target=campaign.target
        )
        integrity = _integrity_rows(job, document, thresholds, anomalies, measurements)
        spot_check = document.spot_check if isinstance(document.spot_check, dict) else {}
        spot_failures = spot_check.get("failures") or []
        sampled = spot_check.get("sampled", 0)
        sampled = len(sampled) if isinstance(sampled, list) else int(sampled or 0)
        if spot_failures:
            anomalies.append(
                Anomaly(
                    "bad",
                    gettext("Server-side spot check of job %(job)s: %(count)s case(s) disagree.")
                    % {"job": job.pk, "count": len(spot_failures)},
                )
            )
        if fingerprint_mismatches:
            anomalies.append(
                Anomaly(
                    "bad",
                    gettext("Job %(job)s fingerprint differs from the registered target: %(problems)s.")
                    % {"job": job.pk, "problems": "; ".join(localize(p) for p in fingerprint_mismatches)},
                )
            )
        reveal = reveals.get(document.pk)
        reveal_problem = judge.reveal_problem(
            state=reveal.state if reveal else None,
            findings=reveal.findings if reveal else [],
            sample_size=thresholds.reveal_sample_size,
        )
        if reveal_problem:
            anomalies.append(
                Anomaly(
                    "bad",
                    gettext("Product integrity (commit and reveal) of job %(job)s: %(problem)s.")
                    % {"job": job.pk, "problem": localize(reveal_problem)},
                )
            )
        checks.append(
            DocumentCheck(
                document,
                job,
                fingerprint_mismatches,
                integrity,
                spot_failures,
                sampled,
                reveal,
                reveal_problem,
            )
        )
    return checks


def campaign_evidence(*, campaign: Campaign, criteria: list[CriterionResult]) -> Evidence:
    """The campaign's evidence for its page. Expects `campaign` from campaigns_visible_to (jobs,
    their runner and document prefetched); reads cases, measurements and rejections once each."""
    jobs = list(campaign.jobs.all())
    anomalies: list[Anomaly] = []
    for result in criteria:
        if result.outcome == "fail" and not result.waived:
            severity = "bad" if result.blocker else "warn"
            text = (
                gettext("Blocker %(id)s failed: %(explanation)s")
                if result.blocker
                else gettext("Criterion %(id)s failed: %(explanation)s")
            )
            explanation = recorded(result.explanation, result.evidence)
            anomalies.append(
                Anomaly(severity, text % {"id": result.criterion_id, "explanation": explanation})
            )
    for job in jobs:
        if job.state == JobState.FAILED:
            anomalies.append(
                Anomaly(
                    "bad",
                    gettext("Job %(job)s (%(suite)s) failed: %(error)s %(message)s")
                    % {
                        "job": job.pk,
                        "suite": job.suite,
                        "error": job.get_error_class_display(),
                        "message": Truncator(localize(job.error_message)).chars(200),
                    },
                )
            )
    cases = list(
        CaseResult.objects.filter(document__job__campaign=campaign)
        .only(
            "document__suite",
            "kernel",
            "dtype",
            "case",
            "status",
            "max_abs",
            "max_rel",
            "tolerance_ratio",
            "atol",
            "rtol",
        )
        .select_related("document")
        .order_by("id")
    )
    # Model documents carry cases too (one per model and dtype); only conformance makes the heatmap.
    model_cases = [c for c in cases if c.document.suite != JobSuite.CONFORMANCE]
    cases = [c for c in cases if c.document.suite == JobSuite.CONFORMANCE]
    broken = sorted(
        {f"{c.kernel}/{c.dtype} {c.status}" for c in model_cases if c.status not in ("pass", "unsupported")}
    )
    if broken:
        anomalies.append(Anomaly("bad", f"Model runs that did not pass: {', '.join(broken[:8])}."))
    measurements = list(
        Measurement.objects.filter(document__job__campaign=campaign)
        .select_related("document")
        .order_by("document__job_id", "id")
    )
    thresholds = judge.campaign_thresholds(campaign=campaign)
    peaks = judge.declared_peaks_of_specs(job.spec for job in jobs)  # frozen at submission
    evidence = Evidence()
    evidence.thresholds = [
        (name, json.dumps(getattr(thresholds, name), sort_keys=True), thresholds.sources.get(name, ""))
        for name in sorted(thresholds.sources)
    ]
    evidence.heatmap = _heatmap(cases, anomalies)
    evidence.roofline, evidence.roofline_rows = _roofline(
        campaign, measurements, anomalies, peaks=peaks, thresholds=thresholds
    )
    evidence.latency_rows = _latencies(measurements)
    evidence.latency = latency_svg(evidence.latency_rows)
    evidence.accuracy = _accuracy(measurements, anomalies, thresholds)
    evidence.serving = _serving(measurements, thresholds)
    evidence.model_perf = [
        m
        for m in measurements
        if m.kind
        not in (
            *ROOFLINE_KINDS,
            "accuracy",
            "bandwidth",
            *judge.SERVING_FIGURE_KINDS,
            "serving_accuracy",
            judge.COLLECTIVE_KIND,
        )
        and not (m.kind == "energy" and m.document.suite == JobSuite.SERVING)
    ]
    evidence.roofline_rows += [
        {"m": m, "peak": None, "ratio": None, "above": False, "intensity": None}
        for m in measurements
        if m.kind == "bandwidth"
    ]
    if any(job.suite == JobSuite.COLLECTIVES for job in jobs):
        devices = campaign.target.device_count
        evidence.collectives = CollectivesEvidence(
            devices=devices,
            interconnect=campaign.target.interconnect,
            applicable=devices >= 2,
            figures=judge.collective_figures(measurements) if devices >= 2 else [],
        )
    unstable = [m for m in measurements if m.unstable]
    if unstable:
        anomalies.append(
            Anomaly(
                "warn",
                gettext("%(count)s measurement(s) unstable (high coefficient of variation): %(names)s.")
                % {"count": len(unstable), "names": ", ".join(f"{m.name} {m.dtype}" for m in unstable[:6])},
            )
        )
    flagged = [m for m in measurements if any(flag != "unavailable" for flag in (m.flags or []))]
    for m in flagged:
        anomalies.append(
            Anomaly(
                "warn",
                gettext("%(name)s (%(dtype)s) flagged: %(flags)s.")
                % {"name": m.name, "dtype": m.dtype, "flags": ", ".join(map(str, m.flags))},
            )
        )
    evidence.documents = _document_checks(campaign, jobs, anomalies, thresholds, measurements)
    evidence.rejections = list(
        EvidenceRejection.objects.filter(job__campaign=campaign).order_by("-received_at")
    )
    for rejection in evidence.rejections:
        anomalies.append(
            Anomaly(
                "warn",
                gettext("Evidence of job %(job)s was rejected: %(reason)s")
                % {"job": rejection.job_id, "reason": Truncator(localize(rejection.reason)).chars(200)},
            )
        )
    evidence.anomalies = sorted(anomalies, key=lambda a: a.severity != "bad")
    return evidence
