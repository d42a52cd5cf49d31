"""Reads about organizations and memberships, and the access rules built on them."""

from __future__ import annotations

from typing import TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Model, Q, QuerySet

from apps.accounts.models import ApiToken, Membership


def membership_of(user: AbstractBaseUser | AnonymousUser) -> Membership | None:
    """The user's membership, or None for anonymous users and users outside every organization."""
    if not user.is_authenticated:
        return None
    try:
        return user.membership
    except Membership.DoesNotExist:
        return None


def api_tokens_of(*, user) -> list[ApiToken]:
    return list(ApiToken.objects.filter(user=user).order_by("-created"))


M = TypeVar("M", bound=Model)

# Row visibility, one rule per concept, used by every selector (API, portal, procurement).


def vendor_rows_visible_to(
    queryset: QuerySet[M], membership: Membership | None, *, owner: str
) -> QuerySet[M]:
    """A vendor's rows: the authority sees all, a vendor those of its own organization (`owner` is the
    lookup of the owning organization's id, e.g. "vendor_id" or "campaign__vendor_id"), anyone
    else (buyers, no membership) none."""
    if membership is None:
        return queryset.none()
    if membership.is_authority:
        return queryset
    if membership.is_vendor:
        return queryset.filter(**{owner: membership.organization_id})
    return queryset.none()


def own_organization_q(membership: Membership | None, *, owner: str) -> Q:
    """The rows of the member's own organization (`owner` as above); no row without a membership."""
    if membership is None:
        return Q(pk__in=[])
    return Q(**{owner: membership.organization_id})


def buyer_rows_of(queryset: QuerySet[M], membership: Membership | None, *, owner: str) -> QuerySet[M]:
    """A buyer's rows (tenders, evaluations): its own organization's only; nobody else's, the authority's
    neither (others get an empty set, hence 404)."""
    if membership is None or not membership.is_buyer:
        return queryset.none()
    return queryset.filter(own_organization_q(membership, owner=owner))
