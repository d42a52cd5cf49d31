"""Campaign submission and the life of its jobs. Every transition checks the state it comes from,
so a re-delivered message or a double click does no harm."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.module_loading import import_string
from django.utils.translation import gettext

from apps.accounts.models import Organization
from apps.audit.services import audit_record
from apps.registry.models import HardwareTarget, ModelArtifact
from apps.runs.dispatch import job_dispatch, job_messages_revoke, jobs_dispatch
from apps.runs.models import (
    JOB_DONE_STATES,
    Campaign,
    CampaignState,
    ErrorClass,
    Job,
    JobState,
    JobSuite,
    Program,
    ProgramStatus,
    ResultDocument,
)
from apps.runs.specs import job_spec_build
from apps.runs.transitions import OPEN_STATES, transition_allowed
from certification.recorded_text import say

# Hard limits per suite (seconds); the runner's soft limit is a little shorter than the hard one.
SUITE_TIME_LIMITS: dict[str, int] = {
    JobSuite.CONFORMANCE: 900,
    JobSuite.PERFORMANCE: 1200,
    JobSuite.MODEL: 1800,
    JobSuite.SERVING: 1800,
    JobSuite.COLLECTIVES: 900,
}


_KEEP = object()


class CampaignTransitionRefused(ValidationError):
    """The transitions table does not let the campaign move from its state to the one asked."""


def campaign_transition(
    campaign: Campaign,
    to_state: str,
    *,
    actor: Any = None,
    reason: str | None = None,
    finished_at: Any = _KEEP,
    audit_action: str | None = None,
    payload: dict[str, Any] | None = None,
) -> Campaign:
    """Move a campaign (locked by the caller) to `to_state` if apps/runs/transitions.py allows it.

    The one writer of Campaign.state: sets the state, the reason when given and `finished_at` when
    given, saves those fields, and records `audit_action` (by `actor`, with `payload`) when named.
    Raises CampaignTransitionRefused (a ValidationError) for a move the table does not list."""
    if not transition_allowed(campaign.state, to_state):
        raise CampaignTransitionRefused(
            gettext("A campaign that is %(state)s cannot become %(to_state)s.")
            % {
                "state": campaign.get_state_display().lower(),
                "to_state": CampaignState(to_state).label.lower(),
            }
        )
    campaign.state = to_state
    fields = ["state", "updated_at"]
    if reason is not None:
        campaign.state_reason = reason
        fields.append("state_reason")
    if finished_at is not _KEEP:
        campaign.finished_at = finished_at
        fields.append("finished_at")
    campaign.save(update_fields=fields)
    if audit_action:
        audit_record(action=audit_action, obj=campaign, actor=actor, payload=payload or {})
    return campaign


def _campaigns_start(*, job_id: int) -> None:
    """A claimed or reporting job's queued campaign is running (one UPDATE: a table-listed move)."""
    assert transition_allowed(CampaignState.QUEUED, CampaignState.RUNNING)
    Campaign.objects.filter(jobs__pk=job_id, state=CampaignState.QUEUED).update(state=CampaignState.RUNNING)


class TooManyOpenCampaigns(ValidationError):
    """The target already has settings.MAX_OPEN_CAMPAIGNS_PER_TARGET open campaigns (the API's 409)."""


def _check_open_campaigns(*, target: HardwareTarget) -> None:
    # The target's row lock makes concurrent submissions for one target count one after another.
    HardwareTarget.objects.select_for_update().filter(pk=target.pk).exists()
    limit = settings.MAX_OPEN_CAMPAIGNS_PER_TARGET
    if Campaign.objects.filter(target=target, state__in=OPEN_STATES).count() >= limit:
        raise TooManyOpenCampaigns(
            gettext(
                "Target %(target)s already has %(limit)s open campaign(s); wait for one to finish or cancel one."
            )
            % {"target": target.slug, "limit": limit}
        )


def _new_challenge() -> str:
    return secrets.token_hex(32)


