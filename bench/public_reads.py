"""Benchmark: public reads at the scale buyers bring (issue 18). 10,000 certificates in PostgreSQL
(ANALYZE after the bulk load), gunicorn -w 2, N clients with keep-alive for S seconds per endpoint:
GET /api/v1/certificates/ (first page), ?page=50, /registry/, and a bare DRF list of the same columns
(bench/public_reads_urls.py) measured in the same run. Prints requests/s, p50 and p99 per endpoint
and the ratio to the bare list. Clients send no If-None-Match: every answer is a full 200.

    .venv/bin/python bench/public_reads.py [--certificates 10000] [--clients 16] [--seconds 10]
        [--url postgresql://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import http.client
import os
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


def hammer(path: str, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
        mine, codes = [], {}
        while time.monotonic() < stop:
            started = time.perf_counter()
            connection.request("GET", path, headers={"Accept": "application/json"})
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
    return {
        "rps": len(latencies) / seconds,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--certificates", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    ensure_database(args.url, DATABASE)
    env = {
        **os.environ,
        "DATABASE_URL": f"{args.url}/{DATABASE}",
        "SECRET_KEY": "bench-only-secret-key-" + "x" * 30,
        "API_THROTTLE_ANON": "100000000/min",
        "CERT_VAR_DIR": str(ROOT / "var" / "bench-public-reads"),
        "DJANGO_SETTINGS_MODULE": "settings_public_reads",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}",
    }
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
        results = {}
        for name, path in ENDPOINTS.items():
            hammer(path, 2, 1.0)  # warm both workers
            results[name] = hammer(path, args.clients, args.seconds)
        bare = results["bare DRF list"]["rps"]
        print(
            f"{args.certificates} certificates, gunicorn -w 2, {args.clients} clients, {args.seconds:.0f} s each"
        )
        for name, result in results.items():
            print(
                f"  {name:26s} {result['rps']:8.1f} req/s  p50 {result['p50_ms']:7.1f} ms  "
                f"p99 {result['p99_ms']:7.1f} ms  {result['rps'] / bare:5.2f} x bare  {result['statuses']}"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
