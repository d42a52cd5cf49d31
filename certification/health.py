"""Probes for operators: /healthz (the process answers) and /readyz (it can do its work).

/readyz runs each check with its latency and answers 200 when all pass, 503 naming the ones that
failed: the database answers, every migration is applied, the broker accepts a connection, the
signing key is present and readable (or, before the first certificate, its directory can take one),
and the certification programs are loaded. Neither probe needs a login; neither says more than
which dependency failed and why in one line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

BROKER_TIMEOUT_S = 2.0


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "answers"


def _migrations() -> str:
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
        raise RuntimeError(f"{len(plan)} migrations not applied ({names})")
    return "all applied"


def _broker() -> str:
    from certification.celery import app

    url = str(app.conf.broker_write_url or app.conf.broker_url)
    if url.startswith("filesystem"):
        folders = [
            (app.conf.broker_transport_options or {}).get(key) for key in ("data_folder_in", "control_folder")
        ]
        missing = [folder for folder in folders if folder and not os.access(folder, os.W_OK)]
        if missing:
            raise RuntimeError(f"embedded broker folder not writable: {missing[0]}")
        return "embedded (files)"
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_S)
        return f"{conn.transport_cls} connected"


def _signing_key() -> str:
    from apps.certificates.models import SigningKey, SigningKeyStatus
    from apps.certificates.services.keys import signing_key_dir, signing_private_key

    key = SigningKey.objects.filter(status=SigningKeyStatus.ACTIVE).first()
    if key is None:
        directory = signing_key_dir()
        parent = directory if directory.exists() else directory.parent
        if not os.access(parent, os.W_OK):
            raise RuntimeError(f"no active signing key, and {directory} cannot take one")
        return "none yet (made at the first issue)"
    signing_private_key(key)  # ImproperlyConfigured: missing, readable by others, or not the pair
    return f"{key.key_id[:16]} readable"


def _programs() -> str:
    from apps.runs.models import Program, ProgramStatus

    count = Program.objects.filter(status=ProgramStatus.ACTIVE).count()
    if count == 0:
        raise RuntimeError("no active certification program (run manage.py load_programs)")
    return f"{count} active"


CHECKS: dict[str, Callable[[], str]] = {
    "database": _database,
    "migrations": _migrations,
    "broker": _broker,
    "signing_key": _signing_key,
    "programs": _programs,
}


def readiness() -> tuple[bool, dict[str, dict[str, Any]]]:
    results: dict[str, dict[str, Any]] = {}
    ready = True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            detail, ok = check(), True
        except Exception as exc:  # noqa: BLE001 - any failure of a dependency is "not ready", named
            detail, ok = f"{type(exc).__name__}: {exc}"[:300], False
        results[name] = {
            "status": "ok" if ok else "fail",
            "detail": detail,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        ready = ready and ok
    return ready, results


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process serves requests (no dependency is touched)."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    ready, checks = readiness()
    failed = [name for name, check in checks.items() if check["status"] != "ok"]
    body: dict[str, Any] = {"status": "ok" if ready else "fail", "failed": failed, "checks": checks}
    if not ready:
        body["message"] = f"not ready: {', '.join(failed)}"
    return JsonResponse(body, status=200 if ready else 503)
