"""The buyer API: tenders scoped to the buyer's organization, evaluate, CSV, the certified registry
and the export-control list, with no uncertified vendor data anywhere."""

from __future__ import annotations

import pytest

from apps.accounts.models import OrganizationKind, Role
from tests.factories import ChipFactory, OrganizationFactory, member

pytestmark = pytest.mark.django_db

BODY = {
    "title": "Inference cluster 2027",
    "reference": "FPO-2027-001",
    "deadline": "2099-01-31T12:00:00Z",
    "requirements": [{"kind": "memory_gib", "params": {"op": ">=", "value": 64}}],
    "scoring": [{"metric": "tflops_per_watt", "weight": 1}],
}


@pytest.fixture
def foreign_buyer(db):
    other = OrganizationFactory(name="Other Ministry", slug="other-ministry", kind=OrganizationKind.BUYER)
    return member(other, Role.BUYER, username="other-buyer")


def test_a_buyer_creates_reads_updates_and_deletes_its_tender(cast, client_for, program):
    client = client_for(cast.buyer)
    created = client.post("/api/v1/tenders/", BODY, format="json")
    assert created.status_code == 201, created.content
    tender = created.json()
    assert tender["requirements"] == [
        {
            "position": 1,
            "kind": "memory_gib",
            "params": {"op": ">=", "value": 64.0},
            "text": "Memory >= 64 GiB",
        }
    ]
    assert client.get("/api/v1/tenders/").json()["count"] == 1
    patched = client.patch(f"/api/v1/tenders/{tender['id']}/", {"title": "Renamed"}, format="json")
    assert patched.status_code == 200 and patched.json()["title"] == "Renamed"
    assert client.delete(f"/api/v1/tenders/{tender['id']}/").status_code == 204


def test_contradictory_requirements_answer_400_with_the_reason(cast, client_for, program):
    body = dict(
        BODY,
        requirements=[
            {"kind": "memory_gib", "params": {"op": ">=", "value": 100}},
            {"kind": "memory_gib", "params": {"op": "<=", "value": 50}},
        ],
        scoring=[{"metric": "tflops_per_watt", "weight": -1}],
    )
    response = client_for(cast.buyer).post("/api/v1/tenders/", body, format="json")
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "invalid"
    assert "contradict" in error["errors"]["requirements"][0]
    assert "negative" in error["errors"]["scoring"][0]


def test_another_buyers_tender_is_404_a_vendor_403_and_anonymous_401(
    cast, client_for, foreign_buyer, program
):
    tender_id = client_for(cast.buyer).post("/api/v1/tenders/", BODY, format="json").json()["id"]
    foreign = client_for(foreign_buyer)
    assert foreign.get(f"/api/v1/tenders/{tender_id}/").status_code == 404
    assert foreign.post(f"/api/v1/tenders/{tender_id}/evaluate/").status_code == 404
    assert foreign.get("/api/v1/tenders/").json()["count"] == 0
    assert client_for(cast.owner).get("/api/v1/tenders/").status_code == 403
    assert client_for(cast.reviewer).post("/api/v1/tenders/", BODY, format="json").status_code == 403
    assert client_for(None).get("/api/v1/tenders/").status_code == 401
    assert client_for(None).get("/api/v1/registry/").status_code == 401
    assert client_for(None).get("/api/v1/export-control/").status_code == 401


def test_evaluate_saves_and_returns_an_evaluation_with_its_csv(cast, client_for, certified, foreign_buyer):
    cert = certified(sku="BIG-1", memory_gib=96)
    certified(sku="SMALL-1", memory_gib=32)
    client = client_for(cast.buyer)
    tender_id = client.post("/api/v1/tenders/", BODY, format="json").json()["id"]
    response = client.post(f"/api/v1/tenders/{tender_id}/evaluate/")
    assert response.status_code == 201
    evaluation = response.json()
    assert evaluation["eligible_count"] == 1 and evaluation["snapshot"]["rows"][0]["serial"] == cert.serial
    assert [e["id"] for e in client.get(f"/api/v1/tenders/{tender_id}/evaluations/").json()] == [
        evaluation["id"]
    ]
    csv = client.get(f"/api/v1/evaluations/{evaluation['id']}/csv/")
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    assert cert.serial in csv.content.decode()
    assert client_for(foreign_buyer).get(f"/api/v1/evaluations/{evaluation['id']}/csv/").status_code == 404


