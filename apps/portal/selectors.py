"""Reads the portal needs beyond the apps' own selectors: the review queue, the registry page,
comparisons, runners and schedules. Each returns what its page shows in a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.accounts.models import Organization, OrganizationKind
from apps.certificates.models import Certificate
from apps.certificates.selectors import certificates_public
from apps.registry.models import HardwareTarget, Runner
from apps.runs.models import Campaign, CampaignState, Job, JobState, Program
from apps.runs.transitions import IN_PROGRESS_STATES

# Sortable registry columns: the API's ordering fields plus the columns the page shows.
REGISTRY_ORDERING = {
    "serial": "serial",
    "issued_at": "issued_at",
    "valid_until": "valid_until",
    "chip": "subject_chip_sku",  # the SKU as certified
    "vendor": "vendor__name",
    "level": "level",
    "status": "status",
}
REGISTRY_DEFAULT_ORDER = "-issued_at"


def review_queue() -> QuerySet[Campaign]:
    """Campaigns awaiting review, oldest first. `waiting_since` is when their last job ended (the
    evaluation follows at once), or the submission for campaigns without jobs."""
    return (
        Campaign.objects.filter(state=CampaignState.AWAITING_REVIEW)
        .select_related("target__chip", "program", "vendor", "submitted_by")
        .annotate(
            waiting_since=Coalesce("finished_at", "submitted_at", "created_at"),
            failed_blockers=Count(
                "criterion_results",
                filter=Q(criterion_results__blocker=True, criterion_results__outcome="fail"),
            ),
        )
        .order_by("waiting_since", "pk")
    )


def registry_ordering(value: str | None) -> tuple[str, list[str]]:
    """The validated sort key (as given, e.g. "-valid_until") and its ORM ordering."""
    key = (value or REGISTRY_DEFAULT_ORDER).strip()
    field = REGISTRY_ORDERING.get(key.lstrip("-"))
    if field is None:
        key, field = REGISTRY_DEFAULT_ORDER, REGISTRY_ORDERING["issued_at"]
    prefix = "-" if key.startswith("-") else ""
    return key, [f"{prefix}{field}", f"{prefix}id"]


def registry_certificates() -> QuerySet[Certificate]:
    """The registry list's rows: only the columns the table shows (the payload text stays in the DB)."""
    return certificates_public().only(
        "serial",
        "level",
        "status",
        "issued_at",
        "valid_until",
        "program__code",
        "program__version",
        "program__title",
        "vendor__name",
        "vendor__slug",
        "subject_chip_sku",
        "subject_chip_name",
        "subject_target_slug",
        "subject_backend",
        "signing_key__key_id",
        "superseded_by__serial",
    )


@dataclass(frozen=True)
class RegistryFacets:
    vendors: list[tuple[str, str]]
    backends: list[str]
    programs: list[str]
    levels: list[str]


def registry_facets() -> RegistryFacets:
    """Choices for the registry's filter form (small tables; never the certificates themselves)."""
    programs = list(Program.objects.only("code", "definition").order_by("code", "version"))
    levels: list[str] = []
    for program in programs:
        for level in program.definition.get("levels", []):
            if level["code"] not in levels:
                levels.append(level["code"])
    return RegistryFacets(
        vendors=list(
            Organization.objects.filter(kind=OrganizationKind.VENDOR)
            .order_by("name")
            .values_list("slug", "name")
        ),
        # order_by("backend"): the model's ordering (slug) would make DISTINCT one row per target.
        backends=list(
            HardwareTarget.objects.order_by("backend").values_list("backend", flat=True).distinct()
        ),
        programs=sorted({p.code for p in programs}),
        levels=levels,
    )


def certificates_compared(*, serials: list[str]) -> list[Certificate]:
    """The named certificates in the order given; the page reads each chip's declared specifications
    from the signed subject in the payload, never from the live chip row."""
    found = {c.serial: c for c in certificates_public().filter(serial__in=serials)}
    return [found[s] for s in serials if s in found]


@dataclass(frozen=True)
class RunnerRow:
    runner: Runner
    current_jobs: list[Job]
    heartbeat_age_s: float | None
    stale: bool


def runner_rows(
    *, runners: QuerySet[Runner], stale_after_s: int, now: datetime | None = None
) -> list[RunnerRow]:
    now = now or timezone.now()
    runners = list(runners.order_by("name"))
    running: dict[int, list[Job]] = {}
    for job in Job.objects.filter(runner__in=runners, state=JobState.RUNNING).select_related(
        "campaign__target"
    ):
        running.setdefault(job.runner_id, []).append(job)
    rows = []
    for runner in runners:
        age = (now - runner.last_heartbeat_at).total_seconds() if runner.last_heartbeat_at else None
        rows.append(RunnerRow(runner, running.get(runner.pk, []), age, age is None or age > stale_after_s))
    return rows


def periodic_tasks() -> list[PeriodicTask]:
    return list(
        PeriodicTask.objects.select_related("interval", "crontab", "solar", "clocked").order_by("name")
    )


def campaigns_running(campaigns: QuerySet[Campaign]) -> QuerySet[Campaign]:
    return campaigns.filter(state__in=IN_PROGRESS_STATES).order_by(
        F("submitted_at").asc(nulls_last=True), "pk"
    )
