"""Benchmark: evaluate a tender of 20 requirements over 1,000 certified chips on PostgreSQL.

Uses its own database ("bench_tender", created if missing) so it never touches the development or
test databases. Bulk-creates chips, targets, campaigns, jobs, result documents, GEMM and model
measurements and active certificates (rows, no signing), then times `evaluation_create` (the whole
service: candidates, matrix, ranking, snapshot insert and audit record) over several rounds and
prints the median and the SQL query count.

    .venv/bin/python bench/tender_evaluate.py [--chips 1000] [--rounds 7] [--url postgresql://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

from benchdb import ensure_database

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 1.0
DTYPES = ("float32", "bfloat16", "float16")

REQUIREMENTS = [
    {"kind": "certificate_level", "params": {"program": "AIA", "level": "baseline"}},
    {"kind": "conformance_dtype", "params": {"dtype": "float32"}},
    {"kind": "conformance_dtype", "params": {"dtype": "bfloat16"}},
    {
        "kind": "model_performance",
        "params": {"model": "bench-bert", "dtype": "bfloat16", "metric": "throughput", "bound": 500},
    },
    {
        "kind": "model_performance",
        "params": {"model": "bench-bert", "dtype": "bfloat16", "metric": "latency", "bound": 20},
    },
    {"kind": "memory_gib", "params": {"op": ">=", "value": 64}},
    {"kind": "memory_gib", "params": {"op": "<=", "value": 1024}},
    {"kind": "tdp_w", "params": {"op": "<=", "value": 650}},
    {"kind": "tdp_w", "params": {"op": ">=", "value": 50}},
    {"kind": "domestic_content_pct", "params": {"op": ">=", "value": 0}},
    {"kind": "domestic_content_pct", "params": {"op": "<=", "value": 100}},
    {"kind": "origin_country", "params": {"field": "fab", "countries": ["TW", "US", "KR"]}},
    {"kind": "origin_country", "params": {"field": "assembly", "countries": ["MY", "TW", "US"]}},
    {"kind": "origin_country", "params": {"field": "either", "countries": ["TW"]}},
    {"kind": "export_class", "params": {"mode": "not_in", "classes": ["excluded"]}},
    {"kind": "export_class", "params": {"mode": "in", "classes": ["3A090.a", "3A090.b", "not-3A090"]}},
    {"kind": "backend", "params": {"backends": ["cuda", "rocm", "npu"]}},
    {"kind": "backend", "params": {"backends": ["cuda", "rocm", "npu", "xpu"]}},
    {"kind": "certificate_level", "params": {"program": "AIA", "level": "baseline"}},
    {"kind": "conformance_dtype", "params": {"dtype": "float16"}},
]
SCORING = [
    {"metric": "tflops_per_watt", "weight": 3},
    {"metric": "tflops_per_price", "weight": 1},
    {"metric": "model_throughput_per_watt", "weight": 2, "model": "bench-bert", "dtype": "bfloat16"},
    {"metric": "memory_gib", "weight": 1},
]


def populate(chips: int) -> None:  # noqa: PLR0915 - one linear script of bulk inserts
    from django.db import transaction
    from django.utils import timezone

    from apps.accounts.models import Organization, OrganizationKind, Role
    from apps.accounts.services import organization_create, user_create
    from apps.certificates.models import Certificate, SigningKey, subject_columns
    from apps.registry.models import Chip, HardwareTarget, ModelArtifact, Runner
    from apps.runs.models import Campaign, CaseResult, Job, Measurement, Program, ResultDocument
    from apps.runs.services.programs import programs_load_all
    from runners.canonical import JCS, canonical_text

    programs_load_all()
    buyer = Organization.objects.filter(slug="bench-buyer").first() or organization_create(
        name="Bench Buyer", slug="bench-buyer", kind=OrganizationKind.BUYER
    )
    from django.contrib.auth import get_user_model

    if not get_user_model().objects.filter(username="bench-buyer").exists():
        user_create(username="bench-buyer", organization=buyer, role=Role.BUYER)
    existing = Certificate.objects.filter(serial__startswith="BENCH-").count()
    if existing >= chips:
        return
    program = Program.objects.get(code="AIA", version="1.0")
    vendors = [
        Organization.objects.filter(slug=f"bench-tv-{i:02d}").first()
        or organization_create(
            name=f"Bench TV {i:02d}", slug=f"bench-tv-{i:02d}", kind=OrganizationKind.VENDOR
        )
        for i in range(20)
    ]
    key = SigningKey.objects.filter(status="active").first() or SigningKey.objects.create(
        key_id="b" * 64, public_key_pem="bench"
    )
    runner = Runner.objects.filter(name="bench-tender-runner").first() or Runner.objects.create(
        name="bench-tender-runner", public_key="bench", key_id="c" * 64
    )
    artifacts = {
        v.pk: ModelArtifact.objects.get_or_create(
            owner=v,
            name="bench-bert",
            version="1.0",
            defaults={
                "task": "text-embedding",
                "architecture": "bert-encoder",
                "weights": "bench.safetensors",
                "weights_sha256": "0" * 64,
                "weights_size": 1,
                "license": "mit",
            },
        )[0]
        for v in vendors
    }
    now = timezone.now()
    indexes = range(existing, chips)
    with transaction.atomic():
        chip_rows = Chip.objects.bulk_create(
            [
                Chip(
                    vendor=vendors[i % 20],
                    sku=f"BT-{i:06d}",
                    name=f"Bench tender chip {i}",
                    process_node_nm=5,
                    die_area_mm2=None if i % 10 == 0 else 600 + i % 200,
                    memory_gib=32 + i % 160,
                    tdp_w=200 + i % 600,
                    peak_fp32_tflops=40 + i % 30,
                    peak_bf16_tflops=200 + i % 800,
                    peak_fp16_tflops=200 + i % 800,
                    data_center=i % 25 != 0,
                    fab_country=("TW", "US", "KR", "CN")[i % 4],
                    assembly_country="MY",
                    domestic_content_pct=i % 60,
                    list_price=10000 + 17 * i,
                    currency="USD",
                    spec_source="bench",
                )
                for i in indexes
            ]
        )
        targets = HardwareTarget.objects.bulk_create(
            [
                HardwareTarget(
                    chip=chip,
                    vendor_id=chip.vendor_id,
                    slug=f"bt-{chip.sku.lower()}",
                    backend=("cuda", "rocm", "npu", "xpu")[n % 4],
                    torch_version="2.4.0",
                )
                for n, chip in enumerate(chip_rows)
            ]
        )
        campaigns = Campaign.objects.bulk_create(
            [
                Campaign(
                    vendor=t.chip.vendor,
                    target=t,
                    program=program,
                    level="baseline",
                    state="approved",
                    submitted_at=now,
                    finished_at=now,
                )
                for t in targets
            ]
        )
        suites = ("conformance", "performance", "model")
        jobs = Job.objects.bulk_create(
            [
                Job(
                    campaign=c,
                    suite=s,
                    state="succeeded",
                    challenge=f"{c.pk}-{s}",
                    model=artifacts[c.vendor_id] if s == "model" else None,
                )
                for c in campaigns
                for s in suites
            ]
        )
        documents = ResultDocument.objects.bulk_create(
            [
                ResultDocument(
                    job=j,
                    sha256=hashlib.sha256(f"bench-tender-{j.pk}".encode()).hexdigest(),
                    size=1,
                    content="results/bench.json",
                    signature="x",
                    runner=runner,
                    key_id=runner.key_id,
                    suite=j.suite,
                )
                for j in jobs
            ],
            batch_size=2000,
        )
        by_job = {d.job_id: d for d in documents}
        cases, measurements, certificates = [], [], []
        for n, (campaign, chip) in enumerate(zip(campaigns, chip_rows, strict=True)):
            conf, perf, model = (by_job[j.pk] for j in jobs[3 * n : 3 * n + 3])
            cases += [
                CaseResult(document=conf, kernel="matmul", dtype=d, case=f"c-{d}", status="pass")
                for d in DTYPES
            ]
            peaks = chip.declared_peaks()
            for dtype, peak_key in zip(DTYPES, ("fp32", "bf16", "fp16"), strict=True):
                eff = 0.6 + (n % 35) / 100
                measurements.append(
                    Measurement(
                        document=perf,
                        kind="gemm",
                        name=f"matmul 4096 {dtype}",
                        dtype=dtype,
                        unit="TFLOP/s",
                        value=peaks[peak_key] * eff,
                        efficiency=eff,
                    )
                )
            measurements += [
                Measurement(
                    document=model,
                    kind="accuracy",
                    name="bench-bert accuracy",
                    dtype="bfloat16",
                    unit="cosine",
                    value=0.99999,
                ),
                Measurement(
                    document=model,
                    kind="model_latency",
                    name="bench-bert latency",
                    dtype="bfloat16",
                    unit="s",
                    value=0.002 + (n % 30) / 1000,
                ),
                *(
                    Measurement(
                        document=model,
                        kind="model_throughput",
                        name=f"bench-bert throughput b{b}",
                        dtype="bfloat16",
                        unit="items/s",
                        value=300 + 40 * b + n % 500,
                        params={"batch": b},
                    )
                    for b in (1, 4, 16)
                ),
            ]
            serial = f"BENCH-2026-{existing + n:06d}"
            payload = {
                "serial": serial,
                "subject": {
                    "chip": {
                        "sku": chip.sku,
                        "memory_gib": chip.memory_gib,
                        "tdp_w": chip.tdp_w,
                        "declared_peak_tflops": peaks,
                    },
                    "target": {"slug": campaign.target.slug, "backend": campaign.target.backend},
                },
                "scope": {
                    "dtypes": list(DTYPES),
                    "kernels": ["matmul"],
                    "models": [{"name": "bench-bert", "version": "1.0", "dtypes": ["bfloat16"]}],
                },
            }
            text = canonical_text({**payload, "canonicalization": JCS})
            certificates.append(
                Certificate(
                    serial=serial,
                    campaign=campaign,
                    program=program,
                    level="baseline",
                    vendor=campaign.vendor,
                    chip=chip,
                    target=campaign.target,
                    issued_at=now,
                    valid_until=now + timedelta(days=365),
                    signing_key=key,
                    payload_json=text,
                    payload_sha256=hashlib.sha256(text.encode()).hexdigest(),
                    signature="x",
                    **subject_columns(payload),
                )
            )
        CaseResult.objects.bulk_create(cases, batch_size=5000)
        Measurement.objects.bulk_create(measurements, batch_size=5000)
        Certificate.objects.bulk_create(certificates, batch_size=2000)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chips", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--url", default="postgresql://postgres@127.0.0.1:5432", help="server URL, no database"
    )
    parser.add_argument("--database", default="bench_tender")
    args = parser.parse_args()

    ensure_database(args.url, args.database)
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = f"{args.url}/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "certification.settings")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from apps.procurement.models import Tender
    from apps.procurement.selectors import active_certificates
    from apps.procurement.services import evaluation_create, tender_create

    call_command("migrate", verbosity=0, interactive=False)
    populate(args.chips)
    buyer = get_user_model().objects.get(username="bench-buyer")
    tender = Tender.objects.filter(reference="BENCH-20").first() or tender_create(
        organization=buyer.membership.organization,
        title="Bench: 20 requirements",
        reference="BENCH-20",
        deadline=timezone.now() + timedelta(days=365),
        requirements=REQUIREMENTS,
        scoring=SCORING,
        created_by=buyer,
    )
    assert tender.requirements.count() == 20
    certified = active_certificates().count()

    evaluation_create(tender=tender, actor=buyer)  # warm-up: connection, rule file, caches
    with CaptureQueriesContext(connection) as captured:
        evaluation = evaluation_create(tender=tender, actor=buyer)
    timings = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        evaluation_create(tender=tender, actor=buyer)
        timings.append(time.perf_counter() - started)

    median = statistics.median(timings)
    size = len(json.dumps(evaluation.snapshot))
    print(
        f"evaluation_create: {len(REQUIREMENTS)} requirements x {certified} certified chips (PostgreSQL), "
        f"{args.rounds} rounds"
    )
    print(
        f"  median {median:.3f} s   min {min(timings):.3f} s   max {max(timings):.3f} s   "
        f"{len(captured)} SQL queries   eligible {evaluation.eligible_count}   snapshot {size / 1e6:.1f} MB"
    )
    verdict = "PASS" if median < TARGET_S else "FAIL"
    print(f"target < {TARGET_S:.0f} s: {verdict}")
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
