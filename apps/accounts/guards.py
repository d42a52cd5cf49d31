"""One role guard for the HTML pages of every app (portal, procurement): login, a membership, and
the role the page is for; 403 otherwise. Object scoping stays in the selectors (a foreign object is
a 404); the API uses the DRF permissions in apps/accounts/permissions.py on the same predicates."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Membership
from apps.accounts.selectors import membership_of

# Lazy: the guards are made when the URLconf is imported, the message is read in the request's language
# (templates/403.html shows it).
NOT_FOR_ROLE = _("This page is not for your role.")
View = Callable[..., HttpResponse]


def member_required(
    check: Callable[[Membership], bool] | None = None, *, message: str | Promise = NOT_FOR_ROLE
) -> Callable[[View], View]:
    """Login, a membership, and (optionally) `check(membership)`; sets request.membership."""

    def decorator(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = membership_of(request.user)
            if membership is None or (check is not None and not check(membership)):
                raise PermissionDenied(message)
            request.membership = membership  # type: ignore[attr-defined]  # the views read it
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def is_authority(membership: Membership) -> bool:
    return membership.is_authority


def is_vendor(membership: Membership) -> bool:
    return membership.is_vendor


def is_vendor_or_authority(membership: Membership) -> bool:
    return membership.is_vendor or membership.is_authority


def is_buyer(membership: Membership) -> bool:
    return membership.is_buyer
