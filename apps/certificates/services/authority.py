"""Who may decide: reviewers of the authority, never on their own organization's or own submissions."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext

from apps.accounts.models import Membership, OrganizationKind, Role
from apps.accounts.selectors import membership_of
from apps.runs.models import Campaign


def reviewer_check(user) -> Membership:
    """The user's membership if they are a reviewer of the certification authority; else PermissionDenied."""
    membership = membership_of(user) if user is not None else None
    if (
        membership is None
        or membership.role != Role.REVIEWER
        or membership.organization.kind != OrganizationKind.AUTHORITY
    ):
        raise PermissionDenied(gettext("Only reviewers of the certification authority may do this."))
    return membership


def separation_of_duties_check(*, user, campaign: Campaign) -> Membership:
    """Separation of duties: nobody reviews a campaign of their own organization or one they submitted."""
    membership = reviewer_check(user)
    if membership.organization_id == campaign.vendor_id:
        raise PermissionDenied(gettext("You may not review a campaign of your own organization."))
    if campaign.submitted_by_id is not None and campaign.submitted_by_id == user.pk:
        raise PermissionDenied(gettext("You may not review a campaign you submitted."))
    return membership
