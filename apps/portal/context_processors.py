"""The navigation of every page, by role (base.html renders `nav`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext_lazy as _

from apps.accounts.selectors import membership_of
from certification.timezones import SESSION_KEY

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

PUBLIC = [(_("Registry"), "/registry/")]
AUTHORITY = [
    (_("Dashboard"), "/"),
    (_("Work queue"), "/queue/"),
    (_("Campaigns"), "/campaigns/"),
    (_("Runners"), "/runners/"),
    (_("Registry"), "/registry/"),
    (_("API tokens"), "/tokens/"),
]
VENDOR = [
    (_("Dashboard"), "/"),
    (_("Campaigns"), "/campaigns/"),
    (_("Submit"), "/campaigns/new/"),
    (_("Chips"), "/chips/"),
    (_("Targets"), "/targets/"),
    (_("Models"), "/models/"),
    (_("Registry"), "/registry/"),
    (_("API tokens"), "/tokens/"),
    (_("Webhooks"), "/webhooks/"),
]
# The procurement pages (issue 8) live under /procurement/; the buyers' nav keeps their slot.
BUYER = [
    (_("Dashboard"), "/"),
    (_("Registry"), "/registry/"),
    (_("Procurement"), "/procurement/"),
    (_("API tokens"), "/tokens/"),
]


# The zones offered by the footer's time-zone switcher (any IANA name is accepted when posted).
TIME_ZONE_CHOICES = [
    "UTC",
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
]


def _time_zone_choices() -> list[str]:
    current = timezone.get_current_timezone_name()
    return TIME_ZONE_CHOICES if current in TIME_ZONE_CHOICES else [current, *TIME_ZONE_CHOICES]


def _nav(request: HttpRequest) -> list[tuple[StrOrPromise, str]]:
    membership = membership_of(request.user)
    if membership is None:
        return list(PUBLIC)
    if membership.is_authority:
        return list(AUTHORITY)
    if membership.is_vendor:
        return list(VENDOR)
    return list(BUYER)


def portal(request: HttpRequest) -> dict:
    return {
        "nav": SimpleLazyObject(lambda: _nav(request)),
        "membership": SimpleLazyObject(lambda: membership_of(request.user)),
        "DISPLAY_TIME_ZONE_CHOICES": _time_zone_choices(),
        # The zone the viewer chose (selected in the switcher); none: "the language's default" is.
        "DISPLAY_TIME_ZONE_CHOSEN": getattr(request, "session", {}).get(SESSION_KEY, ""),
    }
