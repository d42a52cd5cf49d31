"""Issue 12 for buyers: the certified registry (API and page), the export-control classification (API
and pages) and tender evaluation with its saved snapshot read what was signed, after the vendor
edited its certified chip (SKU, name, bf16 peak, die area, data-centre flag) and target (backend, slug)."""

from __future__ import annotations

import pytest

from tests.certificates.frozen import EDITED, SIGNED, certify_then_edit

pytestmark = pytest.mark.django_db
# max(fp32 67 x 32, bf16 400 x 16) as signed; the edited bf16 1999.5 would give 31,992.
SIGNED_TPP = 6400.0


@pytest.fixture(autouse=True)
def signing_key_dir(settings, tmp_path):
    settings.CERT_SIGNING_KEY_DIR = tmp_path / "signing-keys"


@pytest.fixture
def edited(cast, program, client_for):
    return certify_then_edit(cast=cast, program=program, client_for=client_for)


def _assert_signed_entry(entry: dict) -> None:
    assert (entry["sku"], entry["name"]) == (SIGNED["sku"], SIGNED["name"])
    assert (entry["target"], entry["backend"]) == (SIGNED["slug"], SIGNED["backend"])
    assert entry["declared_peaks"]["bf16"] == SIGNED["bf16"]


def test_the_buyer_registry_api_lists_the_signed_values(cast, client_for, edited):
    client = client_for(cast.buyer)
    entries = client.get("/api/v1/registry/").json()["results"]
    _assert_signed_entry(next(e for e in entries if e["serial"] == edited.serial))
    _assert_signed_entry(client.get(f"/api/v1/registry/{edited.serial}/").json())


@pytest.mark.parametrize(
    ("query", "found"),
    [
        (f"backend={EDITED['backend']}", False),
        (f"backend={SIGNED['backend']}", True),
        (f"chip={EDITED['sku']}", False),
        (f"chip={SIGNED['sku']}", True),
    ],
)
def test_the_buyer_registry_filters_read_the_signed_subject(cast, client_for, edited, query, found):
    entries = client_for(cast.buyer).get(f"/api/v1/registry/?{query}").json()["results"]
    assert [e["serial"] for e in entries] == ([edited.serial] if found else [])


def test_the_buyer_registry_page_shows_the_signed_values(cast, client, edited):
    client.force_login(cast.buyer)
    page = client.get("/procurement/registry/").content.decode()
    assert SIGNED["sku"] in page and f"{SIGNED['slug']} ({SIGNED['backend']})" in page
    assert EDITED["sku"] not in page and EDITED["slug"] not in page


def test_the_export_control_classification_uses_the_signed_declarations(cast, client_for, edited):
    client = client_for(cast.buyer)
    entries = client.get("/api/v1/export-control/").json()["results"]
    listed = next(e for e in entries if e["chip_id"] == edited.chip_id)
    for entry in (listed, client.get(f"/api/v1/export-control/{edited.chip_id}/").json()):
        assert entry["certified"] is True and entry["certificates"] == [edited.serial]
        assert (entry["sku"], entry["name"]) == (SIGNED["sku"], SIGNED["name"])
        assert entry["declared_peaks"]["bf16"] == SIGNED["bf16"]
        assert entry["die_area_mm2"] == SIGNED["die_area_mm2"] and entry["data_center"] is True
        classification = entry["classification"]
        assert (
            classification["tpp"] == SIGNED_TPP and classification["die_area_mm2"] == SIGNED["die_area_mm2"]
        )
        assert classification["data_center"] is True


def test_the_classification_pages_show_the_signed_declarations(cast, client, edited):
    client.force_login(cast.buyer)
    listing = client.get("/procurement/chips/").content.decode()
    assert SIGNED["sku"] in listing and EDITED["sku"] not in listing
    page = client.get(f"/procurement/chips/{edited.chip_id}/classification/").content.decode()
    assert SIGNED["name"] in page and f"<dt>Die area</dt><dd>{SIGNED['die_area_mm2']:g}" in page
    assert EDITED["name"] not in page and "1999.5" not in page and "31,992" not in page


