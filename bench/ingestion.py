"""Benchmark: ingestion of one signed result document with 10,000 measurements on PostgreSQL.

Verifies the signature, binding, challenge and schema, then stores the document and its rows, as
`runs.ingest` does for a runner's envelope. Uses its own database ("bench_runs", created if
missing). Prints the median seconds over several rounds (target: under 1 s).

    .venv/bin/python bench/ingestion.py [--measurements 10000] [--rounds 5] [--url postgresql://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from benchdb import ensure_database

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 1.0


def world():
    """A vendor, a CPU target, a runner key bound to it and a program with a performance suite."""
    import torch
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from apps.accounts.models import Organization, OrganizationKind
    from apps.accounts.services import organization_create
    from apps.registry.models import Chip, HardwareTarget, Runner
    from apps.registry.services import chip_create, runner_register, runner_update, target_create
    from apps.runs.services.programs import program_load
    from runners.signing import RunnerIdentity

    vendor = Organization.objects.filter(slug="bench-vendor").first() or organization_create(
        name="Bench Vendor", slug="bench-vendor", kind=OrganizationKind.VENDOR
    )
    chip = Chip.objects.filter(vendor=vendor, sku="BENCH-1").first() or chip_create(
        vendor=vendor,
        sku="BENCH-1",
        name="Bench",
        process_node_nm=5,
        die_area_mm2=600,
        memory_gib=80,
        memory_bandwidth_gbs=3000,
        tdp_w=500,
        fab_country="TW",
        assembly_country="TW",
        spec_source="bench",
        declared_peak={"fp32": 1.0},
    )
    target = HardwareTarget.objects.filter(slug="bench-cpu").first() or target_create(
        chip=chip, slug="bench-cpu", backend="cpu", torch_version=torch.__version__
    )
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    runner = Runner.objects.filter(name="bench-runner").first()
    if runner is None:
        runner_register(name="bench-runner", public_key=pem.decode(), targets=[target])
    else:
        runner_update(runner=runner, public_key=pem.decode(), targets=[target])
    program, _ = program_load(
        definition={
            "code": "BENCH",
            "version": "1.0",
            "title": "Bench",
            "validity_days": 1,
            "surveillance_days": 1,
            "levels": [
                {
                    "code": "perf",
                    "rank": 1,
                    "title": "Perf",
                    "suites": {"performance": {"dtypes": ["float32"]}},
                    "criteria": [],
                }
            ],
        }
    )
    return vendor, target, program, RunnerIdentity(name="bench-runner", private_key=key)


def envelope_for(job, identity, count: int) -> dict:
    from runners.backends import get_backend
    from runners.canonical import canonical_json
    from runners.document import build_document, now_iso
    from runners.measurements import measurement
    from runners.timing import summarize

    stats = summarize([1e-3, 1.1e-3, 0.9e-3, 1.05e-3, 0.95e-3])
    items = [
        measurement(
            name=f"gemm {i}",
            kind="gemm",
            unit="TFLOP/s",
            value=0.01 * (i % 97),
            dtype="float32",
            params={"m": 256 + i, "n": 256, "k": 256},
            stats=stats,
            efficiency=0.5,
        )
        for i in range(count)
    ]
    integrity = {
        "output_consistency": {"verdict": "pass", "sampled": 3, "mismatches": 0},
        "caching": {
            "verdict": "pass",
            "fresh_median_s": 1e-3,
            "repeated_median_s": 1e-3,
            "speedup_ratio": 1.0,
            "threshold": 1.1,
        },
    }
    document = build_document(
        "performance",
        job.spec,
        get_backend("cpu").fingerprint(),
        [],
        {"total_s": 1.0},
        now_iso(),
        measurements=items,
        integrity=integrity,
    )
    return identity.envelope(canonical_json(document))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measurements", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()

    ensure_database(args.url, "bench_runs")
    os.environ["DATABASE_URL"] = f"{args.url}/bench_runs"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "certification.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ["CAMPAIGN_EVALUATOR"] = "bench.ingestion.no_evaluation"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.runs.models import Campaign, CampaignState, Job, JobState
    from apps.runs.services.ingestion import result_ingest
    from apps.runs.specs import job_spec_build

    vendor, target, program, identity = world()
    timings = []
    for _ in range(args.rounds):
        campaign = Campaign.objects.create(
            vendor=vendor, target=target, program=program, level="perf", state=CampaignState.RUNNING
        )
        job = Job.objects.create(
            campaign=campaign, suite="performance", challenge=os.urandom(32).hex(), state=JobState.RUNNING
        )
        job.spec = job_spec_build(job=job, suite_plan={"dtypes": ["float32"]}, time_limit_s=60)
        job.save()
        envelope = envelope_for(job, identity, args.measurements)
        started = time.perf_counter()
        outcome = result_ingest(envelope=envelope)
        timings.append(time.perf_counter() - started)
        assert outcome.accepted, outcome.reason
        assert job.document.measurements.count() == args.measurements
    median = statistics.median(timings)
    size = len(envelope["document_json"]) / 1e6
    print(
        f"ingestion of one signed document ({args.measurements} measurements, {size:.1f} MB) on PostgreSQL: "
        f"median {median:.3f} s over {args.rounds} rounds (min {min(timings):.3f}, max {max(timings):.3f}); "
        f"target < {TARGET_S:.1f} s: {'OK' if median < TARGET_S else 'MISSED'}"
    )
    return 0 if median < TARGET_S else 1


def no_evaluation(*, campaign_id: int) -> None:
    """The benchmark measures ingestion alone."""


if __name__ == "__main__":
    raise SystemExit(main())
