"""Reads of campaigns and jobs, scoped to what the caller may see."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.accounts.models import Membership
from apps.runs.models import Campaign, Job, Program, ProgramStatus


def campaigns_visible_to(membership: Membership | None) -> QuerySet[Campaign]:
    campaigns = Campaign.objects.select_related("target__chip__vendor", "program", "vendor", "submitted_by").prefetch_related(
        Prefetch("jobs", queryset=Job.objects.select_related("model", "runner", "document__runner").order_by("id")), "model_artifacts"
    )
    if membership is None:
        return campaigns.none()
    if membership.is_authority:
        return campaigns
    if membership.is_vendor:
        return campaigns.filter(vendor_id=membership.organization_id)
    return campaigns.none()


def jobs_visible_to(membership: Membership | None) -> QuerySet[Job]:
    jobs = Job.objects.select_related("campaign__target", "model", "runner", "document")
    if membership is None:
        return jobs.none()
    if membership.is_authority:
        return jobs
    if membership.is_vendor:
        return jobs.filter(campaign__vendor_id=membership.organization_id)
    return jobs.none()


def program_current(*, code: str, version: str | None = None) -> Program | None:
    programs = Program.objects.filter(code=code, status=ProgramStatus.ACTIVE)
    if version:
        return programs.filter(version=version).first()
    # Versions are compared numerically part by part ("1.10" is newer than "1.9").
    def key(program: Program):
        return tuple(int(p) if p.isdigit() else p for p in program.version.split("."))

    return max(programs, key=key, default=None)
