"""Evidence for certificate tests, made as database rows (campaign, jobs, accepted documents, cases,
measurements) without runners: each test states the figures it needs and nothing else."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from pathlib import Path

from django.utils import timezone

from apps.runs.models import (
    Campaign,
    CampaignState,
    CaseResult,
    Job,
    JobState,
    JobSuite,
    Measurement,
    OutputReveal,
    Program,
    ResultDocument,
    RevealState,
)
from apps.runs.services.programs import PROGRAMS_DIR, program_load
from runners.math_modes import PINNED
from runners.suites import COMMITTING_SUITES
from tests.factories import HardwareTargetFactory, ModelArtifactFactory, RunnerFactory

_documents = itertools.count(1)
FINGERPRINT = {
    "backend": "cuda",
    "available": True,
    "device_name": "Accelerator X",
    "device_count": 1,
    "capability": "9.0",
    "driver_version": "550.54",
    "runtime_version": "12.4",
    "torch_version": "2.4.0",
    "plugin_versions": {},
    "host_cpu": "Xeon 8480",
    "os": "Linux",
    "python": "3.11.9",
}
GOOD_CONFORMANCE = {
    "float32": {"pass": 200},
    "bfloat16": {"pass": 200},
    "float16": {"pass": 200},
    "int8": {"pass": 100},
}


def loadgen_summaries(
    *, target_qps: float, completed: float, offline: float, latency_bound_ms: float = 100.0
) -> dict[str, object]:
    """A Server figure's LoadGen summaries in LoadGen's own format (the lines judge.serving_rate_problem
    and judge.serving_bound read), with their digests: a Server run at ``target_qps`` (scheduled at that
    rate) that completed ``completed`` samples/s, judged by ``latency_bound_ms`` (every percentile row
    LoadGen prints at half of it), and the same model's Offline run at ``offline`` samples/s."""
    rows = "".join(
        f"{p:.2f} percentile latency (ns)   : {int(latency_bound_ms * 1e6 / 2)}\n"
        for p in (50, 90, 95, 97, 99, 99.9)
    )
    server = (
        "MLPerf Results Summary\nSUT name : PySUT\nScenario : Server\nMode     : PerformanceOnly\n"
        f"Completed samples per second    : {completed:.2f}\nResult is : VALID\n"
        f"Additional Stats\nScheduled samples per second : {target_qps:.2f}\n{rows}"
        f"Test Parameters Used\ntarget_qps : {target_qps:g}\ntarget_latency (ns): {int(latency_bound_ms * 1e6)}\n"
    )
    offline_text = (
        "MLPerf Results Summary\nSUT name : PySUT\nScenario : Offline\nMode     : PerformanceOnly\n"
        f"Samples per second: {offline:g}\nResult is : VALID\n"
    )
    return {
        "loadgen_summary": server,
        "summary_sha256": hashlib.sha256(server.encode()).hexdigest(),
        "offline_summary": offline_text,
        "offline_summary_sha256": hashlib.sha256(offline_text.encode()).hexdigest(),
    }


def aia_definition() -> dict:
    return json.loads(Path(PROGRAMS_DIR, "aia-1.0.json").read_text())


def aia_program(**changes) -> Program:
    """AIA 1.0 as shipped, or a variant (another version) with top-level fields changed."""
    definition = aia_definition()
    if changes:
        definition = copy.deepcopy(definition)
        definition.update(changes)
        definition.setdefault("version", "1.0")
    program, _ = program_load(definition=definition)
    return program


def _document(
    job: Job, runner, *, integrity: dict | None = None, fingerprint: dict | None = None
) -> ResultDocument:
    digest = hashlib.sha256(f"document-{next(_documents)}-{job.pk}".encode()).hexdigest()
    document = ResultDocument.objects.create(
        job=job,
        sha256=digest,
        size=1024,
        content=f"results/{digest[:2]}/{digest}.json",
        signature="c2ln",
        runner=runner,
        key_id=runner.key_id,
        suite=job.suite,
        fingerprint=fingerprint or dict(FINGERPRINT),
        summary={},
        integrity=integrity or {},
        spot_check={"sampled": 5, "failures": []},
    )
    if job.suite in COMMITTING_SUITES:
        # Its commit–reveal round, settled as an honest runner's is (AIA 1.2's reveal blocker reads it).
        OutputReveal.objects.create(
            document=document,
            job=job,
            state=RevealState.VERIFIED,
            rule="uniform",
            sample_size=1,
            committed=1,
            requested=[f"{job.suite}/output"],
            checked=[{"id": f"{job.suite}/output", "digest_matches": True, "agrees": True}],
            deadline_at=timezone.now(),
            answered_at=timezone.now(),
        )
    return document


