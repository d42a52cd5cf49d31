"""Benchmark: public reads at the scale buyers bring (issue 18). 10,000 certificates in PostgreSQL
(ANALYZE after the bulk load), gunicorn -w 2, N clients with keep-alive: GET /api/v1/certificates/
(first page), ?page=50, /registry/ (as an anonymous visitor), the first page missing the cache on every
request, and a bare DRF list of the same columns
(bench/public_reads_urls.py: no filters, no throttle, no HTTP caching). Clients send no If-None-Match:
every answer is a full 200.

The endpoints are measured in interleaved rounds (each round runs every endpoint for S seconds, in an
order rotated per round), so a change in the machine's load hits all of them alike; the figures are
per-endpoint medians over rounds, p99 over every request, and the median over rounds of each round's
ratio to the bare list. The host's load average is printed before and after.

The requests come through a reverse proxy as production's do (TRUSTED_PROXY_COUNT=1): each carries an
X-Forwarded-For address drawn from a pool of --addresses buyers, and the anonymous throttle keeps its
default rate (API_THROTTLE_ANON, 120/min per address), so the throttle does the work it does in
production. Any 429 shows in the status counts. --cache-url runs with the production cache (Redis, a
database of its own); without it the embedded default, a table in PostgreSQL.

    .venv/bin/python bench/public_reads.py [--certificates 10000] [--clients 16] [--seconds 10]
        [--rounds 3] [--addresses 10000] [--cache-url redis://127.0.0.1:6379/N]
        [--url postgresql://postgres@127.0.0.1:5432] [--database bench_public_reads]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchdb import ensure_database

ROOT = Path(__file__).resolve().parent.parent
PORT = 8769
DATABASE = "bench_public_reads"
ENDPOINTS = {
    "certificates, first page": "/api/v1/certificates/",
    "certificates, page 50": "/api/v1/certificates/?page=50",
    "/registry/": "/registry/",
    # A parameter no filter reads, new on every request: each is a cache miss (the list rendered and
    # stored), the cost of the first read after a change.
    "certificates, uncached": "/api/v1/certificates/?miss={n}",
    "bare DRF list": "/bench/bare-certificates/",
}


def load(count: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from tender_evaluate import populate

    call_command("migrate", verbosity=0)
    populate(count)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def hammer(path: str, clients: int, seconds: float, addresses: int) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
        mine, codes = [], {}
        draw = random.Random()  # noqa: S311 - addresses for a benchmark, not a secret
        while time.monotonic() < stop:
            address = draw.randrange(addresses)
            headers = {
                "Accept": "text/html" if path.startswith("/registry/") else "application/json",
                "X-Forwarded-For": f"10.{address >> 16 & 255}.{address >> 8 & 255}.{address & 255}",
            }
            started = time.perf_counter()
            connection.request("GET", path.replace("{n}", str(draw.getrandbits(64))), headers=headers)
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            codes[response.status] = codes.get(response.status, 0) + 1
        with lock:
            latencies.extend(mine)
            for code, n in codes.items():
                statuses[code] = statuses.get(code, 0) + n

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    return {"rps": len(latencies) / seconds, "latencies": latencies, "statuses": statuses}


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--certificates", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--addresses", type=int, default=10_000, help="distinct client addresses")
    parser.add_argument("--cache-url", default="", help="Redis for the cache (production); else the DB table")
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default=DATABASE, help="the bench's own PostgreSQL database")
    args = parser.parse_args()
    ensure_database(args.url, args.database)
    env = {
        **os.environ,
        "DATABASE_URL": f"{args.url}/{args.database}",
        "SECRET_KEY": "bench-only-secret-key-" + "x" * 30,
        "TRUSTED_PROXY_COUNT": "1",
        "CERT_VAR_DIR": str(ROOT / "var" / "bench-public-reads"),
        "DJANGO_SETTINGS_MODULE": "settings_public_reads",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}",
    }
    if args.cache_url:
        env["CACHE_URL"] = args.cache_url
    os.environ.update(env)
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    load(args.certificates)
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and gunicorn
        [
            sys.executable,
            "-m",
            "gunicorn",
            "certification.wsgi",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{PORT}",
            "--access-logfile",
            "/dev/null",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(120):
            try:
                connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise SystemExit("the server did not start")
        names = list(ENDPOINTS)
        for name in names:
            hammer(ENDPOINTS[name], 2, 1.0, args.addresses)  # warm both workers and the caches
        before = load_average()
        rounds: list[dict] = []
        for index in range(args.rounds):
            order = names[index % len(names) :] + names[: index % len(names)]
            rounds.append(
                {name: hammer(ENDPOINTS[name], args.clients, args.seconds, args.addresses) for name in order}
            )
        after = load_average()
        print(
            f"{args.certificates} certificates, gunicorn -w 2, {args.clients} clients, {args.rounds} interleaved "
            f"rounds of {args.seconds:.0f} s per endpoint, cache {'Redis' if args.cache_url else 'database table'}, "
            f"{args.addresses} client addresses; load average {before} -> {after} ({os.cpu_count()} CPUs)"
        )
        for name in names:
            latencies = sorted(x for result in rounds for x in result[name]["latencies"])
            statuses: dict[int, int] = {}
            for result in rounds:
                for code, n in result[name]["statuses"].items():
                    statuses[code] = statuses.get(code, 0) + n
            rps = statistics.median(result[name]["rps"] for result in rounds)
            ratio = statistics.median(
                result[name]["rps"] / result["bare DRF list"]["rps"] for result in rounds
            )
            print(
                f"  {name:26s} {rps:8.1f} req/s  p50 {1000 * statistics.median(latencies):7.1f} ms  "
                f"p99 {1000 * latencies[int(0.99 * (len(latencies) - 1))]:7.1f} ms  {ratio:5.2f} x bare  {statuses}"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
