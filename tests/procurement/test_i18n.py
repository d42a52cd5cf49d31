"""Procurement for Chinese buyers (issue 17, item 1): deadlines in the viewer's zone with the zone
named, CNY by default in zh-hans, and CSV with a UTF-8 BOM so Excel opens Chinese text correctly."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.procurement.services import evaluation_create, tender_create

pytestmark = pytest.mark.django_db

TITLE = "人工智能推理加速器采购（2027 年）"
REQUIREMENTS = [{"kind": "memory_gib", "params": {"op": ">=", "value": 64}}]
SCORING = [{"metric": "tflops_per_watt", "weight": 1}]


@pytest.fixture
def browser(cast):
    client = Client()
    client.force_login(cast.buyer)
    return client


def _deadline_17_utc():
    day = (timezone.now() + timedelta(days=40)).date()
    return datetime(day.year, day.month, day.day, 17, 0, tzinfo=UTC)


def _evaluated(cast, reference: str):
    """An evaluation of a Chinese-titled tender of the cast's buyer (deadline 17:00 UTC in 40 days)."""
    tender = tender_create(
        organization=cast.buyer_org,
        title=TITLE,
        reference=reference,
        deadline=_deadline_17_utc(),
        requirements=REQUIREMENTS,
        scoring=SCORING,
        created_by=cast.buyer,
    )
    return evaluation_create(tender=tender, actor=cast.buyer)


def test_the_csv_starts_with_a_bom_and_round_trips_a_chinese_title(
    cast, certified, program, browser, client_for
):
    certified(sku="GOOD-1", memory_gib=96, gemm={"float32": (60.0, 0.9)}, peak_fp32_tflops=67)
    evaluation = _evaluated(cast, "ZB-2027-001")
    for response in (
        browser.get(f"/procurement/evaluations/{evaluation.pk}/report.csv"),
        client_for(cast.buyer).get(f"/api/v1/evaluations/{evaluation.pk}/csv/"),
    ):
        assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
        assert response.content.startswith(b"\xef\xbb\xbf")
        assert response.content.count(b"\xef\xbb\xbf") == 1
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert rows[0] == [f"# tender ZB-2027-001: {TITLE}"]
        assert any(row[:1] == ["rank"] for row in rows)


def test_the_csv_reads_in_chinese_for_a_chinese_buyer_and_in_english_otherwise(
    cast, certified, program, browser
):
    """Headers, verdicts, requirement lines, cells, sources and reasons of the CSV are in the reader's
    language (issue 17: every CSV header translated), read from the same snapshot as the matrix page."""
    certified(sku="GOOD-1", memory_gib=96, gemm={"float32": (60.0, 0.9)}, peak_fp32_tflops=67)
    certified(sku="SMALL-1", memory_gib=16, gemm={"float32": (30.0, 0.9)}, peak_fp32_tflops=40)
    evaluation = _evaluated(cast, "ZB-2027-009")
    url = f"/procurement/evaluations/{evaluation.pk}/report.csv"

    def rows(language: str) -> list[list[str]]:
        content = browser.get(url, HTTP_ACCEPT_LANGUAGE=language).content.decode("utf-8-sig")
        return list(csv.reader(io.StringIO(content)))

    english, chinese = rows("en"), rows("zh-CN")
    assert english[0] == ["# tender ZB-2027-009: " + TITLE] and english[2][:3] == [
        "rank",
        "eligible",
        "score",
    ]
    assert english[2][12].startswith("R1 Memory >= 64 GiB")
    assert chinese[0] == ["# 招标 ZB-2027-009：" + TITLE] and chinese[1][0].startswith("# 评估于 ")
    assert chinese[2][:3] == ["排名", "符合条件", "得分"] and chinese[2][-1] == "原因"
    assert chinese[2][12].startswith("R1 ") and "Memory" not in chinese[2][12], chinese[2]
    verdicts = sorted(row[12].split(":")[0] for row in chinese[3:])
    assert verdicts == ["不满足", "满足"], chinese
    eligible = {row[7]: row[1] for row in chinese[3:]}
    assert eligible == {"GOOD-1": "是", "SMALL-1": "否"}
    small = next(row for row in chinese[3:] if row[7] == "SMALL-1")
    english_small = next(row for row in english[3:] if row[7] == "SMALL-1")
    assert "Memory" in english_small[-1] and "Memory" not in small[-1], small
    assert len(chinese) == len(english) and [r[3] for r in chinese[3:]] == [r[3] for r in english[3:]]


