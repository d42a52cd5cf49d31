"""The `cast` fixture's fast path (tests.factories.make_cast: three INSERTs) makes the rows, field for
field, that the factories make (OrganizationFactory and member(), a get_or_create per row), and reuses
rows a test made before, as the factories do."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from apps.accounts.models import Membership, Organization
from tests.factories import (
    CAST_MEMBERS,
    CAST_ORGANIZATIONS,
    OrganizationFactory,
    cast_through_the_factories,
    make_cast,
)

pytestmark = pytest.mark.django_db

# Fields that differ between any two makings of the same row: the key and the clock.
VARYING = {"id", "created_at", "date_joined", "user_id", "organization_id"}


def rows() -> dict[str, list[dict]]:
    def values(queryset, *extra):
        fields = [f.attname for f in queryset.model._meta.concrete_fields if f.attname not in VARYING]
        return list(queryset.order_by("pk").values(*fields, *extra))

    return {
        "organizations": values(Organization.objects.all()),
        "users": values(get_user_model().objects.all()),
        "memberships": values(Membership.objects.all(), "user__username", "organization__slug"),
    }


def in_memory(cast) -> dict[str, tuple]:
    """What a test reads from the cast's objects without a query."""
    seen = {}
    for attribute in CAST_ORGANIZATIONS:
        organization = getattr(cast, attribute)
        seen[attribute] = (type(organization), organization.name, organization.slug, organization.kind)
    for attribute, organization, role, username in CAST_MEMBERS:
        user = getattr(cast, attribute)
        membership = user.membership  # cached on the user by both paths
        assert membership.organization is getattr(cast, organization)
        seen[attribute] = (
            type(user),
            user.username,
            user.email,
            user.is_staff,
            user.is_superuser,
            user.has_usable_password(),
            membership.role,
            role,
            username,
        )
    return seen


def test_the_fast_cast_makes_the_rows_the_factories_make(django_assert_max_num_queries):
    with django_assert_max_num_queries(5):  # the savepoint, three INSERTs, its release
        fast = make_cast()
    fast_rows, fast_objects = rows(), in_memory(fast)
    assert fast.vendor.pk and fast.owner.pk and fast.owner.membership.pk
    assert len(fast_rows["organizations"]) == len(CAST_ORGANIZATIONS)
    assert len(fast_rows["memberships"]) == len(CAST_MEMBERS)

    Membership.objects.all().delete()
    get_user_model().objects.all().delete()
    Organization.objects.all().delete()
    slow = cast_through_the_factories()

    assert rows() == fast_rows
    assert in_memory(slow) == fast_objects


def test_the_cast_reuses_an_organization_a_test_made_first():
    acme = OrganizationFactory(name="Acme Silicon", slug="acme", country="DE")
    cast = make_cast()
    assert cast.vendor.pk == acme.pk and cast.vendor.country == "DE"
    assert Organization.objects.count() == len(CAST_ORGANIZATIONS)
    assert Membership.objects.filter(organization=acme).count() == 3  # owner, colleague, vendor admin
    assert cast.owner.membership.organization == acme
