"""Reads of campaigns and jobs, scoped to what the caller may see."""

from __future__ import annotations

import hashlib
from datetime import date

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from apps.accounts.models import Membership
from apps.accounts.selectors import vendor_rows_visible_to
from apps.runs.models import Campaign, Job, Program, ProgramStatus


def campaigns_visible_to(membership: Membership | None) -> QuerySet[Campaign]:
    campaigns = Campaign.objects.select_related(
        "target__chip__vendor", "program", "vendor", "submitted_by"
    ).prefetch_related(
        Prefetch(
            "jobs", queryset=Job.objects.select_related("model", "runner", "document__runner").order_by("id")
        ),
        "model_artifacts",
    )
    return vendor_rows_visible_to(campaigns, membership, owner="vendor_id")


def jobs_visible_to(membership: Membership | None) -> QuerySet[Job]:
    jobs = Job.objects.select_related("campaign__target", "model", "runner", "document")
    return vendor_rows_visible_to(jobs, membership, owner="campaign__vendor_id")


def program_effective(program: Program) -> date | None:
    """The date from which a program version applies (None: it applies from when it was loaded)."""
    effective = program.definition.get("effective")
    try:
        return date.fromisoformat(str(effective)) if effective else None
    except ValueError:
        return None


def program_current(*, code: str, version: str | None = None, today: date | None = None) -> Program | None:
    """The active program `code` at `version`, or by default the newest version in effect today.

    A version applies from its `effective` date; before it, it can be chosen only by naming it. When
    no version of the code is in effect yet, the default is the one that takes effect first.
    """
    programs = Program.objects.filter(code=code, status=ProgramStatus.ACTIVE)
    if version:
        return programs.filter(version=version).first()
    return _newest_in_effect(list(programs), today=today or timezone.localdate())


def program_planning_suite(*, code: str, level: str, suite: str, today: date | None = None) -> Program | None:
    """The version of `code` to submit a `level` campaign under so that its jobs include `suite`: the
    default version (program_current) when its level plans the suite, else, by the same rule among the
    active versions whose level plans it, the newest in effect or the one that takes effect first
    (named, as a version not yet in effect must be). None when no active version's level plans it."""

    def plans(program: Program) -> bool:
        definition = program.level(level)
        return definition is not None and suite in (definition.get("suites") or {})

    today = today or timezone.localdate()
    current = program_current(code=code, today=today)
    if current is not None and plans(current):
        return current
    programs = Program.objects.filter(code=code, status=ProgramStatus.ACTIVE)
    return _newest_in_effect([p for p in programs if plans(p)], today=today)


def _newest_in_effect(programs: list[Program], *, today: date) -> Program | None:
    # Versions are compared numerically part by part ("1.10" is newer than "1.9").
    def key(program: Program):
        return tuple(int(p) if p.isdigit() else p for p in program.version.split("."))

    in_effect = [p for p in programs if (program_effective(p) or today) <= today]
    if in_effect:
        return max(in_effect, key=key)
    return min(programs, key=lambda p: (program_effective(p) or today, key(p)), default=None)


ARTIFACT_REQUEST_MAX_SKEW_S = 300


def _runner_request_first_use(*, key_id: str, payload: bytes) -> bool:
    """True the first time a signed request is seen; its signed bytes are its nonce.

    Each request signs a timestamp to the microsecond, so two honest requests never sign the same
    bytes; the nonce is kept in the shared cache for twice the accepted clock skew, after which
    the timestamp alone refuses the request. `cache.add` is atomic in Redis and in the database.
    """
    from django.core.cache import cache

    nonce = hashlib.sha256(key_id.encode() + b"\n" + payload).hexdigest()
    return cache.add(f"runner-request:{nonce}", 1, timeout=2 * ARTIFACT_REQUEST_MAX_SKEW_S)


def model_artifact_for_runner(*, headers, path: str, sha256: str):
    """The weights a signed runner request may fetch, or None.

    The request must be signed by a registered, enabled runner (over method, path and a timestamp
    within five minutes), be used once only, and the runner must serve a target with a queued or
    running job of that model.
    """
    from datetime import datetime, timedelta

    from django.utils import timezone

    from apps.registry.models import ModelArtifact, Runner, RunnerStatus
    from apps.runs.models import JobState
    from runners.artifacts import request_signature_payload
    from runners.signing import verify_signature

    name, key_id = headers.get("X-Runner", ""), headers.get("X-Runner-Key-Id", "")
    timestamp, signature = headers.get("X-Runner-Timestamp", ""), headers.get("X-Runner-Signature", "")
    try:
        sent_at = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if sent_at.tzinfo is None or abs(timezone.now() - sent_at) > timedelta(
        seconds=ARTIFACT_REQUEST_MAX_SKEW_S
    ):
        return None
    runner = Runner.objects.filter(name=name, key_id=key_id).exclude(status=RunnerStatus.DISABLED).first()
    payload = request_signature_payload("GET", path, timestamp)
    if runner is None or not verify_signature(runner.public_key, payload, signature):
        return None
    if not _runner_request_first_use(key_id=runner.key_id, payload=payload):
        return None  # a replay of a request already served (or refused)
    needed = Job.objects.filter(
        model__weights_sha256=sha256,
        state__in=[JobState.QUEUED, JobState.RUNNING],
        campaign__target__runners=runner,
    )
    if not needed.exists():
        return None
    return ModelArtifact.objects.filter(weights_sha256=sha256).first()
