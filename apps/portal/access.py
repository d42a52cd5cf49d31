"""Who may open which portal page, in the platform's roles.

Object scoping stays in the apps' selectors (a vendor's foreign campaign is a 404, as in the API);
these guards only keep a role away from pages that are not for it (403).
"""

from __future__ import annotations

from django.utils.translation import gettext as _

# The portal's views import the shared guard from here.
from apps.accounts.guards import is_authority as is_authority
from apps.accounts.guards import is_vendor as is_vendor
from apps.accounts.guards import is_vendor_or_authority as is_vendor_or_authority
from apps.accounts.guards import member_required as member_required
from apps.accounts.models import Membership, OrganizationKind, Role
from apps.runs.models import Campaign
from apps.runs.transitions import campaign_awaits_review


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
        return _("Only reviewers of the certification authority decide on campaigns.")
    if membership.organization_id == campaign.vendor_id:
        return _("You may not review a campaign of your own organization.")
    if campaign.submitted_by_id is not None and campaign.submitted_by_id == user.pk:
        return _("You may not review a campaign you submitted.")
    if not campaign_awaits_review(campaign):
        return _("The campaign is %(state)s, not awaiting review.") % {
            "state": campaign.get_state_display().lower()
        }
    if reviewed:
        return _("You have already reviewed this campaign; a second reviewer must decide.")
    return None
