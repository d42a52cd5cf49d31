"""manage.py organization_setup: the operator's set-up of the authority, vendors and buyers (issue 18)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from apps.accounts.models import Membership, Organization, OrganizationKind, Role
from apps.audit.models import AuditEvent


def setup(*args: str) -> str:
    out = StringIO()
    call_command("organization_setup", *args, stdout=out)
    return out.getvalue()


def test_it_creates_the_authority_with_its_admins_and_reviewers_audited(db):
    output = setup(
        "authority", "authority", "--name", "Example Authority",
        "--member", "alice:platform_admin:alice@example.org", "--member", "bob:reviewer",
    )  # fmt: skip
    authority = Organization.objects.get(slug="authority")
    assert authority.kind == OrganizationKind.AUTHORITY
    roles = dict(Membership.objects.filter(organization=authority).values_list("user__username", "role"))
    assert roles == {"alice": Role.PLATFORM_ADMIN, "bob": Role.REVIEWER}
    alice = get_user_model().objects.get(username="alice")
    assert alice.email == "alice@example.org" and not alice.has_usable_password()
    assert "manage.py changepassword alice" in output
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"organization.created", "membership.created"} <= actions


def test_vendors_and_buyers_and_a_second_run_changes_nothing(db):
    args = ("vendor", "acme", "--name", "Acme Silicon", "--country", "US", "--member", "carol:vendor_admin")
    setup(*args)
    setup("buyer", "procurement", "--name", "Procurement", "--member", "dave:buyer")
    events = AuditEvent.objects.count()
    assert "exists" in setup(*args)
    assert AuditEvent.objects.count() == events
    assert Organization.objects.get(slug="acme").country == "US"
    assert Membership.objects.get(user__username="dave").organization.kind == OrganizationKind.BUYER


@pytest.mark.parametrize(
    "args, message",
    [
        (("vendor", "acme", "--name", "Acme", "--member", "eve:reviewer"), "cannot have a"),
        (("vendor", "acme", "--name", "Acme", "--member", "eve"), "USERNAME:ROLE"),
        (("vendor", "acme", "--name", "Acme", "--member", "eve:owner"), "the role is one of"),
        (("buyer", "authority", "--name", "Example Authority"), "exists as the authority"),
        (("vendor", "acme", "--name", "Acme", "--member", "alice:vendor_admin"), "exists (platform_admin"),
    ],
)
def test_a_refused_set_up_writes_nothing(db, args, message):
    setup("authority", "authority", "--name", "Example Authority", "--member", "alice:platform_admin")
    before = (Organization.objects.count(), get_user_model().objects.count(), AuditEvent.objects.count())
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        setup(*args)
    after = (Organization.objects.count(), get_user_model().objects.count(), AuditEvent.objects.count())
    assert after == before
