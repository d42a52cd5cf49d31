"""Changes to organizations, memberships and API tokens."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import ROLES_BY_KIND, ApiToken, Membership, Organization
from apps.audit.services import audit_record

User = get_user_model()

MAX_TOKEN_TTL = timedelta(days=365)


@transaction.atomic
def organization_create(*, name: str, slug: str, kind: str, country: str = "", actor=None) -> Organization:
    organization = Organization(name=name, slug=slug, kind=kind, country=country)
    organization.full_clean()
    organization.save()
    audit_record(
        action="organization.created",
        obj=organization,
        actor=actor,
        payload={"name": name, "slug": slug, "kind": kind, "country": country},
    )
    return organization


@transaction.atomic
def user_create(
    *,
    username: str,
    organization: Organization,
    role: str,
    password: str | None = None,
    email: str = "",
    actor=None,
) -> User:
    if role not in ROLES_BY_KIND[organization.kind]:
        raise ValidationError(
            {"role": f"A {organization.get_kind_display()} organization cannot have a {role}."}
        )
    user = User(username=username, email=email)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean()
    user.save()
    membership = Membership.objects.create(user=user, organization=organization, role=role)
    audit_record(
        action="membership.created", obj=membership, actor=actor, payload=_membership_state(membership)
    )
    return user


def _membership_state(membership: Membership) -> dict:
    return {
        "user": membership.user_id,
        "username": membership.user.get_username(),
        "organization": membership.organization_id,
        "role": membership.role,
    }


@transaction.atomic
def api_token_create(
    *,
    user: User,
    name: str = "api",
    ttl: timedelta | None = None,
    created_with: ApiToken | None = None,
    actor=None,
) -> tuple[ApiToken, str]:
    """Create a token; the clear text is returned once and never stored.

    A token created with another token (`created_with`) never outlives it: the default lifetime is
    cut to the creator's remaining life, and an explicit longer one is refused. Audited: `actor` is who
    asked (the user through the API; none, "system", for the issue_token command).
    """
    if not hasattr(user, "membership"):
        raise ValidationError("Only members of an organization can hold API tokens.")
    # `is None`, not `or`: a zero lifetime is an error, not a request for the default.
    explicit = ttl is not None
    ttl = settings.REST_KNOX["TOKEN_TTL"] if ttl is None else ttl
    if ttl <= timedelta(0) or ttl > MAX_TOKEN_TTL:
        raise ValidationError({"ttl_days": "A token lives between 1 and 365 days."})
    if created_with is not None and created_with.expiry is not None:
        remaining = created_with.expiry - timezone.now()
        if ttl > remaining:
            if explicit:
                expires = f"{created_with.expiry:%Y-%m-%d %H:%M} UTC"
                raise ValidationError(
                    {"ttl_days": f"A token cannot outlive the token that creates it (it expires {expires})."}
                )
            ttl = remaining
    token, clear_text = ApiToken.objects.create(user=user, expiry=ttl, name=name)
    if created_with is not None and created_with.expiry is not None and token.expiry > created_with.expiry:
        # knox adds the lifetime to its own clock reading, a few microseconds after ours.
        token.expiry = created_with.expiry
        token.save(update_fields=["expiry"])
    audit_record(
        action="token.created",
        obj=token,
        actor=actor,
        object_id=token.token_key,
        payload={"user": user.pk, "username": user.get_username(), "name": name, "expiry": token.expiry},
    )
    return token, clear_text


@transaction.atomic
def api_token_revoke(*, user: User, token_key: str, actor=None) -> bool:
    """Revoke one of the user's tokens by its public key prefix; False when none matched. Audited."""
    tokens = list(ApiToken.objects.select_for_update().filter(user=user, token_key=token_key))
    for token in tokens:
        audit_record(
            action="token.revoked",
            obj=token,
            actor=actor,
            object_id=token.token_key,
            payload={"user": user.pk, "username": user.get_username(), "name": token.name},
        )
    deleted, _ = ApiToken.objects.filter(pk__in=[t.pk for t in tokens]).delete()
    return deleted > 0
