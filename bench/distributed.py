"""Benchmarks of the distributed path, with real worker processes on Redis and PostgreSQL.

    .venv/bin/python bench/distributed.py overhead [--campaigns 10]
        Platform overhead of a campaign: submission -> all results ingested and evaluated, minus the
        suite's own compute (the document's timings.total_s). Campaigns run one at a time. Target < 2 s.
    .venv/bin/python bench/distributed.py drain [--jobs 1000] [--targets 4]
        Queue JOBS one-job campaigns over TARGETS targets (one runner worker each) and drain them:
        every job must succeed exactly once (attempts == 1, one document, no rejected evidence).

Uses its own database ("bench_distributed", recreated) and the Redis at CELERY_BROKER_URL
(default redis://127.0.0.1:6379/0). Each job is a tiny conformance run (argmax, float32).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "bench_distributed"
PROGRAM = {
    "code": "DRAIN",
    "version": "1.0",
    "title": "Drain benchmark",
    "validity_days": 1,
    "surveillance_days": 1,
    "levels": [
        {
            "code": "tiny",
            "rank": 1,
            "title": "Tiny",
            "suites": {"conformance": {"dtypes": ["float32"], "kernels": ["argmax"]}},
            "criteria": [
                {
                    "id": "D1",
                    "title": "argmax",
                    "kind": "conformance_pass_rate",
                    "blocker": True,
                    "params": {"dtypes": ["float32"], "kernels": None, "min_pass_rate": 1.0},
                }
            ],
        }
    ],
}


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{DATABASE}"')


def setup_django(broker: str) -> None:
    os.environ["DATABASE_URL"] = f"{SERVER}/{DATABASE}"
    os.environ["CELERY_BROKER_URL"] = broker
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "certification.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def world(targets: int, workdir: Path):
    import torch
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from apps.accounts.models import OrganizationKind, Role
    from apps.accounts.services import organization_create, user_create
    from apps.registry.services import chip_create, runner_register, target_create
    from apps.runs.services.programs import program_load

    vendor = organization_create(name="Drain Vendor", slug="drain-vendor", kind=OrganizationKind.VENDOR)
    user = user_create(username="drain-engineer", organization=vendor, role=Role.VENDOR_ENGINEER)
    chip = chip_create(
        vendor=vendor,
        sku="DRAIN-1",
        name="Drain",
        process_node_nm=5,
        die_area_mm2=100,
        memory_gib=1,
        memory_bandwidth_gbs=10,
        tdp_w=10,
        fab_country="TW",
        assembly_country="TW",
        spec_source="bench",
        declared_peak={"fp32": 0.01},
    )
    hosts = []
    for index in range(targets):
        target = target_create(
            chip=chip, slug=f"drain-{index}", backend="cpu", torch_version=torch.__version__
        )
        key = Ed25519PrivateKey.generate()
        key_file = workdir / f"runner-{index}.pem"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        runner_register(name=f"drain-runner-{index}", public_key=pem.decode(), targets=[target])
        hosts.append((target, f"drain-runner-{index}", key_file))
    program, _ = program_load(definition=PROGRAM)
    return vendor, user, program, hosts


def start_workers(broker: str, hosts, workdir: Path, platform_concurrency: int):
    from tests.integration.workers import Worker, platform_env, runner_worker

    env = platform_env(broker, workdir / "var", workdir / "media")
    workers = [
        Worker(
            "platform",
            ["-A", "certification", "worker", "-Q", "platform", "--concurrency", str(platform_concurrency)],
            env,
        )
    ]
    workers += [runner_worker(broker, target.queue, name, key_file) for target, name, key_file in hosts]
    for worker in workers:
        worker.wait_ready(timeout=180)
    return workers


def submit(vendor, user, program, target):
    from django.db import transaction

    from apps.runs.services.campaigns import campaign_submit

    with transaction.atomic():
        return campaign_submit(
            vendor=vendor, target=target, program=program, level="tiny", model_artifacts=[], submitted_by=user
        )


def overhead(args, broker: str, workdir: Path) -> int:
    import json

    from apps.runs.models import Campaign, CampaignState

    vendor, user, program, hosts = world(1, workdir)
    workers = start_workers(broker, hosts, workdir, 1)
    try:
        samples = []
        for _ in range(args.campaigns):
            started = time.perf_counter()
            campaign = submit(vendor, user, program, hosts[0][0])
            while not Campaign.objects.filter(pk=campaign.pk, state=CampaignState.AWAITING_REVIEW).exists():
                time.sleep(0.02)
            wall = time.perf_counter() - started
            document = campaign.jobs.get().document
            compute = json.loads(document.content.open("rb").read())["timings"]["total_s"]
            samples.append((wall, compute, wall - compute))
        median = statistics.median(s[2] for s in samples)
        print(
            f"platform overhead per campaign (submission -> evaluated, minus suite compute), "
            f"{args.campaigns} campaigns: median {median:.3f} s "
            f"(wall median {statistics.median(s[0] for s in samples):.3f} s, "
            f"suite compute median {statistics.median(s[1] for s in samples):.3f} s); target < 2 s: "
            f"{'OK' if median < 2 else 'MISSED'}"
        )
        return 0 if median < 2 else 1
    finally:
        for worker in workers:
            worker.stop()


def drain(args, broker: str, workdir: Path) -> int:
    from apps.runs.models import Campaign, CampaignState, EvidenceRejection, Job, JobState, ResultDocument

    vendor, user, program, hosts = world(args.targets, workdir)
    # Queue everything first: the workers start on a full queue.
    for index in range(args.jobs):
        submit(vendor, user, program, hosts[index % len(hosts)][0])
    queued_at = time.perf_counter()
    workers = start_workers(broker, hosts, workdir, 2)
    try:
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            done = Job.objects.filter(state__in=[JobState.SUCCEEDED, JobState.FAILED]).count()
            if done >= args.jobs and not Campaign.objects.filter(state=CampaignState.EVALUATING).exists():
                break
            time.sleep(1)
        elapsed = time.perf_counter() - queued_at
        succeeded = Job.objects.filter(state=JobState.SUCCEEDED, attempts=1).count()
        documents = ResultDocument.objects.count()
        rejected = EvidenceRejection.objects.count()
        lost = Job.objects.exclude(state=JobState.SUCCEEDED).count()
        twice = Job.objects.filter(attempts__gt=1).count()
        ok = succeeded == documents == args.jobs and rejected == 0 and lost == 0 and twice == 0
        print(
            f"drained {args.jobs} jobs over {args.targets} targets in {elapsed:.0f} s "
            f"({args.jobs / elapsed:.1f} jobs/s): succeeded once {succeeded}, documents {documents}, "
            f"lost {lost}, run twice {twice}, rejected evidence {rejected}: {'OK' if ok else 'FAILED'}"
        )
        return 0 if ok else 1
    finally:
        for worker in workers:
            worker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    one = sub.add_parser("overhead")
    one.add_argument("--campaigns", type=int, default=10)
    many = sub.add_parser("drain")
    many.add_argument("--jobs", type=int, default=1000)
    many.add_argument("--targets", type=int, default=4)
    many.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    recreate_database()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ARTIFACT_STORAGE_DIR"] = str(Path(tmp) / "media")  # shared with the platform worker
        setup_django(broker)
        return (overhead if args.mode == "overhead" else drain)(args, broker, Path(tmp))


if __name__ == "__main__":
    raise SystemExit(main())
