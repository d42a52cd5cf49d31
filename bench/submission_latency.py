"""Benchmark: how long a portal campaign submission takes with no broker configured (the embedded default).

A fresh var/ directory of its own (SQLite, the broker in files): migrate, seed the demo registry without
certifying, then POST /campaigns/new/ ROUNDS times as the demo vendor engineer (local CPU, AIA baseline:
three jobs) with the Django test client, through the real view, transaction and on-commit publishing.
No worker runs: each request must only publish. Prints p50/p90/max in milliseconds and the messages
left on the runner queue; before the embedded worker the request ran the suites (170 s).

    .venv/bin/python bench/submission_latency.py [--rounds 20]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="bench-submission-"))
    for name in [
        k for k in os.environ if k.startswith("CELERY_") or k in {"DATABASE_URL", "EMBEDDED_BROKER_DIR"}
    ]:
        del os.environ[name]
    os.environ.update(
        CERT_VAR_DIR=str(var_dir),
        SECRET_KEY="bench-submission",
        DJANGO_SETTINGS_MODULE="certification.settings",
        EMBEDDED_RUNNER_KEY_FILE=str(var_dir / "keys" / "local-runner.pem"),
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from io import StringIO

    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from apps.accounts.models import Membership, Role
    from apps.registry.models import HardwareTarget, ModelArtifact
    from apps.runs.models import Campaign
    from apps.runs.selectors import program_current

    assert settings.CELERY_EMBEDDED and not settings.CELERY_TASK_ALWAYS_EAGER
    call_command("migrate", verbosity=0)
    call_command("seed_demo", "--skip-certification", stdout=StringIO(), stderr=StringIO())
    target = HardwareTarget.objects.get(slug="local-cpu")
    engineer = (
        Membership.objects.filter(organization=target.chip.vendor, role=Role.VENDOR_ENGINEER).first().user
    )
    models = list(ModelArtifact.objects.filter(owner=target.chip.vendor).values_list("pk", flat=True))
    program = program_current(code="AIA", version=None)
    client = Client()
    client.force_login(engineer)
    timings = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        response = client.post(
            "/campaigns/new/",
            {"target": target.pk, "program": program.pk, "level": "baseline", "models": models},
        )
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 302, response.content[:500]
    queued = len(list((var_dir / "broker" / "queue").glob(f"*.{target.queue}.msg")))
    timings.sort()
    print(
        f"portal submissions without a broker: {args.rounds} rounds, {Campaign.objects.count()} campaigns, "
        f"{queued} job messages queued for {target.queue}"
    )
    print(
        f"p50 {statistics.median(timings):.1f} ms   p90 {timings[int(0.9 * (len(timings) - 1))]:.1f} ms   "
        f"max {timings[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
