"""The navigation of every page, by role (base.html renders `nav`)."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apps.accounts.selectors import membership_of

PUBLIC = [("Registry", "/registry/")]
AUTHORITY = [
    ("Dashboard", "/"),
    ("Work queue", "/queue/"),
    ("Campaigns", "/campaigns/"),
    ("Runners", "/runners/"),
    ("Registry", "/registry/"),
]
VENDOR = [
    ("Dashboard", "/"),
    ("Campaigns", "/campaigns/"),
    ("Submit", "/campaigns/new/"),
    ("Chips", "/chips/"),
    ("Targets", "/targets/"),
    ("Models", "/models/"),
    ("Registry", "/registry/"),
]
# The procurement pages (issue 8) live under /procurement/; the buyers' nav keeps their slot.
BUYER = [("Dashboard", "/"), ("Registry", "/registry/"), ("Procurement", "/procurement/")]


def _nav(request: HttpRequest) -> list[tuple[str, str]]:
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
    }
