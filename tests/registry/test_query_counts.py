"""List endpoints run a constant number of SQL queries whatever the page size (an N+1 fails here)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import ChipFactory, HardwareTargetFactory, ModelArtifactFactory, RunnerFactory

# Bearer authentication: the token with its user, the user's other tokens (knox's expiry sweep) and
# the membership with its organization. Then the page's COUNT and the page itself (+1 prefetch for
# runners' targets).
# Plus the throttles' counters in the shared database cache (settings.CACHES without CACHE_URL): the
# failed-authentication check and the user rate's read (one SELECT each), and its write (the cache's
# COUNT for culling, then SELECT and UPDATE inside a savepoint). None of these with Redis.
THROTTLE = 7
PINNED = {"chips": 5 + THROTTLE, "targets": 5 + THROTTLE, "models": 5 + THROTTLE, "runners": 6 + THROTTLE}


def populate(endpoint: str, rows: int, cast) -> None:
    vendors = [cast.vendor, cast.foreign_vendor]
    for i in range(rows):
        vendor = vendors[i % 2]
        if endpoint == "chips":
            ChipFactory(vendor=vendor)
        elif endpoint == "targets":
            HardwareTargetFactory(chip=ChipFactory(vendor=vendor))
        elif endpoint == "models":
            ModelArtifactFactory(owner=vendor)
        else:
            RunnerFactory(targets=[HardwareTargetFactory(chip=ChipFactory(vendor=vendor)) for _ in range(2)])


def count_queries(client, url) -> tuple[int, int, list[str]]:
    client.get(url)  # warm: the token's last-used time is written at most once a minute
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries), len(response.json()["results"]), [q["sql"] for q in queries.captured_queries]


@pytest.mark.parametrize("endpoint", list(PINNED))
def test_a_list_page_costs_the_same_queries_for_5_and_50_rows(cast, client_for, endpoint):
    client = client_for(cast.reviewer)
    url = f"/api/v1/{endpoint}/?page_size=100"
    populate(endpoint, 5, cast)
    small, rows_small, _ = count_queries(client, url)
    populate(endpoint, 45, cast)
    large, rows_large, sql = count_queries(client, url)
    assert (rows_small, rows_large) == (5, 50)
    assert small == large, sql
    assert large == PINNED[endpoint], sql


@pytest.mark.parametrize("endpoint", ["chips", "targets", "models"])
def test_a_vendors_list_page_costs_the_same_queries(cast, client_for, endpoint):
    client = client_for(cast.owner)
    url = f"/api/v1/{endpoint}/?page_size=100"
    populate(endpoint, 10, cast)
    small, _, _ = count_queries(client, url)
    populate(endpoint, 90, cast)
    large, rows, sql = count_queries(client, url)
    assert rows == 50
    assert small == large == PINNED[endpoint], sql


def test_organizations_me_costs_a_constant_number_of_queries(cast, client_for):
    from tests.factories import member

    client = client_for(cast.owner)
    client.get("/api/v1/organizations/me/")
    with CaptureQueriesContext(connection) as before:
        client.get("/api/v1/organizations/me/")
    for i in range(20):
        member(cast.vendor, "vendor_engineer", username=f"extra{i}")
    with CaptureQueriesContext(connection) as after:
        response = client.get("/api/v1/organizations/me/")
    assert len(response.json()["members"]) == 23
    assert len(before) == len(after) == 5 + THROTTLE