def _campaign_models(
    *, vendor: Organization, level: dict[str, Any], model_artifacts: list[ModelArtifact]
) -> None:
    plan = level.get("suites", {}).get("model")
    if plan is None:
        return
    for artifact in model_artifacts:
        if artifact.owner_id != vendor.pk:
            raise ValidationError({"models": gettext("Model %(pk)s does not exist.") % {"pk": artifact.pk}})
    if len(model_artifacts) < plan.get("min_models", 0):
        raise ValidationError(
            {
                "models": gettext("Level %(level)s needs at least %(count)s model(s).")
                % {"level": level["code"], "count": plan["min_models"]}
            }
        )
    tasks = {artifact.task for artifact in model_artifacts}
    missing = [task for task in plan.get("required_tasks", []) if task not in tasks]
    if missing:
        raise ValidationError(
            {
                "models": gettext("Level %(level)s needs a model for each task: %(missing)s.")
                % {"level": level["code"], "missing": missing}
            }
        )
    architectures = {artifact.architecture for artifact in model_artifacts}
    missing = [a for a in plan.get("required_architectures", []) if a not in architectures]
    if missing:
        raise ValidationError(
            {
                "models": gettext("Level %(level)s needs a model of each architecture: %(missing)s.")
                % {"level": level["code"], "missing": missing}
            }
        )


def _suite_plan(level: dict[str, Any], suite: str) -> dict[str, Any]:
    """The level's plan of one suite; the serving suite also carries the level's LoadGen settings (its
    `serving` threshold, with the source), which the runner applies as they are."""
    plan = dict(level["suites"][suite])
    if suite == JobSuite.SERVING:
        entry = (level.get("thresholds") or {}).get("serving") or {}
        if isinstance(entry.get("value"), dict):
            plan["settings"] = {
                **entry["value"],
                "source": f"program level {level['code']}: {entry.get('source', '')}",
            }
    return plan


@transaction.atomic
def campaign_submit(
    *,
    vendor: Organization,
    target: HardwareTarget,
    program: Program,
    level: str,
    model_artifacts: list[ModelArtifact],
    submitted_by=None,
    purpose: str = "certification",
) -> Campaign:
    """Create the campaign and one job per suite of the level, each with a fresh secret challenge,
    and send each job to its target's queue once the transaction has committed."""
    if target.chip.vendor_id != vendor.pk:
        raise ValidationError({"target": gettext("Unknown hardware target.")})
    if program.status != ProgramStatus.ACTIVE:
        raise ValidationError(
            {"program": gettext("Program %(program)s is not active.") % {"program": program}}
        )
    level_definition = program.level(level)
    if level_definition is None:
        raise ValidationError(
            {
                "level": gettext("Program %(program)s has no level %(level)s; use one of %(levels)s.")
                % {"program": program, "level": repr(level), "levels": program.level_codes()}
            }
        )
    _campaign_models(vendor=vendor, level=level_definition, model_artifacts=model_artifacts)
    if purpose == "certification":  # surveillance re-runs are the authority's, never capped
        _check_open_campaigns(target=target)

    now = timezone.now()
    campaign = Campaign.objects.create(
        vendor=vendor,
        target=target,
        program=program,
        level=level,
        submitted_by=submitted_by,
        purpose=purpose,
        state=CampaignState.QUEUED,
        submitted_at=now,
    )
    campaign.model_artifacts.set(model_artifacts)
    suites = level_definition["suites"]
    jobs: list[Job] = []
    for suite in (JobSuite.CONFORMANCE, JobSuite.PERFORMANCE, JobSuite.COLLECTIVES):
        if suite in suites:
            jobs.append(Job(campaign=campaign, suite=suite, challenge=_new_challenge()))
    if JobSuite.MODEL in suites:
        jobs.extend(
            Job(campaign=campaign, suite=JobSuite.MODEL, model=artifact, challenge=_new_challenge())
            for artifact in model_artifacts
        )
    if JobSuite.SERVING in suites:  # one LoadGen job per model, like the model suite
        jobs.extend(
            Job(campaign=campaign, suite=JobSuite.SERVING, model=artifact, challenge=_new_challenge())
            for artifact in model_artifacts
        )
    for job in jobs:
        job.state = JobState.QUEUED
        job.queued_at = now
        job.deadline_at = now + timedelta(seconds=SUITE_TIME_LIMITS[job.suite] * job.max_attempts)
        job.save()
        job.spec = job_spec_build(
            job=job,
            suite_plan=_suite_plan(level_definition, job.suite),
            time_limit_s=SUITE_TIME_LIMITS[job.suite],
        )
        job.save(update_fields=["spec"])
    audit_record(
        action="campaign.submitted",
        obj=campaign,
        actor=submitted_by,
        payload={
            "target": target.slug,
            "program": str(program),
            "level": level,
            "jobs": [j.pk for j in jobs],
            "models": [m.pk for m in model_artifacts],
            "purpose": purpose,
        },
    )
    job_ids = [job.pk for job in jobs]
    transaction.on_commit(lambda: jobs_dispatch(job_ids=job_ids))
    return campaign


