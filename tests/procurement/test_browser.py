"""A buyer in headless Chromium (Debian's /usr/bin/chromium, no browser download): a tender the
certified chip fails for a stated reason, a second one it passes, and the CSV and printable report
showing the same matrix. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests.browser import BROWSER_MARKS, SHOTS, chromium

PASSWORD = "a-long-test-password-8"  # noqa: S105 - a test user only

pytestmark = BROWSER_MARKS


@pytest.fixture
def buyer(cast, certified):
    """The database work happens here, before Playwright starts: the ORM calls made while its sync API
    runs use a connection of their own that would outlive the test database."""
    certified(
        sku="LOCAL-CPU",
        backend="cpu",
        scope_dtypes=("float32", "bfloat16"),
        gemm={"float32": (0.17, 1.09)},
        tdp_w=65,
    )
    cast.buyer.set_password(PASSWORD)
    cast.buyer.save(update_fields=["password"])
    return cast.buyer


@pytest.fixture
def page(buyer, live_server):
    with chromium() as browser:
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()


def create_tender(page, reference: str, rows: list[dict]) -> None:
    page.goto("/procurement/tenders/new/")
    page.fill("#id_title", f"Inference accelerators {reference}")
    page.fill("#id_reference", reference)
    page.fill("#id_deadline", "2031-01-31T12:00")
    for index, row in enumerate(rows):
        for field, value in row.items():
            selector = f"[name=req-{index}-{field}]"
            if page.locator(f"select{selector}").count():
                page.select_option(selector, value)
            else:
                page.fill(selector, value)
    page.select_option("[name=score-0-metric]", "tflops_per_watt")
    page.fill("[name=score-0-weight]", "1")
    page.get_by_role("button", name="Create tender").click()
    page.get_by_role("button", name=re.compile("Evaluate now")).click()
    page.wait_for_url(re.compile(r"/procurement/evaluations/\d+/$"))


def test_a_buyer_sees_why_a_certified_chip_fails_one_tender_and_passes_another(buyer, page):
    page.goto("/login/")
    page.get_by_label("Username").fill(buyer.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))

    create_tender(page, "T-FP16", [{"kind": "conformance_dtype", "dtype": "float16"}])
    assert "not in certified scope" in page.content()
    page.screenshot(path=SHOTS / "p1-tender-fails.png", full_page=True)

    create_tender(
        page,
        "T-CPU",
        [
            {"kind": "certificate_level", "program": "AIA", "level": "baseline"},
            {"kind": "backend", "items": "cpu"},
            {"kind": "tdp_w", "op": "<=", "value": "100"},
        ],
    )
    matrix = page.locator("table").first.inner_text()
    assert "LOCAL-CPU" in matrix and "eligible" in page.content().lower()
    page.screenshot(path=SHOTS / "p2-tender-passes.png", full_page=True)
    evaluation_url = page.url

    page.get_by_role("link", name=re.compile("CSV")).first.wait_for()
    download = page.request.get(evaluation_url + "report.csv")  # the buyer's own session
    assert download.ok
    rows = list(csv.reader(io.StringIO(download.body().decode("utf-8-sig"))))  # Excel's BOM
    page.goto(evaluation_url + "report/")
    page.wait_for_load_state("networkidle")  # the charts are images the server draws
    page.emulate_media(media="print")
    page.screenshot(path=SHOTS / "p3-report-print.png", full_page=True)
    report = page.inner_text("body")
    header, *data = [row for row in rows if row and not row[0].startswith("#")]
    assert [row[header.index("chip")] for row in data] == ["LOCAL-CPU"]
    for row in data:
        record = dict(zip(header, row, strict=True))
        for column in ("certificate", "vendor", "chip", "backend", "export_class"):
            assert record[column] in report, f"the printable report lacks {column} {record[column]!r}"
        for column, cell in record.items():
            if column.startswith("R"):  # "PASS: <value> [<source>]": the same verdict and value on paper
                verdict, value = re.fullmatch(r"(PASS|FAIL): (.*) \[.*\]", cell).groups()
                assert value in report, f"the printable report lacks {column}'s value {value!r}"
