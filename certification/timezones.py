"""Times are stored in UTC and shown in the viewer's time zone.

The zone is the one the viewer chose (the language switcher's zone field, kept in the session), else
the zone of the request's language (Asia/Shanghai for zh-hans), else UTC. Templates print it next to
the times that matter (tender deadlines), so "17:00" never leaves the reader guessing. The API is left
in UTC: its datetimes are data for programs, the same for every caller.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

SESSION_KEY = "display_time_zone"
API_PREFIX = "/api/"


@lru_cache(maxsize=1)
def available_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone_for_language(language: str | None) -> str:
    zones = settings.DISPLAY_TIME_ZONES
    return zones.get(language or "", settings.DISPLAY_TIME_ZONE_DEFAULT)


def display_zone(request: HttpRequest) -> str:
    chosen = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
    if isinstance(chosen, str) and chosen in available_zones():
        return chosen
    return zone_for_language(translation.get_language())


class TimezoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(API_PREFIX):  # the API answers in UTC ("Z") whatever the language
            return self.get_response(request)
        timezone.activate(zoneinfo.ZoneInfo(display_zone(request)))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


@require_POST
def set_timezone(request: HttpRequest) -> HttpResponse:
    """The viewer's display zone (an IANA name; empty: the language's default), then back to `next`."""
    zone = request.POST.get("timezone", "").strip()
    if zone and zone not in available_zones():
        return HttpResponseBadRequest("Unknown time zone: use an IANA name such as Asia/Shanghai.")
    if zone:
        request.session[SESSION_KEY] = zone
    else:
        request.session.pop(SESSION_KEY, None)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "/"
    return redirect(target)
