"""Organizations and members: roles must fit the organization's kind."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.accounts.models import Membership, OrganizationKind, Role
from apps.accounts.selectors import membership_of
from apps.accounts.services import organization_create, user_create
from tests.factories import OrganizationFactory, UserFactory

ALLOWED = {
    OrganizationKind.VENDOR: {Role.VENDOR_ENGINEER, Role.VENDOR_ADMIN},
    OrganizationKind.AUTHORITY: {Role.REVIEWER, Role.PLATFORM_ADMIN},
    OrganizationKind.BUYER: {Role.BUYER},
}


@pytest.mark.parametrize("kind", list(OrganizationKind))
@pytest.mark.parametrize("role", list(Role))
def test_a_user_gets_only_a_role_that_fits_the_organization(db, kind, role):
    organization = OrganizationFactory(kind=kind)
    if role in ALLOWED[kind]:
        user = user_create(username="someone", organization=organization, role=role)
        assert membership_of(user).role == role
        assert not user.has_usable_password()
    else:
        with pytest.raises(ValidationError):
            user_create(username="someone", organization=organization, role=role)
        assert not Membership.objects.exists()


@pytest.mark.parametrize(
    ("fields", "bad"),
    [({"slug": "Not A Slug"}, "slug"), ({"kind": "government"}, "kind"), ({"name": ""}, "name")],
)
def test_an_organization_with_bad_fields_is_refused(db, fields, bad):
    values = {"name": "Org", "slug": "org", "kind": OrganizationKind.VENDOR, **fields}
    with pytest.raises(ValidationError) as caught:
        organization_create(**values)
    assert bad in caught.value.message_dict


def test_a_user_without_an_organization_has_no_membership(db):
    from django.contrib.auth.models import AnonymousUser

    assert membership_of(UserFactory()) is None
    assert membership_of(AnonymousUser()) is None


def test_a_username_is_unique(cast):
    with pytest.raises(ValidationError):
        user_create(username="owner", organization=cast.vendor, role=Role.VENDOR_ENGINEER)
