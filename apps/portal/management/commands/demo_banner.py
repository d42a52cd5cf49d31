"""The last lines `make run` prints: once the portal answers, where the demo certification stands,
the demo logins and the URL, together (issue 17, item 7)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.runs.models import Campaign
from apps.runs.transitions import OPEN_STATES


class Command(BaseCommand):
    help = "Wait until the portal at URL answers, then print the demo certification's state, the demo logins and the URL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", help="the portal's address, e.g. http://127.0.0.1:8000/")
        parser.add_argument("--wait", type=float, default=180, help="seconds to wait for the portal")
        parser.add_argument(
            "--certification-log", default="", help="where the background certification writes"
        )

    def handle(self, *args: Any, url: str, wait: float, certification_log: str, **options: Any) -> None:
        answered = self._wait(url, wait)
        base = url.rstrip("/")
        lines = ["", self._certification(base, certification_log)]
        credentials = Path(settings.VAR_DIR) / "demo-credentials.txt"
        lines.append(f"Demo logins (user, password; kept in {credentials}):")
        try:
            rows = [line.split(" ", 1) for line in credentials.read_text().splitlines() if " " in line]
        except OSError:
            rows = []
        lines += [f"  {name:<20} {password}" for name, password in rows] or ["  (none: run seed_demo)"]
        status = (
            "" if answered else f"   (it did not answer within {wait:.0f} s: see the server's output above)"
        )
        lines.append(
            f"Portal: {base}/   API docs: {base}/api/docs/   Ctrl-C stops it and the workers{status}"
        )
        self.stdout.write("\n".join(lines))

    @staticmethod
    def _wait(url: str, wait: float) -> bool:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own http URL
                    if response.status == 200:
                        time.sleep(0.5)  # the server logs this request: let that line come first
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        return False

    @staticmethod
    def _certification(base: str, log: str) -> str:
        from apps.certificates.models import Certificate, CriterionOutcome

        where = f" (log: {log})" if log else ""
        campaign = Campaign.objects.filter(target__slug="local-cpu").order_by("-pk").first()
        certificate = Certificate.objects.filter(campaign__target__slug="local-cpu").order_by("-pk").first()
        if certificate is not None:
            return f"Local CPU certified: {base}/certificates/{certificate.serial}/"
        if campaign is None:
            return (
                "The local CPU's demo certification is starting in the background worker"
                f"{where}: the portal is usable now and lists the campaign when it is submitted."
            )
        page = f"{base}/campaigns/{campaign.pk}/"
        if campaign.state in OPEN_STATES and campaign.state != "awaiting_review":
            return (
                f"The local CPU's demo certification runs in the background worker ({campaign.get_state_display().lower()})"
                f"{where}: the portal is usable now; progress at {page}"
            )
        if campaign.criterion_results.filter(blocker=True, outcome=CriterionOutcome.FAIL).exists():
            return f"The local CPU's demo campaign awaits review but cannot be certified (a blocker failed): {page}"
        return f"The local CPU's demo campaign is {campaign.get_state_display().lower()}: {page}"
