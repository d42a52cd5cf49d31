"""Benchmark: two of issue 18's figures, medians over several rounds, in this process (no server).

1. The OpenAPI schema endpoint: GET /api/schema/?format=json served from the per-process cache
   (certification/openapi.py), beside the same schema built afresh on every request (the cache
   emptied before each), the 0.7 s the issue measured before the cache.
2. A credential's verification: GET /api/v1/certificates/{serial}/credential/, then its check by the
   independent implementation in tests/certificates/test_credentials.py (RFC 8785 + SHA-256 +
   Ed25519 over the eddsa-jcs-2022 proof, did:web resolution, both Bitstring Status Lists fetched and
   their own proofs checked): the fetch and the verification timed apart.

Uses its own PostgreSQL database (default "bench_api", created if missing) and a temporary signing-key
directory, so it never touches the development or test databases or var/.

    .venv/bin/python bench/api_figures.py [--rounds 15] [--url postgresql://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from benchdb import ensure_database

ROOT = Path(__file__).resolve().parent.parent


def certified_certificate():
    """A certificate of the frozen CPU target signed and approved as in the tests (a fresh vendor each run)."""
    from apps.accounts.models import OrganizationKind, Role
    from tests.certificates.evidence import aia_program
    from tests.certificates.frozen import certify_cpu_target
    from tests.factories import OrganizationFactory, member

    stamp = f"{time.time_ns():x}"
    vendor = OrganizationFactory(name=f"Bench Vendor {stamp}", slug=f"bench-vendor-{stamp}")
    authority = OrganizationFactory(
        name=f"Bench Authority {stamp}", slug=f"bench-authority-{stamp}", kind=OrganizationKind.AUTHORITY
    )
    cast = SimpleNamespace(
        vendor=vendor,
        owner=member(vendor, Role.VENDOR_ENGINEER, username=f"bench-owner-{stamp}"),
        reviewer=member(authority, Role.REVIEWER, username=f"bench-reviewer-{stamp}"),
    )
    return certify_cpu_target(cast=cast, program=aia_program())


def line(label: str, samples_ms: list[float]) -> str:
    return (
        f"  {label:<52} median {statistics.median(samples_ms):8.2f} ms   "
        f"min {min(samples_ms):8.2f}   max {max(samples_ms):8.2f}   n={len(samples_ms)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--uncached-rounds", type=int, default=5, help="rounds of the schema built afresh")
    parser.add_argument(
        "--url", default="postgresql://postgres@127.0.0.1:5432", help="server URL, no database"
    )
    parser.add_argument("--database", default="bench_api")
    args = parser.parse_args()

    ensure_database(args.url, args.database)
    sys.path.insert(0, str(ROOT))
    keys = tempfile.TemporaryDirectory(prefix="bench-api-keys-")
    os.environ["DATABASE_URL"] = f"{args.url}/{args.database}"
    os.environ["CERT_SIGNING_KEY_DIR"] = keys.name
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "certification.settings")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction
    from django.test.utils import setup_test_environment
    from rest_framework.test import APIClient

    from certification.openapi import CachedSchemaView
    from tests.certificates.test_credentials import NotVerified, verify_credential

    setup_test_environment()  # ALLOWED_HOSTS gets "testserver"; nothing else changes
    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    client = APIClient()

    # 1. The schema.
    def get_schema() -> float:
        started = time.perf_counter()
        response = client.get("/api/schema/", {"format": "json"})
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200 and json.loads(response.content)["openapi"].startswith("3.")
        return elapsed

    uncached = []
    for _ in range(args.uncached_rounds):
        CachedSchemaView._cache.clear()
        uncached.append(get_schema())
    get_schema()  # fills the cache
    cached = [get_schema() for _ in range(args.rounds)]

    # 2. The credential.
    # In a transaction rolled back at the end: the factories' names and the frozen SKU repeat per run.
    with transaction.atomic():
        certificate = certified_certificate()
        path = f"/api/v1/certificates/{certificate.serial}/credential/"
        fetches, verifications = [], []
        for _ in range(args.rounds + 1):
            started = time.perf_counter()
            response = client.get(path)
            fetched = time.perf_counter()
            assert response.status_code == 200, response.content[:300]
            credential = json.loads(response.content)
            verify_credential(client, credential)
            verified = time.perf_counter()
            fetches.append((fetched - started) * 1000)
            verifications.append((verified - fetched) * 1000)
        fetches, verifications = fetches[1:], verifications[1:]  # the first: connection and key warm-up
        tampered = {**credential, "validUntil": "2099-01-01T00:00:00Z"}
        try:
            verify_credential(client, tampered)
        except NotVerified:
            refused = True
        else:
            refused = False
        transaction.set_rollback(True)

    load = os.getloadavg()
    print(f"issue 18 figures, {args.rounds} rounds, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("GET /api/schema/?format=json (Django test client, in process)")
    print(line("built afresh each request (cache emptied)", uncached))
    print(line("served from the per-process cache", cached))
    print(f"  ratio: {statistics.median(uncached) / statistics.median(cached):.0f}x")
    print(f"credential of {certificate.serial} ({len(response.content)} bytes)")
    print(line("GET .../credential/ (sign on request)", fetches))
    print(line("independent verification (proof, did:web, 2 status lists)", verifications))
    print(line("fetch + verification", [a + b for a, b in zip(fetches, verifications, strict=True)]))
    print(f"  a tampered copy refused: {refused}")
    keys.cleanup()
    return 0 if refused else 1


if __name__ == "__main__":
    raise SystemExit(main())
