"""Benchmark: a deep page of the public certificate list by page number (OFFSET, plus COUNT) against the
same rows by keyset (`?cursor=`), uncached, in this process (no server, no concurrency).

Reads the database bench/public_reads.py fills (default "bench_public_reads", populated here with
tender_evaluate.populate when it holds fewer certificates than --certificates) and never writes to it:
the cache is the Redis database of --cache-url. Every request carries a fresh unused parameter, so
each one renders the page (the cost of the first read after a change). Rounds interleave the two
forms; medians over rounds, and the load average before and after.

    .venv/bin/python bench/keyset_pages.py --cache-url redis://127.0.0.1:6379/N [--page 50] [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from benchdb import ensure_database

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--certificates", type=int, default=10_000)
    parser.add_argument("--page", type=int, default=50)
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--cache-url", required=True, help="a Redis database of its own, e.g. redis://host:6379/8"
    )
    parser.add_argument(
        "--url", default="postgresql://postgres@127.0.0.1:5432", help="server URL, no database"
    )
    parser.add_argument("--database", default="bench_public_reads")
    args = parser.parse_args()

    ensure_database(args.url, args.database)
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = f"{args.url}/{args.database}"
    os.environ["CACHE_URL"] = args.cache_url
    os.environ["API_THROTTLE_ANON"] = "1000000/min"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "certification.settings")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext, setup_test_environment
    from rest_framework.test import APIClient

    from apps.certificates.models import Certificate

    setup_test_environment()  # ALLOWED_HOSTS gets "testserver"; nothing else changes
    if Certificate.objects.count() < args.certificates:
        from django.core.management import call_command
        from tender_evaluate import populate

        call_command("migrate", verbosity=0)
        populate(args.certificates)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    total = Certificate.objects.filter(status="active").count()
    client = APIClient()
    # A token of this run in every URL: nothing comes from a cache an earlier run (or code) filled.
    size = {"page_size": args.page_size, "run": str(time.time_ns())}

    # The keyset cursor of the same depth: follow `next` from the first page.
    if args.page < 2:
        parser.error("--page: at least 2")
    body = client.get("/api/v1/certificates/", {"cursor": "", **size}).json()
    for _ in range(args.page - 1):  # after the loop, `url` is page --page's
        url = body["next"]
        body = client.get(url).json()
    deep_cursor = parse_qs(urlsplit(url).query)["cursor"][0]
    offset_rows = client.get("/api/v1/certificates/", {"page": args.page, **size}).json()["results"]
    keyset_rows = client.get("/api/v1/certificates/", {"cursor": deep_cursor, **size}).json()["results"]
    assert [r["serial"] for r in offset_rows] == [r["serial"] for r in keyset_rows], "not the same rows"

    forms = {
        f"page={args.page} (OFFSET + COUNT)": {"page": args.page, **size},
        f"cursor at page {args.page} (keyset)": {"cursor": deep_cursor, **size},
    }
    timings: dict[str, list[float]] = {name: [] for name in forms}
    queries: dict[str, int] = {}
    before = os.getloadavg()
    n = 0
    for round_ in range(args.rounds):
        for name in list(forms)[round_ % 2 :] + list(forms)[: round_ % 2]:
            n += 1
            started = time.perf_counter()
            with CaptureQueriesContext(connection) as captured:
                response = client.get(
                    "/api/v1/certificates/", {**forms[name], "miss": f"{time.time_ns()}-{n}"}
                )
            timings[name].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content[:300]
            queries[name] = len(captured)
    after = os.getloadavg()
    print(
        f"GET /api/v1/certificates/ uncached, {total} active certificates, page_size={args.page_size}, "
        f"{args.rounds} interleaved rounds; load average {before[0]:.2f} before, {after[0]:.2f} after"
    )
    for name, samples in timings.items():
        print(
            f"  {name:<34} median {statistics.median(samples):7.1f} ms   min {min(samples):7.1f}   "
            f"{queries[name]} SQL queries"
        )
    ratio = statistics.median(timings[list(forms)[0]]) / statistics.median(timings[list(forms)[1]])
    print(f"  offset / keyset: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