def _integrity_figures(name: str, verdict: str) -> dict:
    """A TEST01 / TEST04 result with the raw figures the runner reports, failing when `verdict` says so."""
    passed = verdict == "pass"
    if name == "caching":
        repeated = 0.010 if passed else 0.005  # a result cache makes repeated inputs twice as fast
        return {
            "verdict": verdict,
            "fresh_median_s": 0.010,
            "repeated_median_s": repeated,
            "fresh_ci_s": [0.0099, 0.0101],
            "repeated_ci_s": [repeated * 0.99, repeated * 1.01],
            "speedup_ratio": 0.010 / repeated,
            "threshold": 0.1,
        }
    return {"verdict": verdict, "sampled": 4, "mismatches": 0 if passed else 1}


def campaign_with_evidence(
    *,
    vendor,
    program: Program,
    level: str = "baseline",
    target=None,
    submitted_by=None,
    purpose: str = "certification",
    conformance: dict | None = None,
    accuracy: list[float] | None = None,
    accuracy_metric: str = "cosine_min",
    gemm: dict[str, float] | None = None,
    integrity: dict | None = None,
    unstable: int = 0,
    timed: int = 20,
    failed_model_jobs: int = 0,
    state: str = CampaignState.EVALUATING,
) -> Campaign:
    """A campaign whose jobs all ended, with accepted evidence shaped by the arguments.

    conformance: {dtype: {"pass": n, "fail": n, "unsupported": n}}; accuracy: one value per model
    (float32); gemm: {dtype: efficiency vs declared peak}; integrity: {"output_consistency": verdict,
    "caching": verdict} on the performance document.
    """
    target = target or HardwareTargetFactory(chip__vendor=vendor)
    runner = RunnerFactory(targets=[target])
    accuracy = [0.99999] if accuracy is None else accuracy
    gemm = {"float32": 0.9, "bfloat16": 0.85} if gemm is None else gemm
    integrity = {"output_consistency": "pass", "caching": "pass"} if integrity is None else integrity
    now = timezone.now()
    campaign = Campaign.objects.create(
        vendor=vendor,
        target=target,
        program=program,
        level=level,
        purpose=purpose,
        submitted_by=submitted_by,
        state=state,
        submitted_at=now,
        finished_at=now,
    )

    # What submission freezes into every job spec: the chip's declared peaks at that moment.
    declared = {"declared": {"peak_tflops": target.chip.declared_peaks()}}
    # The runner's fingerprint on this target's host (ingestion accepted it, so it matches).
    fingerprint = {
        **FINGERPRINT,
        **{
            key: getattr(target, key)
            for key in (
                "backend",
                "device_count",
                "driver_version",
                "runtime_version",
                "torch_version",
                "plugin_versions",
            )
        },
        # The math modes every suite runs under (runners/math_modes.py), which AIA 1.2 accepts.
        "math_modes": dict(PINNED),
    }

    def job(suite, model=None, job_state=JobState.SUCCEEDED):
        return Job.objects.create(
            campaign=campaign,
            suite=suite,
            model=model,
            state=job_state,
            spec=declared,
            challenge=hashlib.sha256(f"{campaign.pk}{suite}{now}".encode()).hexdigest(),
            finished_at=now,
        )

    document = _document(job(JobSuite.CONFORMANCE), runner, fingerprint=fingerprint)
    cases = []
    for dtype, counts in (conformance if conformance is not None else GOOD_CONFORMANCE).items():
        for status, count in counts.items():
            cases += [
                CaseResult(
                    document=document,
                    kernel=f"kernel{i % 7}",
                    dtype=dtype,
                    case=f"{status}-{i}",
                    status=status,
                )
                for i in range(count)
            ]
            if count and dtype != "int8":
                # One of them is a catalog semantic case (causal attention), judged per family from AIA 1.2.
                cases[-1].kernel, cases[-1].case = "sdpa", "small_causal"
    CaseResult.objects.bulk_create(cases)

    verdicts = {name: _integrity_figures(name, verdict) for name, verdict in integrity.items()}
    performance = _document(job(JobSuite.PERFORMANCE), runner, integrity=verdicts, fingerprint=fingerprint)
    peaks = target.chip.declared_peaks()
    rows = []
    for dtype, efficiency in gemm.items():
        peak = peaks.get({"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(dtype, dtype))
        rows.append(
            Measurement(
                document=performance,
                kind="gemm",
                name=f"matmul 4096 {dtype}",
                dtype=dtype,
                unit="TFLOP/s",
                value=(peak or 100) * efficiency,
                median=0.01,
                cv=0.01,
                efficiency=efficiency if peak else None,
            )
        )
    rows += [
        Measurement(
            document=performance,
            kind="bandwidth",
            name=f"copy {i}",
            dtype="float32",
            unit="GB/s",
            value=1000.0,
            median=0.001,
            unstable=i < unstable,
        )
        for i in range(timed)
    ]
    Measurement.objects.bulk_create(rows)

    # AIA 1.2 judges every model dtype of the level with its own bar: one accuracy row per dtype there.
    spec = program.level(level) or {}
    model_dtypes = (spec.get("suites", {}).get("model") or {}).get("dtypes") if "thresholds" in spec else None
    artifacts = []
    for index, value in enumerate(accuracy):
        artifact = ModelArtifactFactory(owner=vendor)
        artifacts.append(artifact)
        model_doc = _document(job(JobSuite.MODEL, artifact), runner, fingerprint=fingerprint)
        Measurement.objects.bulk_create(
            [
                Measurement(
                    document=model_doc,
                    kind="accuracy",
                    name=f"{artifact.name} accuracy",
                    dtype="float32",
                    unit=accuracy_metric,
                    value=value,
                    params={"dtype": "float32", "params": {"model": artifact.name, "threshold": 0.9999}},
                ),
                *(
                    Measurement(
                        document=model_doc,
                        kind="accuracy",
                        name=f"{artifact.name} accuracy",
                        dtype=dtype,
                        unit=accuracy_metric,
                        value=value,
                        params={"dtype": dtype, "params": {"model": artifact.name}},
                    )
                    for dtype in model_dtypes or ()
                    if dtype != "float32"
                ),
                Measurement(
                    document=model_doc,
                    kind="model_latency",
                    name=f"{artifact.name} latency",
                    dtype="float32",
                    unit="s",
                    value=0.004 + index / 1000,
                    median=0.004,
                ),
            ]
        )
    # A level with a serving suite (AIA 1.2 on): one serving document per model, a VALID Server run
    # at exactly the level's settings, and its accuracy-mode figure.
    level_spec = program.level(level) or {}
    serving = ((level_spec.get("thresholds") or {}).get("serving") or {}).get("value")
    if "serving" in (level_spec.get("suites") or {}) and isinstance(serving, dict):
        server = serving["scenarios"]["Server"]
        for artifact, value in zip(artifacts, accuracy, strict=False):
            serving_doc = _document(job(JobSuite.SERVING, artifact), runner, fingerprint=fingerprint)
            params = {
                "model": artifact.name,
                "scenario": "Server",
                "result_valid": True,
                "percentile": server["percentile"],
                "latency_bound_s": server["latency_bound_ms"] / 1000,
                "min_duration_ms": server["min_duration_ms"],
                "min_query_count": server["min_query_count"],
                **loadgen_summaries(
                    target_qps=100.0,
                    completed=99.0,
                    offline=180.0,
                    latency_bound_ms=server["latency_bound_ms"],
                ),
            }
            Measurement.objects.bulk_create(
                [
                    Measurement(
                        document=serving_doc,
                        kind="serving_qps",
                        name=f"{artifact.name} Server QPS at bound",
                        dtype="float32",
                        unit="queries/s",
                        value=100.0,
                        params={"dtype": "float32", "params": params},
                    ),
                    Measurement(
                        document=serving_doc,
                        kind="serving_accuracy",
                        name=f"{artifact.name} serving accuracy",
                        dtype="float32",
                        unit=accuracy_metric,
                        value=value,
                        params={"dtype": "float32", "params": {"model": artifact.name}},
                    ),
                ]
            )
    for _ in range(failed_model_jobs):
        artifact = ModelArtifactFactory(owner=vendor)
        artifacts.append(artifact)
        job(JobSuite.MODEL, artifact, JobState.FAILED)
    campaign.model_artifacts.set(artifacts)
    return campaign
