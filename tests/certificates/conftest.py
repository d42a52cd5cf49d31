"""Fixtures of the certificate tests: signing keys in a fresh directory, AIA 1.0, a second reviewer."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def signing_key_dir(settings, tmp_path):
    """Private signing keys go to a per-test directory, never to var/."""
    settings.CERT_SIGNING_KEY_DIR = tmp_path / "signing-keys"
    return settings.CERT_SIGNING_KEY_DIR


@pytest.fixture
def program(db):
    from tests.certificates.evidence import aia_program

    return aia_program()


@pytest.fixture
def second_reviewer(cast):
    from apps.accounts.models import Role
    from tests.factories import member

    return member(cast.authority, Role.REVIEWER, username="second-reviewer")


@pytest.fixture
def evaluated(cast, program):
    """`evaluated(**evidence)`: a campaign of the vendor with that evidence, evaluated (awaiting review)."""
    from apps.certificates.services import campaign_evaluate
    from tests.certificates.evidence import campaign_with_evidence

    def make(**evidence):
        evidence.setdefault("program", program)
        evidence.setdefault("submitted_by", cast.owner)
        campaign = campaign_with_evidence(vendor=cast.vendor, **evidence)
        campaign_evaluate(campaign_id=campaign.pk)
        campaign.refresh_from_db()
        return campaign

    return make


@pytest.fixture
def certified(cast, evaluated):
    """`certified(**evidence)`: a campaign evaluated and approved by the reviewer; returns its certificate."""
    from apps.certificates.services import review_approve

    def make(**evidence):
        campaign = evaluated(**evidence)
        review_approve(campaign=campaign, reviewer=cast.reviewer, reason="Evidence complete and verified.")
        campaign.refresh_from_db()
        return campaign.certificate

    return make
