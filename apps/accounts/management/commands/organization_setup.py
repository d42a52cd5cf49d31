"""Operator set-up: an organization and its members, through the same services (and audit events) as the
rest of the platform. Run it once per organization: the authority with its platform administrators and
reviewers, then each vendor and buyer.

    manage.py organization_setup authority authority --name "Example Certification Authority" \\
        --member alice:platform_admin:alice@example.org --member bob:reviewer
    manage.py organization_setup vendor acme --name "Acme Silicon" --country US --member carol:vendor_admin
    manage.py changepassword alice      # members are created without a usable password

Running it again with the same arguments changes nothing; an organization of another kind or name, or a
username that already belongs elsewhere or with another role, is refused and nothing is written.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from apps.accounts.models import ROLES_BY_KIND, Membership, Organization, OrganizationKind, Role
from apps.accounts.services import organization_create, user_create


def _member(text: str) -> tuple[str, str, str]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise CommandError(f"--member {text!r}: expected USERNAME:ROLE or USERNAME:ROLE:EMAIL")
    username, role = parts[0], parts[1]
    if role not in Role.values:
        raise CommandError(f"--member {text!r}: the role is one of {', '.join(Role.values)}")
    return username, role, parts[2] if len(parts) == 3 else ""


class Command(BaseCommand):
    help = "Create an organization (authority, vendor or buyer) and its members; idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=OrganizationKind.values)
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--country", default="", help="ISO 3166-1 alpha-2 code")
        parser.add_argument(
            "--member",
            action="append",
            default=[],
            metavar="USERNAME:ROLE[:EMAIL]",
            help="a member to create; roles: "
            + ", ".join(f"{kind}: {'/'.join(sorted(roles))}" for kind, roles in ROLES_BY_KIND.items()),
        )

    def handle(
        self, *args: Any, kind: str, slug: str, name: str, country: str, member: list[str], **options: Any
    ) -> None:
        members = [_member(text) for text in member]
        try:
            with transaction.atomic():
                self._setup(kind=kind, slug=slug, name=name, country=country, members=members)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None

    def _setup(
        self, *, kind: str, slug: str, name: str, country: str, members: list[tuple[str, str, str]]
    ) -> None:
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            organization = organization_create(name=name, slug=slug, kind=kind, country=country)
            self.stdout.write(f"created {kind} organization {slug!r} ({name})")
        elif (organization.kind, organization.name) != (kind, name):
            raise CommandError(
                f"Organization {slug!r} exists as the {organization.kind} {organization.name!r}; not changed."
            )
        else:
            self.stdout.write(f"{kind} organization {slug!r} exists")
        users = get_user_model().objects
        for username, role, email in members:
            existing = users.filter(username=username).first()
            if existing is None:
                user_create(username=username, organization=organization, role=role, email=email)
                self.stdout.write(
                    f"created {role} {username!r} (no usable password: manage.py changepassword {username})"
                )
                continue
            membership = Membership.objects.filter(user=existing).select_related("organization").first()
            if membership is None or (membership.organization_id, membership.role) != (organization.pk, role):
                where = (
                    "no organization"
                    if membership is None
                    else f"{membership.role} of {membership.organization.slug!r}"
                )
                raise CommandError(f"User {username!r} exists ({where}); not changed.")
            self.stdout.write(f"{role} {username!r} exists")