def job_claim(*, job_id: int, runner_id: int | None = None) -> bool:
    """Atomically move a queued job to running; False if another delivery already claimed it."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, state=JobState.QUEUED).update(
        state=JobState.RUNNING, started_at=now, last_seen_at=now, runner_id=runner_id, progress=0.0
    )
    if claimed:
        Job.objects.filter(pk=job_id).update(attempts=F("attempts") + 1)
        _campaigns_start(job_id=job_id)
    return claimed == 1


def job_progress(
    *, job_id: int, fraction: float, message: str = "", eta_seconds: float | None = None
) -> None:
    """Record progress reported by a runner; ignored unless the job is queued or running.

    Without an estimate from the runner, the ETA extrapolates the elapsed time at the current rate."""
    fraction = min(max(float(fraction), 0.0), 1.0)
    now = timezone.now()
    if eta_seconds is None and 0.0 < fraction < 1.0:
        started_at = Job.objects.filter(pk=job_id).values_list("started_at", flat=True).first()
        if started_at is not None:
            eta_seconds = round((now - started_at).total_seconds() * (1.0 - fraction) / fraction, 1)
    # Progress is the job's sign of life: the stuck-job sweep requeues only jobs silent for JOB_SILENCE_S.
    updated = Job.objects.filter(pk=job_id, state__in=[JobState.QUEUED, JobState.RUNNING]).update(
        progress=fraction,
        progress_message=message[:200],
        eta_seconds=eta_seconds,
        last_seen_at=now,
    )
    if updated:
        Job.objects.filter(pk=job_id, state=JobState.QUEUED).update(state=JobState.RUNNING, started_at=now)
        _campaigns_start(job_id=job_id)


@transaction.atomic
def job_fail(*, job_id: int, error_class: str, message: str, retry: bool = False) -> Job | None:
    """End a job with an error, or requeue it when it may be retried (infrastructure errors only)."""
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    if job is None or job.state in JOB_DONE_STATES:
        return job
    # A job whose document is stored (awaiting its reveal) is never run again under a new challenge.
    has_evidence = ResultDocument.objects.filter(job_id=job.pk).exists()
    if (
        retry
        and error_class == ErrorClass.INFRASTRUCTURE
        and job.attempts < job.max_attempts
        and not has_evidence
    ):
        stale_task_ids = [job.task_id] if job.task_id else []
        job.state = JobState.QUEUED
        job.challenge = _new_challenge()  # a retried job must not reuse inputs a failed run has seen
        job.spec = {**job.spec, "challenge": job.challenge}
        job.error_class, job.error_message = error_class, message[:2000]
        job.progress, job.queued_at, job.last_seen_at = 0.0, timezone.now(), None
        job.save()
        audit_record(
            action="job.requeued", obj=job, payload={"error_class": error_class, "message": message[:500]}
        )
        # The earlier attempt's message, if still queued somewhere, is dropped rather than run for nothing.
        transaction.on_commit(
            lambda: (job_messages_revoke(task_ids=stale_task_ids), job_dispatch(job_id=job.pk))
        )
        return job
    job.state = JobState.FAILED
    job.error_class, job.error_message = error_class, message[:2000]
    job.finished_at = timezone.now()
    job.save()
    audit_record(action="job.failed", obj=job, payload={"error_class": error_class, "message": message[:500]})
    transaction.on_commit(lambda: _after_job_failed(job.campaign_id))
    return job


def _after_job_failed(campaign_id: int) -> None:
    from apps.runs.services.reveal import reveal_requests_publish

    # The campaign's drawn reveals may have waited for this job's evidence, which will not come.
    reveal_requests_publish(campaign_id=campaign_id)
    campaign_check_completion(campaign_id=campaign_id)


@transaction.atomic
def campaign_cancel(*, campaign: Campaign, actor=None, reason: str = "") -> Campaign:
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if not transition_allowed(campaign.state, CampaignState.CANCELLED):
        raise CampaignTransitionRefused(
            gettext("A campaign that is %(state)s cannot be cancelled.")
            % {"state": campaign.get_state_display().lower()}
        )
    now = timezone.now()
    open_jobs = campaign.jobs.exclude(state__in=JOB_DONE_STATES)
    task_ids = [task_id for task_id in open_jobs.values_list("task_id", flat=True) if task_id]
    open_jobs.update(state=JobState.CANCELLED, finished_at=now)
    campaign_transition(
        campaign,
        CampaignState.CANCELLED,
        actor=actor,
        reason=reason,
        finished_at=now,
        audit_action="campaign.cancelled",
        payload={"reason": reason},
    )
    # Runner workers drop the queued messages; a result that still arrives is refused at ingestion.
    transaction.on_commit(lambda: job_messages_revoke(task_ids=task_ids))
    return campaign


@transaction.atomic
def job_rerun(*, job: Job, actor=None) -> Job:
    """Send a failed job again with a fresh challenge; its campaign goes back to running."""
    job = Job.objects.select_for_update().select_related("campaign").get(pk=job.pk)
    if job.state != JobState.FAILED:
        raise ValidationError(gettext("Only a failed job can be re-run."))
    campaign = Campaign.objects.select_for_update().get(pk=job.campaign_id)
    if not transition_allowed(campaign.state, CampaignState.RUNNING):
        raise CampaignTransitionRefused(
            gettext("The campaign is %(state)s; its jobs cannot be re-run.")
            % {"state": campaign.get_state_display().lower()}
        )
    job.state, job.challenge = JobState.QUEUED, _new_challenge()
    job.spec = {**job.spec, "challenge": job.challenge}
    job.attempts, job.progress, job.error_class, job.error_message = 0, 0.0, "", ""
    job.queued_at, job.started_at, job.finished_at = timezone.now(), None, None
    job.deadline_at = job.queued_at + timedelta(seconds=SUITE_TIME_LIMITS[job.suite] * job.max_attempts)
    job.save()
    campaign_transition(campaign, CampaignState.RUNNING, actor=actor, reason="", finished_at=None)
    audit_record(action="job.rerun", obj=job, actor=actor)
    transaction.on_commit(lambda: job_dispatch(job_id=job.pk))
    return job


def job_label(job: Job) -> str:
    """A job's label as a reason records it ("Job 7 model:tiny-bert", the same English as str(job)), a
    recorded phrase whose suite is read in the reader's language."""
    if job.model is not None:
        return say("job.label_model", id=job.pk, suite=job.suite, model=job.model.name)
    return say("job.label", id=job.pk, suite=job.suite)