def test_an_export_class_reads_in_chinese_where_it_is_not_an_eccn(cast, certified, program, browser):
    """The platform's own class words (not-3A090, excluded, undetermined) are translated on the matrix,
    the registry and the classification pages and in the CSV; the record keeps the code."""
    from django.utils import translation

    from apps.procurement.templatetags.export_class import class_label

    certified(sku="GOOD-1", memory_gib=96, gemm={"float32": (60.0, 0.9)}, peak_fp32_tflops=67)
    certified(
        sku="EDGE-1", memory_gib=96, gemm={"float32": (3.0, 0.9)}, peak_fp32_tflops=5, peak_bf16_tflops=10
    )
    evaluation = _evaluated(cast, "ZB-2027-010")
    row = next(row for row in evaluation.snapshot["rows"] if row["chip"]["sku"] == "EDGE-1")
    code = row["classification"]["code"]
    assert code in ("not-3A090", "excluded", "undetermined"), code
    with translation.override("zh-hans"):
        label = str(class_label(code))
    assert label != code and not any(word in label for word in ("not", "excluded", "undetermined")), label
    for path in (f"/procurement/evaluations/{evaluation.pk}/", "/procurement/registry/"):
        chinese = browser.get(path, HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
        english = browser.get(path, HTTP_ACCEPT_LANGUAGE="en").content.decode()
        assert label in chinese and f">{code}<" not in chinese, path
        assert f">{code}<" in english, path
    content = browser.get(
        f"/procurement/evaluations/{evaluation.pk}/report.csv", HTTP_ACCEPT_LANGUAGE="zh-CN"
    )
    rows = list(csv.reader(io.StringIO(content.content.decode("utf-8-sig"))))
    assert [r[11] for r in rows[3:] if r[7] == "EDGE-1"] == [label]
    assert row["classification"]["code"] == code  # the record keeps the code


def test_a_deadline_shows_in_beijing_time_with_its_zone_for_a_chinese_viewer(cast, program, browser):
    deadline = _deadline_17_utc()
    tender = tender_create(
        organization=cast.buyer_org,
        title=TITLE,
        reference="ZB-2027-002",
        deadline=deadline,
        requirements=REQUIREMENTS,
        scoring=SCORING,
        created_by=cast.buyer,
    )
    beijing = (deadline + timedelta(hours=8)).strftime("%Y-%m-%d 01:00")
    for path in (f"/procurement/tenders/{tender.pk}/", "/procurement/"):
        chinese = browser.get(path, HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
        assert f"{beijing} Asia/Shanghai (UTC+0800)" in chinese, path
        english = browser.get(path, HTTP_ACCEPT_LANGUAGE="en").content.decode()
        assert f"{deadline:%Y-%m-%d} 17:00 UTC (UTC+0000)" in english, path


def test_a_deadline_typed_in_the_form_is_read_in_the_viewers_zone(cast, program, browser):
    day = (timezone.now() + timedelta(days=40)).date()
    form = browser.get("/procurement/tenders/new/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "截止时间（Asia/Shanghai）" in form and "Deadline" not in form  # the tender form in Chinese
    response = browser.post(
        "/procurement/tenders/new/",
        {
            "title": TITLE,
            "reference": "ZB-2027-003",
            "deadline": f"{day:%Y-%m-%d}T09:00",
            "currency": "CNY",
            "req-TOTAL_FORMS": "1",
            "req-INITIAL_FORMS": "0",
            "req-0-kind": "memory_gib",
            "req-0-op": ">=",
            "req-0-value": "64",
            "score-TOTAL_FORMS": "1",
            "score-INITIAL_FORMS": "0",
            "score-0-metric": "tflops_per_watt",
            "score-0-weight": "1",
        },
        HTTP_ACCEPT_LANGUAGE="zh-CN",
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    from apps.procurement.models import Tender

    saved = Tender.objects.get(reference="ZB-2027-003")
    assert saved.deadline == datetime(day.year, day.month, day.day, 1, 0, tzinfo=UTC)  # 09:00 Beijing


def test_a_new_tender_defaults_to_cny_in_chinese_and_usd_otherwise(cast, program, browser, client_for):
    assert (
        'name="currency" value="CNY"'
        in browser.get("/procurement/tenders/new/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    )
    assert (
        'name="currency" value="USD"'
        in browser.get("/procurement/tenders/new/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    )
    body = {
        "title": TITLE,
        "deadline": "2099-01-31T12:00:00Z",
        "requirements": REQUIREMENTS,
        "scoring": SCORING,
    }
    api = client_for(cast.buyer)
    zh = api.post(
        "/api/v1/tenders/", dict(body, reference="ZB-1"), format="json", HTTP_ACCEPT_LANGUAGE="zh-CN"
    )
    en = api.post("/api/v1/tenders/", dict(body, reference="EN-1"), format="json", HTTP_ACCEPT_LANGUAGE="en")
    assert zh.status_code == 201 and zh.json()["currency"] == "CNY"
    assert zh.json()["deadline"] == "2099-01-31T12:00:00Z"  # the API stays in UTC for every language
    assert en.status_code == 201 and en.json()["currency"] == "USD"
    explicit = api.post(
        "/api/v1/tenders/",
        dict(body, reference="ZB-2", currency="EUR"),
        format="json",
        HTTP_ACCEPT_LANGUAGE="zh-CN",
    )
    assert explicit.json()["currency"] == "EUR"
