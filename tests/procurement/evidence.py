"""Certified evidence for procurement tests, made as rows (campaign, job, documents, measurements,
certificate) without runners or signing: each test states the figures it needs and nothing else."""

from __future__ import annotations

import hashlib
import itertools
import json
from datetime import timedelta

from django.utils import timezone

from apps.certificates.models import Certificate, CertificateStatus, SigningKey, subject_columns
from apps.registry.models import ModelArtifact
from apps.runs.models import (
    Campaign,
    CampaignState,
    CaseResult,
    Job,
    JobState,
    JobSuite,
    Measurement,
    Program,
    ResultDocument,
)
from tests.factories import ChipFactory, HardwareTargetFactory, ModelArtifactFactory, RunnerFactory

_serials = itertools.count(1)


def signing_key() -> SigningKey:
    key = SigningKey.objects.filter(status="active").first()
    return key or SigningKey.objects.create(key_id="f" * 64, public_key_pem="-----BEGIN PUBLIC KEY-----\n")


def _document(job: Job, runner, suite: str) -> ResultDocument:
    digest = hashlib.sha256(f"procurement-{job.pk}-{suite}".encode()).hexdigest()
    return ResultDocument.objects.create(
        job=job,
        sha256=digest,
        size=100,
        content=f"results/{digest}.json",
        signature="c2ln",
        runner=runner,
        key_id=runner.key_id,
        suite=suite,
    )


def certify(
    *,
    vendor,
    program: Program,
    chip=None,
    level: str = "baseline",
    backend: str = "cuda",
    scope_dtypes: tuple[str, ...] = ("float32", "bfloat16"),
    gemm: dict[str, tuple[float, float | None]] | None = None,
    models: dict[str, dict] | None = None,
    status: str = CertificateStatus.ACTIVE,
    valid_days: int = 365,
    **chip_fields,
) -> Certificate:
    """A certificate of `chip` (made from chip_fields if not given) on a new target of `backend`.

    gemm: {dtype: (TFLOP/s, efficiency)}; models: {name: {"dtype", "throughput" (items/s), "latency_s",
    "in_scope" (default True)}}.
    """
    chip = chip or ChipFactory(vendor=vendor, **chip_fields)
    target = HardwareTargetFactory(chip=chip, backend=backend)
    runner = RunnerFactory(targets=[target])
    now = timezone.now()
    campaign = Campaign.objects.create(
        vendor=vendor,
        target=target,
        program=program,
        level=level,
        state=CampaignState.APPROVED,
        submitted_at=now,
        finished_at=now,
    )

    def job(suite, model=None):
        return Job.objects.create(
            campaign=campaign,
            suite=suite,
            model=model,
            state=JobState.SUCCEEDED,
            challenge=hashlib.sha256(f"{campaign.pk}{suite}{model}".encode()).hexdigest(),
        )

    conformance = _document(job(JobSuite.CONFORMANCE), runner, JobSuite.CONFORMANCE)
    CaseResult.objects.bulk_create(
        [
            CaseResult(document=conformance, kernel="matmul", dtype=d, case=f"c{d}", status="pass")
            for d in scope_dtypes
        ]
    )
    performance = _document(job(JobSuite.PERFORMANCE), runner, JobSuite.PERFORMANCE)
    gemm = {"float32": (50.0, 0.75)} if gemm is None else gemm
    Measurement.objects.bulk_create(
        [
            Measurement(
                document=performance,
                kind="gemm",
                name=f"matmul {d}",
                dtype=d,
                unit="TFLOP/s",
                value=v,
                efficiency=e,
            )
            for d, (v, e) in gemm.items()
        ]
    )
    scope_models = []
    for name, figures in (models or {}).items():
        # One artifact per name and vendor, certified on as many chips as the test needs.
        artifact = ModelArtifact.objects.filter(owner=vendor, name=name).first() or ModelArtifactFactory(
            owner=vendor, name=name
        )
        document = _document(job(JobSuite.MODEL, artifact), runner, JobSuite.MODEL)
        dtype = figures.get("dtype", "float32")
        rows = [
            Measurement(
                document=document,
                kind="accuracy",
                name=f"{name} accuracy",
                dtype=dtype,
                unit="cosine",
                value=0.99999,
            )
        ]
        if "throughput" in figures:
            rows.append(
                Measurement(
                    document=document,
                    kind="model_throughput",
                    name=f"{name} throughput b4",
                    dtype=dtype,
                    unit="items/s",
                    value=figures["throughput"],
                )
            )
        if "latency_s" in figures:
            rows.append(
                Measurement(
                    document=document,
                    kind="model_latency",
                    name=f"{name} latency",
                    dtype=dtype,
                    unit="s",
                    value=figures["latency_s"],
                )
            )
        Measurement.objects.bulk_create(rows)
        if figures.get("in_scope", True):
            scope_models.append({"name": name, "version": "1.0", "dtypes": [dtype]})
    serial = f"{program.code}-2026-{next(_serials):06d}"
    payload = {
        "serial": serial,
        "program": {"code": program.code, "version": program.version, "level": level},
        "subject": {
            "chip": {
                "sku": chip.sku,
                "name": chip.name,
                "memory_gib": chip.memory_gib,
                "tdp_w": chip.tdp_w,
                "declared_peak_tflops": chip.declared_peaks(),
                "die_area_mm2": chip.die_area_mm2,
                "data_center": chip.data_center,
                "fab_country": chip.fab_country,
                "assembly_country": chip.assembly_country,
                "domestic_content_pct": chip.domestic_content_pct,
                "list_price": str(chip.list_price) if chip.list_price is not None else None,
                "currency": chip.currency,
            },
            "target": {"slug": target.slug, "backend": backend},
        },
        "scope": {"dtypes": sorted(scope_dtypes), "kernels": ["matmul"], "models": scope_models},
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return Certificate.objects.create(
        serial=serial,
        campaign=campaign,
        program=program,
        level=level,
        vendor=vendor,
        chip=chip,
        target=target,
        status=status,
        issued_at=now,
        valid_until=now + timedelta(days=valid_days),
        signing_key=signing_key(),
        payload_json=text,
        payload_sha256=hashlib.sha256(text.encode()).hexdigest(),
        signature="c2ln",
        **subject_columns(payload),
    )
