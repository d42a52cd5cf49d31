"""Organizations, the people in them and their roles, and API tokens."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from knox.models import AbstractAuthToken


class OrganizationKind(models.TextChoices):
    VENDOR = "vendor", _("Vendor")
    AUTHORITY = "authority", _("Certification authority")
    BUYER = "buyer", _("Buyer")


class Role(models.TextChoices):
    VENDOR_ENGINEER = "vendor_engineer", _("Vendor engineer")
    VENDOR_ADMIN = "vendor_admin", _("Vendor administrator")
    REVIEWER = "reviewer", _("Reviewer")
    BUYER = "buyer", _("Buyer")
    PLATFORM_ADMIN = "platform_admin", _("Platform administrator")


# Which roles an organization of each kind may give its members.
ROLES_BY_KIND: dict[str, frozenset[str]] = {
    OrganizationKind.VENDOR: frozenset({Role.VENDOR_ENGINEER, Role.VENDOR_ADMIN}),
    OrganizationKind.AUTHORITY: frozenset({Role.REVIEWER, Role.PLATFORM_ADMIN}),
    OrganizationKind.BUYER: frozenset({Role.BUYER}),
}


class Organization(models.Model):
    """A vendor, the certification authority, or a buyer."""

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=OrganizationKind.choices)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's place in one organization; every platform user has exactly one."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="memberships")
    role = models.CharField(max_length=32, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()}, {self.organization})"

    @property
    def is_vendor(self) -> bool:
        return self.role in ROLES_BY_KIND[OrganizationKind.VENDOR]

    @property
    def is_authority(self) -> bool:
        return self.role in ROLES_BY_KIND[OrganizationKind.AUTHORITY]

    @property
    def is_buyer(self) -> bool:
        return self.role == Role.BUYER


class ApiToken(AbstractAuthToken):
    """A knox token (only its digest is stored) with a name and the time it was last used.

    Revoking deletes the row, so a revoked token can never authenticate again.
    """

    name = models.CharField(max_length=100, default="api")
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        verbose_name = "API token"
