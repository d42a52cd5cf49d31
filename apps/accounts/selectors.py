"""Reads about organizations and memberships, and the access rules built on them."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

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
