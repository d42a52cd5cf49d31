"""Who may open which portal page, in the platform's roles.

Object scoping stays in the apps' selectors (a vendor's foreign campaign is a 404, as in the API);
these guards only keep a role away from pages that are not for it (403).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from apps.accounts.models import Membership, OrganizationKind, Role
from apps.accounts.selectors import membership_of
from apps.runs.models import Campaign
from apps.runs.transitions import campaign_awaits_review


def member_required(check: Callable[[Membership], bool] | None = None):
    """Login, a membership, and (optionally) `check(membership)`; sets request.membership."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            membership = membership_of(request.user)
            if membership is None or (check is not None and not check(membership)):
                raise PermissionDenied("This page is not for your role.")
            request.membership = membership
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def is_authority(membership: Membership) -> bool:
    return membership.is_authority


def is_vendor(membership: Membership) -> bool:
    return membership.is_vendor


def is_vendor_or_authority(membership: Membership) -> bool:
    return membership.is_vendor or membership.is_authority


def is_reviewer(membership: Membership | None) -> bool:
    return (
        membership is not None
        and membership.role == Role.REVIEWER
        and membership.organization.kind == OrganizationKind.AUTHORITY
    )


def review_refusal(*, membership: Membership | None, user, campaign: Campaign, reviewed: bool) -> str | None:
    """Why this user may not decide on the campaign now, or None if they may. Mirrors the services'
    checks so the page offers only the actions that would succeed; the services check again."""
    if not is_reviewer(membership):
        return "Only reviewers of the certification authority decide on campaigns."
    if membership.organization_id == campaign.vendor_id:
        return "You may not review a campaign of your own organization."
    if campaign.submitted_by_id is not None and campaign.submitted_by_id == user.pk:
        return "You may not review a campaign you submitted."
    if not campaign_awaits_review(campaign):
        return f"The campaign is {campaign.get_state_display().lower()}, not awaiting review."
    if reviewed:
        return "You have already reviewed this campaign; a second reviewer must decide."
    return None
