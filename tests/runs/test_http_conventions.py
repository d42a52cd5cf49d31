"""HTTP conventions of the API: Location on 201, ETag / If-None-Match / If-Match, Idempotency-Key on
campaign creation, and an OpenAPI schema that documents errors, tags and summaries, served from cache."""

from __future__ import annotations

import statistics
import time

import pytest

from apps.runs.models import Campaign

URL = "/api/v1/campaigns/"
CHIP = {
    "sku": "ACME-1",
    "name": "Acme One",
    "process_node_nm": 5,
    "die_area_mm2": 600,
    "memory_gib": 96,
    "memory_bandwidth_gbs": 3000,
    "tdp_w": 500,
    "declared_peak": {"bf16": 500, "fp32": 60},
    "fab_country": "TW",
    "assembly_country": "MY",
    "spec_source": "datasheet v1",
}


def submit(client, key=None, **overrides):
    body = {"target": "cpu-test", "program": "TST", "level": "basic", **overrides}
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(URL, body, format="json", **headers)


def test_a_creation_answers_location_of_the_new_object(cpu_world, client_for):
    response = submit(client_for(cpu_world.engineer))
    assert response.status_code == 201
    assert response["Location"] == f"http://testserver{URL}{response.json()['id']}/"
    chip = client_for(cpu_world.engineer).post("/api/v1/chips/", CHIP, format="json")
    assert chip.status_code == 201 and chip["Location"].endswith(f"/api/v1/chips/{chip.json()['id']}/")


def test_the_same_idempotency_key_and_body_answer_the_same_campaign(cpu_world, client_for):
    client = client_for(cpu_world.engineer)
    first = submit(client, key="retry-42")
    again = submit(client, key="retry-42")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again["Idempotent-Replayed"] == "true"
    assert Campaign.objects.count() == 1
    other_body = submit(client, key="retry-42", level="standard")
    assert other_body.status_code == 409 and other_body.json()["code"] == "conflict"
    assert submit(client, key="retry-43").json()["id"] != first.json()["id"]  # another key: another one
    assert submit(client, key="x" * 300).status_code == 400


def test_the_key_is_per_user(cpu_world, client_for):
    from apps.accounts.models import Role
    from tests.factories import member

    colleague = member(cpu_world.vendor, Role.VENDOR_ENGINEER, username="c2")
    first = submit(client_for(cpu_world.engineer), key="k").json()["id"]
    second = submit(client_for(colleague), key="k").json()["id"]
    assert first != second


def test_details_carry_an_etag_and_answer_304_and_412(cpu_world, client_for):
    client = client_for(cpu_world.engineer)
    chip = client.post("/api/v1/chips/", CHIP, format="json").json()
    url = f"/api/v1/chips/{chip['id']}/"
    detail = client.get(url)
    etag = detail["ETag"]
    assert etag.startswith('"') and client.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304
    stale = '"0123456789abcdef"'
    refused = client.patch(url, {"name": "Renamed"}, format="json", HTTP_IF_MATCH=stale)
    assert refused.status_code == 412 and refused.json()["code"] == "precondition_failed"
    assert refused["ETag"] == etag
    assert client.get(url).json()["name"] == "Acme One"  # nothing changed
    changed = client.patch(url, {"name": "Renamed"}, format="json", HTTP_IF_MATCH=etag)
    assert changed.status_code == 200 and changed.json()["name"] == "Renamed"
    # The old ETag is now stale.
    assert client.patch(url, {"name": "Again"}, format="json", HTTP_IF_MATCH=etag).status_code == 412
    assert client.patch(url, {"name": "Again"}, format="json", HTTP_IF_MATCH="*").status_code == 200


@pytest.fixture
def schema(client, db):
    return client.get("/api/schema/", {"format": "json"}).json()


def test_every_operation_is_tagged_summarised_and_documents_its_errors(schema):
    problem = schema["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance", "code", "errors"} <= set(problem["properties"])
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation["tags"] and operation.get("summary"), (method, path)
            codes = set(operation["responses"])
            assert {"400", "429", "500"} <= codes, (method, path)
            if "{" in path:
                assert "404" in codes, (method, path)
            if method in {"put", "patch", "delete"}:
                assert {"409", "412"} <= codes, (method, path)
    certificates = schema["paths"]["/api/v1/certificates/{serial}/"]["get"]
    assert certificates["tags"] == ["certificates"]
    content = certificates["responses"]["404"]["content"]
    assert set(content) == {"application/problem+json", "application/json"}
    assert all(media["schema"] == {"$ref": "#/components/schemas/Problem"} for media in content.values())


def test_the_schema_is_served_from_cache(client, db):
    from certification.openapi import CachedSchemaView

    CachedSchemaView._cache.clear()
    timings = []
    for _ in range(6):
        started = time.perf_counter()
        response = client.get("/api/schema/", {"format": "json"})
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200
    cached = statistics.median(timings[1:])
    print(f"schema: first {timings[0] * 1000:.0f} ms, then median {cached * 1000:.1f} ms")
    assert cached < 0.1 and cached < timings[0] / 3
