"""Query parameters out of range are a 400 naming the parameter, never a 500: integers past what the
database stores (SQLite raises OverflowError), datetimes with offsets PostgreSQL refuses (it accepts
at most +-15:59; real offsets run from -12:00 to +14:00) or that overflow when converted to UTC."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import ChipFactory, HardwareTargetFactory

HUGE = "9" * 30


@pytest.fixture
def tender(cast):
    from datetime import timedelta

    from django.utils import timezone

    from apps.procurement.services import tender_create

    return tender_create(
        organization=cast.buyer_org,
        title="Accelerators",
        reference="T-1",
        deadline=timezone.now() + timedelta(days=30),
        requirements=[],
        scoring=[{"metric": "tflops_per_watt", "weight": 1}],
        created_by=cast.buyer,
    )


OUT_OF_RANGE = [
    ("owner", "/api/v1/targets/", "chip", HUGE),
    ("owner", "/api/v1/targets/", "chip", str(2**63)),
    ("owner", "/api/v1/targets/", "chip", "-" + HUGE),
    ("owner", "/api/v1/targets/", "chip", "0"),
    ("owner", "/api/v1/targets/", "chip", "1.5"),
    ("owner", "/api/v1/jobs/", "campaign", HUGE),
    ("owner", "/api/v1/jobs/", "campaign", "1e30"),
    ("buyer", "/api/v1/evaluations/", "tender", HUGE),
    ("buyer", "/api/v1/tenders/", "deadline_after", "2026-01-01T00:00:00+16:00"),
    ("buyer", "/api/v1/tenders/", "deadline_before", "2026-01-01T00:00:00-15:30"),
    ("buyer", "/api/v1/tenders/", "deadline_before", "9999-12-31T23:59:59-10:00"),  # past year 9999 in UTC
    ("buyer", "/api/v1/tenders/", "deadline_after", "0001-01-01T00:00:00+10:00"),  # before year 1 in UTC
]


@pytest.mark.parametrize(("user", "path", "param", "value"), OUT_OF_RANGE)
def test_an_out_of_range_query_parameter_is_a_400(cast, client_for, tender, user, path, param, value):
    response = client_for(getattr(cast, user)).get(path, {param: value})
    assert response.status_code == 400, response.content
    error = response.json()
    assert error["code"] == "invalid" and param in error["errors"], error


IN_RANGE = [
    ("buyer", "/api/v1/tenders/", "deadline_after", "2026-01-01T00:00:00+14:00", 1),
    ("buyer", "/api/v1/tenders/", "deadline_after", "2026-01-01T00:00:00-12:00", 1),
    ("buyer", "/api/v1/tenders/", "deadline_before", "2026-01-01T00:00:00Z", 0),
    ("buyer", "/api/v1/tenders/", "deadline_after", "2026-01-01", 1),
    ("owner", "/api/v1/targets/", "chip", str(2**63 - 1), 0),
]


@pytest.mark.parametrize(("user", "path", "param", "value", "count"), IN_RANGE)
def test_an_in_range_query_parameter_still_filters(cast, client_for, tender, user, path, param, value, count):
    response = client_for(getattr(cast, user)).get(path, {param: value})
    assert response.status_code == 200, response.content
    assert response.json()["count"] == count


def test_the_chip_filter_still_finds_the_targets_of_a_chip(cast, client_for):
    chip = ChipFactory(vendor=cast.vendor)
    HardwareTargetFactory(chip=chip, slug="mine")
    HardwareTargetFactory(chip=ChipFactory(vendor=cast.vendor), slug="other")
    response = client_for(cast.owner).get("/api/v1/targets/", {"chip": chip.pk})
    assert [t["slug"] for t in response.json()["results"]] == ["mine"]


def test_the_portal_tender_list_ignores_an_out_of_range_deadline(cast, tender):
    client = Client()
    client.force_login(cast.buyer)
    response = client.get("/procurement/", {"deadline_after": "2026-01-01T00:00:00+16:00"})
    assert response.status_code == 200
