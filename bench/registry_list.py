"""Benchmark: GET /api/v1/chips/?page=N with 10,000 chips in PostgreSQL, as the authority's reviewer.

Uses its own database ("bench", created if missing) so it never touches the development or test
databases. Prints the median time per page over several rounds and the SQL queries per request.

    .venv/bin/python bench/registry_list.py [--chips 10000] [--rounds 15] [--url postgresql://postgres@127.0.0.1:5432]
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
TARGET_MS = 50.0


def populate(chips: int) -> None:
    from django.contrib.auth import get_user_model

    from apps.accounts.models import Organization, OrganizationKind, Role
    from apps.accounts.services import organization_create, user_create
    from apps.registry.models import Chip

    authority = Organization.objects.filter(slug="bench-authority").first() or organization_create(
        name="Bench Authority", slug="bench-authority", kind=OrganizationKind.AUTHORITY
    )
    if not get_user_model().objects.filter(username="bench-reviewer").exists():
        user_create(username="bench-reviewer", organization=authority, role=Role.REVIEWER)
    vendors = [
        Organization.objects.filter(slug=f"bench-vendor-{i:02d}").first()
        or organization_create(
            name=f"Bench Vendor {i:02d}", slug=f"bench-vendor-{i:02d}", kind=OrganizationKind.VENDOR
        )
        for i in range(20)
    ]
    existing = Chip.objects.count()
    missing = chips - existing
    if missing > 0:
        Chip.objects.bulk_create(
            [
                Chip(
                    vendor=vendors[i % len(vendors)],
                    sku=f"BENCH-{i:06d}",
                    name=f"Bench accelerator {i}",
                    architecture=f"arch-{i % 7}",
                    process_node_nm=5,
                    die_area_mm2=600,
                    memory_gib=64 + i % 128,
                    memory_bandwidth_gbs=2000,
                    tdp_w=300 + i % 400,
                    interconnect_bandwidth_gbs=400,
                    peak_fp32_tflops=50,
                    peak_bf16_tflops=400 + i % 500,
                    peak_int8_tops=800,
                    data_center=True,
                    fab_country="TW",
                    assembly_country="MY",
                    domestic_content_pct=5,
                    spec_source="bench",
                )
                for i in range(existing, chips)
            ],
            batch_size=2000,
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chips", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument(
        "--url", default="postgresql://postgres@127.0.0.1:5432", help="server URL, no database"
    )
    parser.add_argument("--database", default="bench")
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
    from django.test.utils import CaptureQueriesContext, setup_test_environment
    from rest_framework.test import APIClient

    from apps.accounts.services import api_token_create
    from apps.registry.models import Chip

    setup_test_environment()  # ALLOWED_HOSTS gets "testserver"; nothing else changes
    call_command("migrate", verbosity=0, interactive=False)
    populate(args.chips)
    total = Chip.objects.count()
    _, token = api_token_create(user=get_user_model().objects.get(username="bench-reviewer"), name="bench")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    last = max(1, -(-total // args.page_size))
    pages = sorted({1, 2, last // 2, last})
    timings: dict[int, list[float]] = {page: [] for page in pages}
    queries: dict[int, int] = {}
    for page in pages:  # warm-up: connection, caches, the token's last-used write
        response = client.get("/api/v1/chips/", {"page": page, "page_size": args.page_size})
        assert response.status_code == 200, response.content[:500]
        assert response.json()["count"] == total
        with CaptureQueriesContext(connection) as captured:
            client.get("/api/v1/chips/", {"page": page, "page_size": args.page_size})
        queries[page] = len(captured)
    for _ in range(args.rounds):
        for page in pages:
            started = time.perf_counter()
            response = client.get("/api/v1/chips/", {"page": page, "page_size": args.page_size})
            timings[page].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200

    print(
        f"GET /api/v1/chips/ as the authority reviewer: {total} chips in PostgreSQL, "
        f"page_size={args.page_size}, {args.rounds} rounds"
    )
    for page in pages:
        print(
            f"  page {page:>4}: median {statistics.median(timings[page]):6.1f} ms   "
            f"min {min(timings[page]):6.1f} ms   {queries[page]} SQL queries"
        )
    overall = statistics.median([t for values in timings.values() for t in values])
    verdict = "PASS" if overall < TARGET_MS else "FAIL"
    print(f"median over all pages: {overall:.1f} ms (target < {TARGET_MS:.0f} ms): {verdict}")
    return 0 if overall < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