def test_the_registry_lists_only_active_certificates_with_certified_figures(cast, client_for, certified):
    cert = certified(sku="CERT-1", memory_gib=80, gemm={"bfloat16": (800.0, 0.81)})
    certified(sku="REVOKED-1", status="revoked")
    ChipFactory(vendor=cast.vendor, sku="SECRET-PROTO", name="Unannounced prototype")
    response = client_for(cast.buyer).get("/api/v1/registry/")
    assert response.status_code == 200
    body = response.json()
    assert [entry["serial"] for entry in body["results"]] == [cert.serial]
    entry = body["results"][0]
    assert entry["best_gemm"]["bfloat16"]["tflops"] == 800.0 and entry["memory_gib"] == 80
    assert "SECRET-PROTO" not in response.content.decode() and "REVOKED-1" not in response.content.decode()
    assert client_for(cast.buyer).get(f"/api/v1/registry/{cert.serial}/").json()["sku"] == "CERT-1"


def test_export_control_lists_certified_and_reference_chips_never_other_uncertified_ones(
    cast, client_for, certified
):
    from apps.accounts.services import organization_create
    from apps.registry.services import chip_create

    nvidia = organization_create(name="NVIDIA", slug="nvidia", kind=OrganizationKind.VENDOR)
    h20 = chip_create(
        vendor=nvidia,
        sku="H20",
        name="H20",
        process_node_nm=4,
        die_area_mm2=814,
        memory_gib=96,
        tdp_w=400,
        fab_country="TW",
        assembly_country="TW",
        spec_source="trade press",
        declared_peak={"bf16": 148, "fp16": 148, "fp8": 296, "int8": 296},
    )
    cert = certified(
        sku="CERT-2", peak_bf16_tflops=989.4, die_area_mm2=814, gemm={"bfloat16": (700.0, 0.707)}
    )
    ChipFactory(vendor=cast.foreign_vendor, sku="SECRET-PROTO")
    client = client_for(cast.buyer)
    listing = client.get("/api/v1/export-control/").json()["results"]
    assert {entry["sku"] for entry in listing} == {"H20", "CERT-2"}
    reference = client.get(f"/api/v1/export-control/{h20.pk}/").json()
    assert reference["certified"] is False and "not certified" in reference["figures_basis"]
    assert reference["classification"]["code"] == "not-3A090"
    assert reference["classification"]["tpp"] == pytest.approx(2368)
    assert reference["measured_to_declared"] == {}
    certified_entry = next(entry for entry in listing if entry["sku"] == "CERT-2")
    assert certified_entry["certificates"] == [cert.serial]
    # Measured / declared as the judge computes it against the signed peak (not the runner's 0.707).
    assert certified_entry["measured_to_declared"]["bfloat16"]["ratio"] == pytest.approx(700.0 / 989.4)
    secret = ChipFactory._meta.model.objects.get(sku="SECRET-PROTO")
    assert client.get(f"/api/v1/export-control/{secret.pk}/").status_code == 404


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"deadline": "2001-01-01T00:00:00Z"}, "deadline", "in the future"),
        ({"requirements": [{"kind": "backend", "params": {"backends": ["warp"]}}]}, "requirements", "warp"),
        ({"scoring": [{"metric": "memory_gib", "weight": 0}]}, "scoring", "All weights are zero"),
    ],
)
def test_bad_tenders_are_refused_field_by_field(cast, client_for, program, change, field, message):
    response = client_for(cast.buyer).post("/api/v1/tenders/", {**BODY, **change}, format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()["errors"][field])


def test_a_reference_is_unique_within_the_organization_and_evaluated_tenders_are_kept(
    cast, client_for, certified
):
    client = client_for(cast.buyer)
    tender_id = client.post("/api/v1/tenders/", BODY, format="json").json()["id"]
    again = client.post("/api/v1/tenders/", BODY, format="json")
    assert again.status_code == 400 and "already has a tender" in again.json()["errors"]["reference"][0]
    client.post(f"/api/v1/tenders/{tender_id}/evaluate/")
    assert client.delete(f"/api/v1/tenders/{tender_id}/").status_code == 409
