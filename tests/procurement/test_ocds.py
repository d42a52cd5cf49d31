"""Tenders as OCDS 1.1 release packages, validated against the published OCDS 1.1.5 release-package
schema (vendored with its version) by jsonschema, with the release schema it references."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from apps.accounts.models import OrganizationKind, Role
from tests.factories import OrganizationFactory, member

pytestmark = pytest.mark.django_db

SCHEMAS = Path(__file__).resolve().parents[2] / "apps" / "procurement" / "schemas" / "ocds-1.1.5"
BODY = {
    "title": "Inference cluster 2027",
    "reference": "FPO-2027-001",
    "description": "Accelerators for the ministry's inference cluster.",
    "deadline": "2099-01-31T12:00:00Z",
    "requirements": [
        {"kind": "memory_gib", "params": {"op": ">=", "value": 64}},
        {"kind": "certificate_level", "params": {"program": "AIA", "level": "baseline"}},
    ],
    "scoring": [{"metric": "tflops_per_watt", "weight": 1}],
}


def validator() -> jsonschema.Validator:
    package = json.loads((SCHEMAS / "release-package-schema.json").read_text())
    release = json.loads((SCHEMAS / "release-schema.json").read_text())
    assert package["id"].endswith("/1__1__5/release-package-schema.json")
    registry = Registry().with_resource(
        release["id"], Resource.from_contents(release, default_specification=DRAFT4)
    )
    return jsonschema.Draft4Validator(package, registry=registry, format_checker=jsonschema.FormatChecker())


def errors_of(package: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(package)]


def test_a_tender_with_no_evaluation_is_a_valid_release_package(cast, client_for, program):
    client = client_for(cast.buyer)
    tender_id = client.post("/api/v1/tenders/", BODY, format="json").json()["id"]
    response = client.get(f"/api/v1/tenders/{tender_id}/ocds/")
    assert response.status_code == 200
    package = response.json()
    assert errors_of(package) == []
    release = package["releases"][0]
    assert package["version"] == "1.1" and release["tag"] == ["tender"]
    assert release["tender"]["id"] == "FPO-2027-001"
    assert "1. Memory >= 64 GiB" in release["tender"]["eligibilityCriteria"]
    assert "awards" not in release


def test_the_evaluation_becomes_awards_with_the_certificates_and_validates(cast, client_for, certified):
    first = certified(memory_gib=96, tdp_w=400)
    second = certified(memory_gib=128, tdp_w=700)
    certified(memory_gib=32)  # not eligible: no award
    client = client_for(cast.buyer)
    tender_id = client.post("/api/v1/tenders/", BODY, format="json").json()["id"]
    assert client.post(f"/api/v1/tenders/{tender_id}/evaluate/").status_code == 201
    package = client.get(f"/api/v1/tenders/{tender_id}/ocds/").json()
    assert errors_of(package) == []
    release = package["releases"][0]
    assert release["tag"] == ["tender", "award"]
    awards = release["awards"]
    assert len(awards) == 2 and [a["title"].split(":")[0] for a in awards] == ["Rank 1", "Rank 2"]
    serials = {doc["id"].rsplit("-", 1)[0] for award in awards for doc in award["documents"]}
    assert serials == {first.serial, second.serial}
    document_url = next(d["url"] for d in awards[0]["documents"] if d["format"] == "application/json")
    assert client.get(document_url.replace("http://testserver", "")).status_code == 200
    suppliers = {p["id"] for p in release["parties"] if "supplier" in p["roles"]}
    assert suppliers == {awards[0]["suppliers"][0]["id"]}
    assert "score = " in release["tender"]["awardCriteriaDetails"]


def test_the_schema_check_is_not_vacuous(cast, client_for, program):
    client = client_for(cast.buyer)
    tender_id = client.post("/api/v1/tenders/", BODY, format="json").json()["id"]
    package = client.get(f"/api/v1/tenders/{tender_id}/ocds/").json()
    package["releases"][0]["tender"]["status"] = "open-ish"  # not in the closed tenderStatus codelist
    del package["publisher"]
    problems = errors_of(package)
    assert any("publisher" in p for p in problems) and any("open-ish" in p for p in problems)


def test_another_buyers_tender_is_404(cast, client_for, program):
    tender_id = client_for(cast.buyer).post("/api/v1/tenders/", BODY, format="json").json()["id"]
    other = member(
        OrganizationFactory(name="Other Ministry", slug="other-ministry", kind=OrganizationKind.BUYER),
        Role.BUYER,
        username="other-buyer",
    )
    assert client_for(other).get(f"/api/v1/tenders/{tender_id}/ocds/").status_code == 404
    assert client_for(cast.owner).get(f"/api/v1/tenders/{tender_id}/ocds/").status_code == 403
