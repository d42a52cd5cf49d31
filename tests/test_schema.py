"""The OpenAPI 3 schema validates, and the docs page loads nothing from the internet."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

ENDPOINTS = [
    "/api/v1/chips/",
    "/api/v1/chips/{id}/",
    "/api/v1/targets/",
    "/api/v1/targets/{id}/",
    "/api/v1/models/",
    "/api/v1/models/{id}/",
    "/api/v1/runners/",
    "/api/v1/runners/{id}/",
    "/api/v1/organizations/me/",
    "/api/v1/tokens/",
    "/api/v1/tokens/{key_prefix}/",
]


@pytest.fixture
def schema(client, db):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    return response.json()


def test_the_schema_passes_the_openapi_validator(schema):
    assert schema["openapi"].startswith("3.")
    validate(schema)


def test_the_schema_is_also_served_as_json_by_accept_header(client, db):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    validate(response.json())


def test_the_schema_describes_every_endpoint(schema):
    assert set(ENDPOINTS) <= set(schema["paths"])


def test_the_schema_declares_bearer_authentication(schema):
    assert schema["components"]["securitySchemes"]["bearerToken"] == {"type": "http", "scheme": "bearer"}
    assert {"bearerToken": []} in schema["paths"]["/api/v1/chips/"]["get"]["security"]


def test_the_model_upload_is_described_as_multipart(schema):
    body = schema["paths"]["/api/v1/models/"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    ref = body["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    weights = schema["components"]["schemas"][ref]["properties"]["weights"]
    assert weights.get("format") == "binary"


def test_the_chip_schema_names_the_declared_peak_dtypes(schema):
    chip = schema["components"]["schemas"]["Chip"]["properties"]
    assert "declared_peak" in chip


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_the_docs_page_loads_no_asset_from_the_internet(client, db, page):
    response = client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r"""(?:src|href)\s*=\s*["']?https?://""", html) == []
    assert "//cdn" not in html
    assert "/static/drf_spectacular_sidecar/" in html
    for asset in re.findall(r"""(?:src|href)=["'](/static/[^"']+)["']""", html):
        assert client.get(asset).status_code == 200, asset
