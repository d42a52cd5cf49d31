"""Submit a certification campaign for a hardware target and follow it to its end."""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

from apps.accounts.models import Membership, Role
from apps.registry.models import ModelArtifact
from apps.registry.selectors import AmbiguousTarget, target_by_reference
from apps.runs.embedded import EmbeddedWorkers, embedded_worker_running
from apps.runs.models import Campaign, Job
from apps.runs.selectors import program_current
from apps.runs.services.campaigns import campaign_submit
from apps.runs.transitions import ENDED_WITHOUT_VERDICT_STATES, OPEN_STATES, RUNS_OVER_STATES


def progress_bar(fraction: float, width: int = 30) -> str:
    filled = int(round(fraction * width))
    return "[" + "#" * filled + "-" * (width - filled) + f"] {fraction * 100:5.1f}%"


class Command(BaseCommand):
    help = "Submit a campaign for TARGET (<vendor>/<slug>, or the slug when one vendor uses it) as one of its vendor's engineers and follow it with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("target")
        parser.add_argument("--program", default="AIA")
        parser.add_argument("--program-version", default=None)
        parser.add_argument("--level", default="baseline")
        parser.add_argument(
            "--model",
            action="append",
            default=None,
            help="model name[:version] of the vendor (default: every model the vendor registered)",
        )
        parser.add_argument("--as", dest="username", default=None, help="the submitting vendor user")
        parser.add_argument("--timeout", type=float, default=3600)
        parser.add_argument(
            "--if-none-pending",
            action="store_true",
            help="do nothing when the target already has a campaign in progress or awaiting review",
        )

    def handle(
        self,
        *args,
        target,
        program,
        program_version,
        level,
        model,
        username,
        timeout,
        if_none_pending,
        **options,
    ):
        try:
            hardware = target_by_reference(target)
        except AmbiguousTarget as exc:
            raise CommandError(str(exc)) from None
        if hardware is None:
            raise CommandError(f"No hardware target {target!r}.")
        pending = Campaign.objects.filter(target=hardware, state__in=OPEN_STATES).order_by("pk").first()
        if if_none_pending and pending is not None:
            self.stdout.write(
                f"Campaign {pending.pk} of {target} is already {pending.get_state_display().lower()}."
            )
            return
        vendor = hardware.chip.vendor
        members = Membership.objects.filter(
            organization=vendor, role__in=[Role.VENDOR_ENGINEER, Role.VENDOR_ADMIN]
        )
        if username:
            members = members.filter(user__username=username)
        membership = members.select_related("user").first()
        if membership is None:
            raise CommandError(f"No vendor user of {vendor} to submit as.")
        chosen = program_current(code=program, version=program_version)
        if chosen is None:
            raise CommandError(
                f"No active program {program} {program_version or ''}. Run `manage.py load_programs`."
            )
        artifacts = ModelArtifact.objects.filter(owner=vendor)
        if model:
            names = [m.split(":", 1) for m in model]
            artifacts = [
                a
                for a in artifacts
                if any(a.name == n[0] and (len(n) == 1 or a.version == n[1]) for n in names)
            ]
        artifacts = list(artifacts)

        # The embedded default with no worker running (a fresh clone): start them for this campaign.
        workers = (
            EmbeddedWorkers()
            if settings.CELERY_EMBEDDED
            and not settings.CELERY_TASK_ALWAYS_EAGER
            and not embedded_worker_running()
            else nullcontext()
        )
        stop = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(stop,), daemon=True)
        with workers:
            watcher.start()
            try:
                campaign = campaign_submit(
                    vendor=vendor,
                    target=hardware,
                    program=chosen,
                    level=level,
                    model_artifacts=artifacts,
                    submitted_by=membership.user,
                )
            except ValidationError as exc:
                stop.set()
                raise CommandError("; ".join(exc.messages)) from None
            self._campaign_id = campaign.pk
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                campaign.refresh_from_db()
                if campaign.state in RUNS_OVER_STATES:
                    break
                time.sleep(0.5)
            stop.set()
            watcher.join(timeout=2)
        self._render(campaign.pk, final=True)
        campaign.refresh_from_db()
        self.stdout.write(
            f"\nCampaign {campaign.pk}: {campaign.get_state_display()}"
            + (f" ({campaign.state_reason})" if campaign.state_reason else "")
        )
        if campaign.state not in RUNS_OVER_STATES:
            raise CommandError(f"Campaign {campaign.pk} did not finish within {timeout:.0f}s.")
        if campaign.state in ENDED_WITHOUT_VERDICT_STATES:
            raise CommandError(f"Campaign {campaign.pk} {campaign.state}.")

    _campaign_id: int | None = None
    _last_rendered = ""

    def _watch(self, stop: threading.Event) -> None:
        # The campaign runs in worker processes; this thread reads its progress from the database.
        # A display must never fail the campaign: a tick that finds the database busy is skipped.
        try:
            while not stop.wait(1.0):
                try:
                    campaign_id = (
                        self._campaign_id
                        or Campaign.objects.order_by("-pk").values_list("pk", flat=True).first()
                    )
                    if campaign_id is not None:
                        self._render(campaign_id)
                except DatabaseError:
                    continue
        finally:
            connection.close()  # this thread's own connection; persistent ones would outlive the command

    def _render(self, campaign_id: int, final: bool = False) -> None:
        lines = []
        for job in Job.objects.filter(campaign_id=campaign_id).select_related("model").order_by("id"):
            label = f"{job.suite}{':' + job.model.name if job.model_id else ''}"
            eta = f" eta {job.eta_seconds:.0f}s" if job.eta_seconds and not final else ""
            lines.append(
                f"  {label:<32} {progress_bar(job.progress)} {job.state:<10}{eta} {job.progress_message[:40]}"
            )
        text = "\n".join(lines)
        if lines and (final or text != self._last_rendered):
            self._last_rendered = text
            self.stdout.write(text + "\n")
