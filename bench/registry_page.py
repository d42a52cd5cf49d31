"""Benchmark: the public registry page (GET /registry/) over 10,000 certificates in PostgreSQL.

Uses its own database ("bench_portal", created if missing) so it never touches the development or
test databases; certificates, their campaigns, chips and targets are bulk-created once. Times
the page with the Django test client (anonymous, as the public sees it) on the first, a middle and
the last page, filtered and sorted; prints the median milliseconds and the SQL queries per request.

    .venv/bin/python bench/registry_page.py [--certificates 10000] [--rounds 15] [--url postgresql://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

from benchdb import ensure_database

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 100.0
VENDORS, CHIPS = 25, 400


def populate(count: int) -> None:
    """Vendors, chips, targets, approved campaigns and their certificates (statuses mixed), in bulk."""
    from django.utils import timezone

    from apps.accounts.models import Organization, OrganizationKind
    from apps.certificates.models import Certificate, CertificateStatus, SigningKey
    from apps.registry.models import Chip, HardwareTarget
    from apps.runs.models import Campaign, CampaignState, Program
    from apps.runs.services.programs import programs_load_all

    existing = Certificate.objects.count()
    if existing >= count:
        return
    programs_load_all()
    program = Program.objects.get(code="AIA", version="1.0")
    vendors = list(Organization.objects.filter(slug__startswith="bench-vendor-").order_by("slug"))
    if not vendors:
        vendors = Organization.objects.bulk_create(
            [
                Organization(
                    name=f"Bench Vendor {i:02d}", slug=f"bench-vendor-{i:02d}", kind=OrganizationKind.VENDOR
                )
                for i in range(VENDORS)
            ]
        )
    targets = list(
        HardwareTarget.objects.filter(slug__startswith="bench-").select_related("chip").order_by("slug")
    )
    if not targets:
        chips = Chip.objects.bulk_create(
            [
                Chip(
                    vendor=vendors[i % len(vendors)],
                    sku=f"BENCH-{i:05d}",
                    name=f"Bench accelerator {i}",
                    architecture=f"arch-{i % 7}",
                    process_node_nm=5,
                    memory_gib=64 + i % 128,
                    memory_bandwidth_gbs=2000,
                    tdp_w=300 + i % 400,
                    peak_fp32_tflops=50,
                    peak_bf16_tflops=400 + i % 500,
                    fab_country="TW",
                    assembly_country="MY",
                    spec_source="bench",
                )
                for i in range(CHIPS)
            ]
        )
        backends = ["cuda", "rocm", "npu", "xpu", "cpu", "mlu"]
        targets = HardwareTarget.objects.bulk_create(
            [
                HardwareTarget(
                    chip=chip,
                    vendor_id=chip.vendor_id,
                    slug=f"bench-{i:05d}",
                    backend=backends[i % len(backends)],
                    torch_version="2.4.0",
                )
                for i, chip in enumerate(chips)
            ]
        )
    key = SigningKey.objects.filter(key_id="bench" + "0" * 59).first() or SigningKey.objects.create(
        key_id="bench" + "0" * 59, public_key_pem="bench: verification is not timed here", status="retired"
    )
    now = timezone.now()
    statuses = [CertificateStatus.ACTIVE] * 7 + [
        CertificateStatus.SUSPENDED,
        CertificateStatus.REVOKED,
        CertificateStatus.EXPIRED,
    ]
    payload = "{" + '"pad":"' + "x" * 3000 + '"}'  # a realistic payload size, never read by the list
    for start in range(existing, count, 2000):
        stop = min(start + 2000, count)
        campaigns = Campaign.objects.bulk_create(
            [
                Campaign(
                    vendor_id=targets[i % len(targets)].chip.vendor_id,
                    target=targets[i % len(targets)],
                    program=program,
                    level="baseline" if i % 3 else "standard",
                    state=CampaignState.APPROVED,
                    submitted_at=now,
                )
                for i in range(start, stop)
            ]
        )
        Certificate.objects.bulk_create(
            [
                Certificate(
                    serial=f"AIA-2026-{i:06d}",
                    campaign=campaign,
                    program=program,
                    level=campaign.level,
                    vendor_id=campaign.vendor_id,
                    chip_id=targets[i % len(targets)].chip_id,
                    target=campaign.target,
                    status=statuses[i % len(statuses)],
                    issued_at=now - timedelta(minutes=i),
                    valid_until=now + timedelta(days=365) - timedelta(minutes=i),
                    signing_key=key,
                    payload_json=payload,
                    payload_sha256=hashlib.sha256(f"{i}".encode()).hexdigest(),
                    signature="bench",
                    # What a real issue copies from the signed subject (the payload here is padding).
                    subject_chip_sku=targets[i % len(targets)].chip.sku,
                    subject_chip_name=targets[i % len(targets)].chip.name,
                    subject_target_slug=campaign.target.slug,
                    subject_backend=campaign.target.backend,
                )
                for i, campaign in zip(range(start, stop), campaigns, strict=True)
            ]
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--certificates", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--url", default="postgresql://postgres@127.0.0.1:5432", help="server URL, no database"
    )
    parser.add_argument("--database", default="bench_portal")
    args = parser.parse_args()

    ensure_database(args.url, args.database)
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = f"{args.url}/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "certification.settings")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    import warnings

    import django

    warnings.filterwarnings(
        "ignore", "No directory at"
    )  # WhiteNoise: var/static exists after collectstatic only
    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    from apps.certificates.models import Certificate

    setup_test_environment()  # ALLOWED_HOSTS gets "testserver"; nothing else changes
    call_command("migrate", verbosity=0, interactive=False)
    populate(args.certificates)
    total = Certificate.objects.count()
    client = Client()
    last = -(-Certificate.objects.filter(status="active").count() // 50)
    requests = [
        ("first page", {}),
        ("middle page", {"page": last // 2}),
        ("last page", {"page": last}),
        ("all statuses, sorted by chip", {"status": "all", "ordering": "chip"}),
        ("vendor + backend + level", {"vendor": "bench-vendor-03", "backend": "rocm", "level": "baseline"}),
        ("search", {"q": "BENCH-0012"}),
    ]
    timings: dict[str, list[float]] = {name: [] for name, _ in requests}
    queries: dict[str, int] = {}
    for name, params in requests:  # warm-up, and the query count of each
        assert client.get("/registry/", params).status_code == 200
        with CaptureQueriesContext(connection) as captured:
            client.get("/registry/", params)
        queries[name] = len(captured)
    for _ in range(args.rounds):
        for name, params in requests:
            started = time.perf_counter()
            response = client.get("/registry/", params)
            timings[name].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200

    print(
        f"GET /registry/ (anonymous): {total} certificates in PostgreSQL, 50 per page, {args.rounds} rounds"
    )
    for name, _ in requests:
        print(
            f"  {name:<32} median {statistics.median(timings[name]):6.1f} ms   "
            f"min {min(timings[name]):6.1f} ms   {queries[name]} SQL queries"
        )
    overall = statistics.median([t for values in timings.values() for t in values])
    verdict = "PASS" if overall < TARGET_MS else "FAIL"
    print(f"median over all requests: {overall:.1f} ms (target < {TARGET_MS:.0f} ms): {verdict}")
    return 0 if overall < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
