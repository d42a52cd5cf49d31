"""Benchmark: the public registry page while four clients flood the login form with wrong passwords.

Each wrong password costs a PBKDF2 hash (the hasher also runs for unknown usernames); without a
lockout four clients keep the web workers hashing and every other page waits. With django-axes the
address is locked out after LOGIN_FAILURE_LIMIT failures and later attempts are refused before any
hashing. Runs gunicorn (2 workers, 127.0.0.1) twice on the same PostgreSQL database ("limits" unless
--database): once with bench/settings_no_lockout.py ("before"), once with the real settings ("after").
While the four attackers post, one probe client fetches /registry/ back to back; the figure is the
probe's requests per second and latency, next to an idle baseline.

    .venv/bin/python bench/login_flood.py [--seconds 20] [--clients 4] [--url postgresql://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from benchdb import ensure_database

ROOT = Path(__file__).resolve().parent.parent
PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"


def opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def fetch(client, url: str, data: dict | None = None, timeout: float = 60) -> int:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(BASE + url, data=body, headers={"Referer": BASE + "/login/"})  # noqa: S310
    try:
        with client.open(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        error.read()
        return error.code


def attacker(stop: threading.Event, counts: list[int], index: int) -> None:
    client = opener()
    with client.open(BASE + "/login/", timeout=60) as response:
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', response.read()).group(1).decode()
    n = 0
    while not stop.is_set():
        fetch(
            client,
            "/login/",
            {"csrfmiddlewaretoken": token, "username": f"guess-{index}", "password": f"wrong-{n}"},
        )
        n += 1
    counts[index] = n


def probe(stop: threading.Event, latencies: list[float]) -> None:
    client = opener()
    while not stop.is_set():
        started = time.perf_counter()
        status = fetch(client, "/registry/")
        if status == 200:
            latencies.append(time.perf_counter() - started)


def measure(seconds: float, clients: int) -> dict:
    stop = threading.Event()
    counts = [0] * clients
    latencies: list[float] = []
    threads = [threading.Thread(target=attacker, args=(stop, counts, i)) for i in range(clients)]
    threads.append(threading.Thread(target=probe, args=(stop, latencies)))
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    return {
        "registry_rps": len(latencies) / seconds,
        "registry_median_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "registry_max_ms": 1000 * max(latencies) if latencies else float("nan"),
        "login_posts_per_s": sum(counts) / seconds,
    }


def serve(env: dict, settings_module: str) -> subprocess.Popen:
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
            "--timeout",
            "120",
            "--access-logfile",
            "/dev/null",
        ],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": settings_module, "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(120):
        try:
            if fetch(opener(), "/registry/", timeout=5) == 200:
                return server
        except OSError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="limits")
    args = parser.parse_args()

    ensure_database(args.url, args.database)
    var = Path(tempfile.mkdtemp(prefix="login-flood-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"{args.url}/{args.database}",
        "CERT_VAR_DIR": str(var),
        "SECRET_KEY": "bench-" + "x" * 44,
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)  # noqa: S603

    results = {}
    for label, module in [
        ("before (no lockout)", "settings_no_lockout"),
        ("after (django-axes)", "certification.settings"),
    ]:
        subprocess.run([*manage, "axes_reset"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
        server = serve(env, module)
        try:
            idle = measure(min(5.0, args.seconds), 0)
            flooded = measure(args.seconds, args.clients)
        finally:
            server.terminate()
            server.wait(timeout=30)
        results[label] = (idle, flooded)

    print(
        f"registry page, one probe client, {args.clients} clients posting wrong passwords "
        f"for {args.seconds:.0f} s (gunicorn -w 2):"
    )
    for label, (idle, flooded) in results.items():
        print(
            f"  {label:22s} idle {idle['registry_rps']:6.1f} req/s {idle['registry_median_ms']:7.1f} ms | "
            f"flooded {flooded['registry_rps']:6.1f} req/s median {flooded['registry_median_ms']:7.1f} ms "
            f"max {flooded['registry_max_ms']:7.1f} ms | login posts {flooded['login_posts_per_s']:7.1f}/s"
        )


if __name__ == "__main__":
    main()
