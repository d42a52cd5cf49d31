"""DRF permissions expressed in the platform's roles.

Object scoping (a vendor sees only its own organization's rows) is done in each viewset's
queryset, so a foreign object is a 404 and its existence does not leak.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from apps.accounts.models import Role
from apps.accounts.selectors import membership_of


class IsMember(BasePermission):
    """Any authenticated user who belongs to an organization."""

    message = "Your account does not belong to any organization."

    def has_permission(self, request, view) -> bool:
        return membership_of(request.user) is not None


class VendorWritesAuthorityReads(BasePermission):
    """Registry objects: vendors read and write their own; the authority reads everything."""

    message = "Only vendors and the certification authority use the registry."

    def has_permission(self, request, view) -> bool:
        membership = membership_of(request.user)
        if membership is None:
            return False
        if membership.is_vendor:
            if request.method == "DELETE":
                return membership.role == Role.VENDOR_ADMIN
            return True
        return membership.is_authority and request.method in SAFE_METHODS


class IsAuthority(BasePermission):
    """Reviewers and platform administrators of the authority; writes need a platform administrator."""

    message = "Only the certification authority may do this."

    def has_permission(self, request, view) -> bool:
        membership = membership_of(request.user)
        if membership is None or not membership.is_authority:
            return False
        return request.method in SAFE_METHODS or membership.role == Role.PLATFORM_ADMIN