def campaign_check_completion(*, campaign_id: int) -> None:
    """When every job has ended, move the campaign on: to evaluation, or to failed."""
    with transaction.atomic():
        campaign = (
            Campaign.objects.select_for_update()
            .filter(pk=campaign_id, state__in=[CampaignState.QUEUED, CampaignState.RUNNING])
            .first()
        )
        if campaign is None or campaign.jobs.exclude(state__in=JOB_DONE_STATES).exists():
            return
        now = timezone.now()
        failed = campaign.jobs.filter(Q(state=JobState.FAILED) | Q(state=JobState.CANCELLED)).select_related(
            "model"
        )
        if failed.filter(~Q(error_class=ErrorClass.PRODUCT_FAILURE)).exists():
            # Missing evidence (infrastructure, timeout, rejected documents) cannot be evaluated.
            with translation.override("en"):  # the record's words, whatever the request's language
                reason = say(
                    "campaign.failed",
                    jobs="; ".join(
                        say(
                            "campaign.failed_job",
                            job=job_label(job),
                            error=job.get_error_class_display() or job.state,
                            message=job.error_message,
                        )
                        for job in failed
                    ),
                )
            campaign_transition(
                campaign,
                CampaignState.FAILED,
                reason=reason,
                finished_at=now,
                audit_action="campaign.failed",
                payload={"reason": reason},
            )
            return
        campaign_transition(
            campaign, CampaignState.EVALUATING, finished_at=now, audit_action="campaign.evaluating"
        )
    evaluate = import_string(settings.CAMPAIGN_EVALUATOR)
    evaluate(campaign_id=campaign_id)
