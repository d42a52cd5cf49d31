"""A campaign submitted from the portal on a fresh machine (no broker configured) is queued for the
background workers: the request answers at once and runs no suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from apps.runs.models import Campaign, JobState
from tests.factories import HardwareTargetFactory, ModelArtifactFactory
from tests.runs.broker import point_at, published

ROOT = Path(__file__).resolve().parents[2]


def embedded_default(var_dir: Path) -> dict:
    """The Celery settings a checkout gets with no broker in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_") and k != "EMBEDDED_BROKER_DIR"}
    env.update(CERT_VAR_DIR=str(var_dir), SECRET_KEY="x")
    code = (
        "import json; from certification import settings as s; print(json.dumps({'eager': "
        "s.CELERY_TASK_ALWAYS_EAGER, 'url': s.CELERY_BROKER_URL, 'options': getattr(s, 'CELERY_BROKER_TRANSPORT_OPTIONS', {})}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_portal_submission_with_no_broker_answers_within_a_second_and_runs_nothing(
    transactional_db, cast, login, program, settings, tmp_path
):
    from certification.celery import app

    default = embedded_default(tmp_path / "var")
    settings.CELERY_TASK_ALWAYS_EAGER = default["eager"]
    settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS = (
        default["url"],
        default["options"] or {},
    )
    saved = (
        app.conf.get("broker_url"),
        dict(app.conf.broker_transport_options or {}),
        (app.conf.get("broker_read_url"), app.conf.get("broker_write_url")),
    )
    target = HardwareTargetFactory(chip__vendor=cast.vendor)
    model = ModelArtifactFactory(owner=cast.vendor)
    client = login(cast.owner)
    assert (
        client.get("/campaigns/new/").status_code == 200
    )  # the vendor opens the form first, as in a browser
    point_at(app, settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    try:
        started = time.perf_counter()
        response = client.post(
            "/campaigns/new/",
            {"target": target.pk, "program": program.pk, "level": "baseline", "models": [model.pk]},
        )
        elapsed = time.perf_counter() - started
    finally:
        point_at(app, *saved)
    campaign = Campaign.objects.get(target=target)
    assert response.status_code == 302 and response["Location"] == f"/campaigns/{campaign.pk}/"
    assert elapsed < 1.0, f"the submission took {elapsed:.2f}s"
    jobs = list(campaign.jobs.all())
    assert len(jobs) == 3 and all(job.state == JobState.QUEUED and job.started_at is None for job in jobs)
    # Each job waits as a message for the target's runner worker, in the broker made of files under var/.
    messages = published(tmp_path / "var" / "broker", target.queue)
    assert sorted(m["id"] for m in messages) == sorted(job.task_id for job in jobs)
