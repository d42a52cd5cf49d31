"""Reports: the CSV and the printable page show the same matrix as the saved snapshot; charts are
self-contained SVG; the portal pages work for a buyer without JavaScript."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.test import Client

from apps.procurement.models import Tender
from apps.procurement.services import evaluation_create

pytestmark = pytest.mark.django_db

REQUIREMENTS = [
    {"kind": "memory_gib", "params": {"op": ">=", "value": 64}},
    {"kind": "backend", "params": {"backends": ["cuda"]}},
]


@pytest.fixture
def evaluation(cast, certified, tender):
    certified(sku="GOOD-1", memory_gib=96, gemm={"float32": (60.0, 0.9)}, peak_fp32_tflops=67)
    certified(sku="GOOD-2", memory_gib=80, gemm={"float32": (30.0, 0.5)}, peak_fp32_tflops=60)
    certified(sku="BAD-1", memory_gib=16, backend="npu")
    return evaluation_create(tender=tender(REQUIREMENTS), actor=cast.buyer)


@pytest.fixture
def browser(cast):
    client = Client()
    client.force_login(cast.buyer)
    return client


def _csv_matrix(text: str) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text)))
    header_at = next(i for i, row in enumerate(rows) if row and row[0] == "rank")
    header = rows[header_at]
    first, last = header.index("R1 Memory >= 64 GiB"), header.index("reasons")
    return [
        [row[header.index("certificate")], *(cell.split(":")[0] for cell in row[first:last])]
        for row in rows[header_at + 1 :]
    ]


def _html_matrix(html: str) -> list[list[str]]:
    body = html.split('<table class="matrix">')[1].split("<tbody>")[1].split("</tbody>")[0]
    matrix = []
    for row in body.split("<tr>")[1:]:
        serial = re.search(r"(AIA-\d{4}-\d{6})", row).group(1)
        matrix.append([serial, *re.findall(r'<span class="(?:pass|fail)">(PASS|FAIL)</span>', row)])
    return matrix


def test_csv_and_printable_report_show_the_same_matrix_as_the_snapshot(evaluation, browser):
    expected = [
        [row["serial"], *("PASS" if c["ok"] else "FAIL" for c in row["cells"])]
        for row in evaluation.snapshot["rows"]
    ]
    assert [r[1:] for r in expected] == [["PASS", "PASS"], ["PASS", "PASS"], ["FAIL", "FAIL"]]
    csv_text = browser.get(f"/procurement/evaluations/{evaluation.pk}/report.csv").content.decode()
    report = browser.get(f"/procurement/evaluations/{evaluation.pk}/report/")
    assert report.status_code == 200
    html = report.content.decode()
    assert _csv_matrix(csv_text) == expected
    assert _html_matrix(html) == expected
    assert evaluation.snapshot["scoring"]["formula"] in html
    # The print layout is a stylesheet of its own (the Content-Security-Policy allows no inline style).
    stylesheet = re.search(r'<link rel="stylesheet" href="([^"]*procurement\.css)">', html).group(1)
    assert "@media print" in b"".join(browser.get(stylesheet).streaming_content).decode()
    assert "Memory &gt;= 64 GiB: 16 GiB" in html  # the ineligible chip's reasons are printed


def test_charts_are_svg_without_external_assets(evaluation, browser):
    for name in ("measured-vs-declared", "perf-per-watt"):
        response = browser.get(f"/procurement/evaluations/{evaluation.pk}/charts/{name}.svg")
        assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
        svg = response.content.decode()
        assert svg.startswith("<svg") and "GOOD-1" in svg and "BAD-1" not in svg
        assert (
            "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in svg
        )
    assert browser.get(f"/procurement/evaluations/{evaluation.pk}/charts/nope.svg").status_code == 404


def test_a_buyer_creates_a_tender_with_the_form_without_javascript(cast, browser, program):
    form = {
        "title": "Edge inference",
        "reference": "FPO-EDGE-1",
        "description": "",
        "deadline": "2099-06-01T10:00",
        "currency": "USD",
        "req-TOTAL_FORMS": "2",
        "req-INITIAL_FORMS": "0",
        "score-TOTAL_FORMS": "1",
        "score-INITIAL_FORMS": "0",
        "req-0-kind": "certificate_level",
        "req-0-program": "AIA",
        "req-0-level": "baseline",
        "req-1-kind": "tdp_w",
        "req-1-op": "<=",
        "req-1-value": "300",
        "score-0-metric": "tflops_per_watt",
        "score-0-weight": "1",
    }
    more = browser.post("/procurement/tenders/new/", {**form, "more_rows": "1"})
    assert more.status_code == 200 and 'name="req-7-kind"' in more.content.decode()
    response = browser.post("/procurement/tenders/new/", form)
    tender = Tender.objects.get(reference="FPO-EDGE-1")
    assert response.status_code == 302 and response["Location"] == f"/procurement/tenders/{tender.pk}/"
    assert [r.kind for r in tender.requirements.all()] == ["certificate_level", "tdp_w"]


def test_the_form_shows_why_an_impossible_tender_is_refused(browser, program):
    form = {
        "title": "Impossible",
        "reference": "FPO-X",
        "deadline": "2099-06-01T10:00",
        "currency": "USD",
        "req-TOTAL_FORMS": "1",
        "req-INITIAL_FORMS": "0",
        "score-TOTAL_FORMS": "1",
        "score-INITIAL_FORMS": "0",
        "req-0-kind": "tdp_w",
        "req-0-op": "<=",
        "req-0-value": "0",
        "score-0-metric": "tflops_per_watt",
        "score-0-weight": "0",
    }
    html = browser.post("/procurement/tenders/new/", form).content.decode()
    assert "TDP &lt;= 0 W is impossible" in html and "All weights are zero" in html
    assert not Tender.objects.filter(reference="FPO-X").exists()


def test_an_evaluation_with_no_eligible_chip_lists_every_chips_reasons(cast, certified, tender, browser):
    certified(sku="TINY-1", memory_gib=8)
    evaluation = evaluation_create(
        tender=tender([{"kind": "memory_gib", "params": {"op": ">=", "value": 64}}])
    )
    html = browser.get(f"/procurement/evaluations/{evaluation.pk}/").content.decode()
    assert "No chip is eligible" in html and "Memory &gt;= 64 GiB: 8 GiB" in html


def test_portal_pages_are_for_buyers_and_their_own_organization(cast, evaluation, browser):
    assert browser.get("/procurement/").status_code == 200
    assert browser.get(f"/procurement/tenders/{evaluation.tender_id}/").status_code == 200
    vendor = Client()
    vendor.force_login(cast.owner)
    assert vendor.get("/procurement/").status_code == 403
    assert vendor.get(f"/procurement/evaluations/{evaluation.pk}/").status_code == 403
    assert Client().get("/procurement/").status_code == 302  # to the login page
