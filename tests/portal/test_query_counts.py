"""Every portal page runs a bounded number of SQL queries: the same for 2 rows as for many (an N+1
fails here), and at most the pinned figure. Counts include the session, the user and the membership."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import ChipFactory, HardwareTargetFactory, ModelArtifactFactory, RunnerFactory

pytestmark = pytest.mark.django_db

PINNED = {
    "registry": 5,
    "certificate": 2,  # +1: the status history, read from the audit log (issue 17)
    "compare": 1,
    "queue": 5,
    "campaigns": 6,
    "campaign": 15,  # +1: the commit–reveal rounds of its documents (evidence page)
    "progress": 6,
    "home-authority": 11,
    "home-vendor": 13,
    "home-buyer": 5,
    "home-public": 1,
    "runners": 8,
    "chips": 6,
    "targets": 7,
    "models": 6,
}


def queries(client, url: str) -> int:
    client.get(url)  # warm the session
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured)


def assert_bounded(name: str, small: int, large: int) -> None:
    assert small == large, f"{name}: {small} queries for few rows, {large} for many"
    assert large <= PINNED[name], f"{name}: {large} queries, pinned at {PINNED[name]}"


def test_registry_certificate_and_compare_pages(cast, login, certified):
    client = login(None)
    made = [certified(), certified()]
    small = [
        queries(client, "/registry/?status=all"),
        queries(client, f"/certificates/{made[0].serial}/"),
        queries(client, f"/registry/compare/?serial={made[0].serial}&serial={made[1].serial}"),
    ]
    made += [certified() for _ in range(3)]
    query = "&".join(f"serial={c.serial}" for c in made[:4])
    large = [
        queries(client, "/registry/?status=all"),
        queries(client, f"/certificates/{made[-1].serial}/"),
        queries(client, f"/registry/compare/?{query}"),
    ]
    for name, s, lg in zip(("registry", "certificate", "compare"), small, large, strict=True):
        assert_bounded(name, s, lg)


def test_review_pages(cast, login, awaiting):
    client = login(cast.reviewer)
    first = awaiting(timed=2)
    awaiting()
    small = {
        "queue": queries(client, "/queue/"),
        "campaigns": queries(client, "/campaigns/"),
        "campaign": queries(client, f"/campaigns/{first.pk}/"),
        "progress": queries(client, f"/campaigns/{first.pk}/progress.json"),
        "home-authority": queries(client, "/"),
    }
    big = awaiting(
        timed=60,
        accuracy=[0.99999, 0.99998, 0.99997],
        conformance={"float32": {"pass": 300, "fail": 3}, "bfloat16": {"pass": 300}},
    )
    for _ in range(4):
        awaiting()
    large = {
        "queue": queries(client, "/queue/"),
        "campaigns": queries(client, "/campaigns/"),
        "campaign": queries(client, f"/campaigns/{big.pk}/"),
        "progress": queries(client, f"/campaigns/{big.pk}/progress.json"),
        "home-authority": queries(client, "/"),
    }
    for name in small:
        assert_bounded(name, small[name], large[name])


def test_dashboards(cast, login, awaiting, certified):
    certified()
    small = {
        "home-vendor": queries(login(cast.owner), "/"),
        "home-buyer": queries(login(cast.buyer), "/"),
        "home-public": queries(login(None), "/"),
    }
    for _ in range(3):
        certified()
    awaiting()
    large = {
        "home-vendor": queries(login(cast.owner), "/"),
        "home-buyer": queries(login(cast.buyer), "/"),
        "home-public": queries(login(None), "/"),
    }
    for name in small:
        assert_bounded(name, small[name], large[name])


def populate(rows: int, cast) -> None:
    for _ in range(rows):
        chip = ChipFactory(vendor=cast.vendor)
        target = HardwareTargetFactory(chip=chip)
        ModelArtifactFactory(owner=cast.vendor)
        RunnerFactory(targets=[target])


@pytest.mark.parametrize(
    ("name", "url", "who"),
    [
        ("runners", "/runners/", "reviewer"),
        ("chips", "/chips/", "owner"),
        ("targets", "/targets/", "owner"),
        ("models", "/models/", "owner"),
    ],
)
def test_inventory_pages(cast, login, name, url, who):
    client = login(getattr(cast, who))
    populate(2, cast)
    small = queries(client, url)
    populate(8, cast)
    assert_bounded(name, small, queries(client, url))