def _evaluate(client, requirements) -> dict:
    body = {
        "title": "Inference cluster",
        "reference": f"FROZEN-{len(requirements)}-{requirements[0]['params']['backends'][0]}",
        "deadline": "2099-01-31T12:00:00Z",
        "requirements": requirements,
        "scoring": [{"metric": "tflops_per_watt", "weight": 1}],
    }
    tender = client.post("/api/v1/tenders/", body, format="json")
    assert tender.status_code == 201, tender.content
    evaluation = client.post(f"/api/v1/tenders/{tender.json()['id']}/evaluate/")
    assert evaluation.status_code == 201, evaluation.content
    return evaluation.json()


def test_a_tender_requiring_npu_does_not_take_the_cpu_certified_chip(cast, client_for, edited):
    snapshot = _evaluate(client_for(cast.buyer), [{"kind": "backend", "params": {"backends": ["npu"]}}])[
        "snapshot"
    ]
    row = next(r for r in snapshot["rows"] if r["serial"] == edited.serial)
    assert row["eligible"] is False
    assert row["cells"][0] == {
        "ok": False,
        "value": f"{SIGNED['backend']} ({SIGNED['slug']})",
        "source": f"certificate {edited.serial}",
    }


def test_a_tender_requiring_cpu_takes_it_and_its_snapshot_keeps_the_signed_values(cast, client_for, edited):
    evaluation = _evaluate(
        client_for(cast.buyer),
        [
            {"kind": "backend", "params": {"backends": ["cpu"]}},
            {
                "kind": "export_class",
                "params": {"mode": "in", "classes": ["3A090.a", "3A090.b", "not-3A090"]},
            },
        ],
    )
    row = next(r for r in evaluation["snapshot"]["rows"] if r["serial"] == edited.serial)
    assert row["eligible"] is True and row["cells"][0]["source"] == f"certificate {edited.serial}"
    assert (row["chip"]["sku"], row["chip"]["name"]) == (SIGNED["sku"], SIGNED["name"])
    assert (row["target"], row["backend"]) == (SIGNED["slug"], SIGNED["backend"])
    assert row["classification"]["tpp"] == SIGNED_TPP
    assert row["figures"]["gemm"]["bfloat16"]["declared"] == SIGNED["bf16"]


def test_declared_cells_name_the_certificate_that_froze_them(cast, client_for, edited):
    evaluation = _evaluate(
        client_for(cast.buyer),
        [
            {"kind": "backend", "params": {"backends": ["cpu"]}},
            {"kind": "origin_country", "params": {"field": "fab", "countries": ["TW"]}},
        ],
    )
    row = next(r for r in evaluation["snapshot"]["rows"] if r["serial"] == edited.serial)
    assert row["cells"][1]["ok"] is True
    assert (
        row["cells"][1]["source"]
        == f"vendor declaration, not measured, as signed in certificate {edited.serial}"
    )


def test_a_certificate_signed_before_its_declarations_were_says_they_come_from_the_registry(certified):
    import json

    from apps.certificates.models import Certificate
    from apps.procurement.eligibility import cell_evaluate
    from apps.procurement.selectors import certified_candidates

    certificate = certified(fab_country="KR")
    payload = json.loads(certificate.payload_json)
    payload["subject"]["chip"] = {k: payload["subject"]["chip"][k] for k in ("sku", "name", "memory_gib")}
    Certificate.objects.filter(pk=certificate.pk).update(payload_json=json.dumps(payload))
    (candidate,) = certified_candidates()
    cell = cell_evaluate(
        kind="origin_country", params={"field": "fab", "countries": ["KR"]}, candidate=candidate
    )
    assert (
        cell["ok"] is True and "from the registry" in cell["source"] and certificate.serial in cell["source"]
    )
