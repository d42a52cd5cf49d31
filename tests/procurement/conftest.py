"""Fixtures of the procurement tests: AIA 1.0 loaded, and a helper to certify chips of the cast's vendor."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone


@pytest.fixture
def program(db):
    from tests.certificates.evidence import aia_program

    return aia_program()


@pytest.fixture
def certified(cast, program):
    """`certified(**figures)`: a certificate of a new chip of the cast's vendor (see evidence.certify)."""
    from tests.procurement.evidence import certify

    def make(**figures):
        figures.setdefault("vendor", cast.vendor)
        return certify(program=program, **figures)

    return make


@pytest.fixture
def deadline():
    return timezone.now() + timedelta(days=30)


@pytest.fixture
def tender(cast, program, deadline):
    """`tender(requirements, scoring=None)`: a tender of the cast's buyer organization."""
    from apps.procurement.services import tender_create

    counter = iter(range(1, 1000))

    def make(requirements, scoring=None, **fields):
        fields.setdefault("reference", f"T-{next(counter)}")
        return tender_create(
            organization=cast.buyer_org,
            title="Inference accelerators",
            deadline=deadline,
            requirements=requirements,
            scoring=scoring or [{"metric": "tflops_per_watt", "weight": 1}],
            created_by=cast.buyer,
            **fields,
        )

    return make
