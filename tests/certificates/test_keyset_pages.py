"""Keyset (cursor) pages of the public certificate list (issue 18: deep pages without OFFSET)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.certificates.models import Certificate
from tests.certificates.evidence import aia_program
from tests.factories import ChipFactory
from tests.procurement.evidence import certify

pytestmark = pytest.mark.django_db


@pytest.fixture
def serials(cast):
    program = aia_program()
    made = [
        certify(
            vendor=cast.vendor,
            program=program,
            chip=ChipFactory(vendor=cast.vendor, sku=f"KEY-{i}"),
            valid_days=365 - (i % 2),  # ties in valid_until: the cursor's offset within a position
        )
        for i in range(5)
    ]
    return [c.serial for c in made]


def walk(client, **query):
    """Every row, following `next` from `?cursor=`, two a page."""
    response = client.get("/api/v1/certificates/", {"cursor": "", "page_size": 2, **query})
    rows, pages = [], 0
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        assert "count" not in body and set(body) == {"next", "previous", "results"}
        rows += [row["serial"] for row in body["results"]]
        pages += 1
        if body["next"] is None:
            return rows, pages
        response = client.get(body["next"])


@pytest.mark.parametrize("ordering", [None, "serial", "-serial", "valid_until", "-valid_until", "issued_at"])
def test_following_the_cursor_gives_every_row_once_in_the_pages_order(client, serials, ordering):
    query = {} if ordering is None else {"ordering": ordering}
    by_page = client.get("/api/v1/certificates/", {"page_size": 500, **query}).json()
    assert by_page["count"] == len(serials)
    rows, pages = walk(client, **query)
    assert rows == [row["serial"] for row in by_page["results"]]
    assert sorted(rows) == sorted(serials) and pages == 3


@pytest.mark.parametrize("ordering", [None, "issued_at", "valid_until"])
def test_rows_that_tie_on_the_ordered_column_are_neither_repeated_nor_skipped(client, serials, ordering):
    same = Certificate.objects.order_by("pk").first()
    Certificate.objects.update(issued_at=same.issued_at, valid_until=same.valid_until)
    query = {} if ordering is None else {"ordering": ordering}
    by_page = client.get("/api/v1/certificates/", {"page_size": 500, **query}).json()
    rows, pages = walk(client, **query)
    assert rows == [row["serial"] for row in by_page["results"]] and sorted(rows) == sorted(serials)
    uncached = {"cursor": "", "page_size": 2, "miss": "1", **query}  # a URL walk() did not read (cache)
    first = client.get("/api/v1/certificates/", uncached).json()
    with CaptureQueriesContext(connection) as captured:
        client.get(first["next"])
    listed = [q["sql"] for q in captured if 'FROM "certificates_certificate"' in q["sql"]]
    assert listed and not any("OFFSET" in sql for sql in listed), listed  # a keyset among ties too


def test_a_deep_cursor_page_reads_after_the_last_row_without_offset_or_count(client, serials):
    first = client.get("/api/v1/certificates/", {"cursor": "", "page_size": 2, "ordering": "serial"}).json()
    with CaptureQueriesContext(connection) as captured:
        second = client.get(first["next"])
    assert second.status_code == 200
    listed = [q["sql"] for q in captured if 'FROM "certificates_certificate"' in q["sql"]]
    assert listed, [q["sql"] for q in captured]
    assert not any("COUNT(" in sql for sql in listed)
    assert any('"serial" >' in sql and "OFFSET" not in sql for sql in listed), listed


def test_the_filters_apply_and_a_forged_cursor_is_a_404_problem(client, serials):
    Certificate.objects.filter(serial=serials[0]).update(status="suspended")
    rows, _ = walk(client)
    assert serials[0] not in rows and len(rows) == len(serials) - 1  # active only, by default
    forged = client.get("/api/v1/certificates/", {"cursor": "bz14"})  # base64 of "o=x": no offset
    assert forged.status_code == 404 and forged.json()["code"] == "not_found"


def test_the_schema_documents_the_cursor(client):
    operation = client.get("/api/schema/", {"format": "json"}).json()["paths"]["/api/v1/certificates/"]["get"]
    assert "cursor" in {p["name"] for p in operation["parameters"]}
    assert "cursor" in operation["responses"]["404"]["description"]
