"""A procurement officer who reads only Chinese (issue 17): a refused tender form, the API's answer to a
refused tender and the flash messages of a saved or deleted tender read in zh-hans. These texts are
shown at once (form errors, problem details, flash messages), never stored: they are translated when
raised. Strict: the sweep of tests/portal/test_i18n_pages.py (ZhSweep), no allow-list."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.procurement.models import Tender
from tests.portal.test_i18n_pages import ZhSweep

pytestmark = pytest.mark.django_db

FORM = {
    "title": "推理加速器采购",
    "reference": "ZB-18",
    "description": "",
    "deadline": "2099-06-01T10:00",
    "currency": "CNY",
    "req-TOTAL_FORMS": "1",
    "req-INITIAL_FORMS": "0",
    "score-TOTAL_FORMS": "1",
    "score-INITIAL_FORMS": "0",
    "req-0-kind": "tdp_w",
    "req-0-op": "<=",
    "req-0-value": "300",
    "score-0-metric": "tflops_per_watt",
    "score-0-weight": "1",
}


def finish(sweep: ZhSweep) -> None:
    report = sweep.report()
    print(f"untranslated strings (tender errors): {len(report)}")
    print("\n".join(report))
    assert report == [], f"{len(report)} untranslated strings:\n" + "\n".join(report)


def test_a_refused_tender_and_its_flash_messages_read_in_zh_hans(cast, program, client_for):
    sweep = ZhSweep()
    buyer = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    buyer.force_login(cast.buyer)

    # The form: an impossible bound, a model requirement with no model, a model weight with no model's
    # name and a negative weight; then a deadline in the past.
    refused = {
        **FORM,
        "req-TOTAL_FORMS": "2",
        "req-0-value": "0",
        "req-1-kind": "model_performance",
        "req-1-metric": "throughput",
        "req-1-dtype": "float32",
        "req-1-value": "10",
        "score-TOTAL_FORMS": "2",
        "score-0-metric": "model_throughput",
        "score-1-metric": "tflops_per_watt",
        "score-1-weight": "-1",
    }
    response = buyer.post("/procurement/tenders/new/", refused)
    assert response.status_code == 200
    sweep.visit("tender form (refused)", response)
    page = response.content.decode()
    assert "TDP &lt;= 0 W 不可能达到" in page and "模型类指标需要模型名称" in page, page
    assert "权重不能为负数或无穷大（-1）" in page and "&#x27;model&#x27; 必须是模型名称" in page
    response = buyer.post("/procurement/tenders/new/", {**FORM, "deadline": "2001-01-01T10:00"})
    sweep.visit("tender form (past deadline)", response)
    assert "截止时间必须在未来。" in response.content.decode()
    assert (
        "<li>要求 1（热设计功耗 TDP (W)）：TDP &lt;= 0 W 不可能达到：芯片的TDP介于 1 与 100000 W 之间。</li>"
        in page
    )
    assert not Tender.objects.exists()

    # The API: contradicting requirements, an unknown metric and all weights zero (two requests).
    api = client_for(cast.buyer)
    body = {
        "title": "推理加速器采购",
        "reference": "ZB-19",
        "deadline": "2099-01-31T12:00:00Z",
        "requirements": [
            {"kind": "memory_gib", "params": {"op": ">=", "value": 100}},
            {"kind": "memory_gib", "params": {"op": "<=", "value": 50}},
            {"kind": "backend", "params": {"backends": ["cuda"]}},
            {"kind": "backend", "params": {"backends": ["rocm"]}},
        ],
        "scoring": [{"metric": "nope", "weight": 1}, {"metric": "tflops_per_watt", "weight": "x"}],
    }
    for bad in (
        body,
        {**body, "requirements": [{"kind": "nope"}], "scoring": [{"metric": "tflops_per_watt", "weight": 0}]},
    ):
        answer = api.post("/api/v1/tenders/", bad, format="json", HTTP_ACCEPT_LANGUAGE="zh-CN")
        assert answer.status_code == 400, answer.content
        problem = answer.json()
        assert set(problem["errors"]) == {"requirements", "scoring"}, problem
        for field, messages in problem["errors"].items():
            for message in messages:
                assert "要求" in message or "权重" in message, message
                sweep.text(f"API {field}", message)
        sweep.text("API title", problem["title"])

    # Created, kept (it has a saved evaluation), then deleted: the flash messages on the next page.
    response = buyer.post("/procurement/tenders/new/", FORM, follow=True)
    tender = Tender.objects.get(reference="ZB-18")
    sweep.visit("tender detail (created)", response)
    assert "招标 ZB-18 已创建。" in response.content.decode()
    buyer.post(f"/procurement/tenders/{tender.pk}/evaluate/")
    response = buyer.post(f"/procurement/tenders/{tender.pk}/delete/", follow=True)
    sweep.visit("tender detail (kept)", response)
    assert "此招标已有保存的评标" in response.content.decode()
    second = buyer.post("/procurement/tenders/new/", {**FORM, "reference": "ZB-20"})
    assert second.status_code == 302
    pk = Tender.objects.get(reference="ZB-20").pk
    response = buyer.post(f"/procurement/tenders/{pk}/delete/", follow=True)
    sweep.visit("tender list (deleted)", response)
    assert "招标 ZB-20 已删除。" in response.content.decode()
    finish(sweep)


def test_every_requirement_line_of_a_tender_reads_in_zh_hans(cast, program):
    """The requirement lines a buyer reads on a tender's page (requirement_describe): model, serving,
    energy and quantity requirements were English f-strings; they are recorded phrases now."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.procurement.services import tender_create

    model = {"model": "bert", "dtype": "bfloat16"}
    tender = tender_create(
        organization=cast.buyer_org,
        title="推理加速器采购",
        reference="ZB-19",
        deadline=timezone.now() + timedelta(days=30),
        currency="CNY",
        requirements=[
            {"kind": "model_performance", "params": {**model, "metric": "latency", "bound": 20}},
            {"kind": "serving_qps", "params": {**model, "min_qps": 100, "max_latency_ms": 50}},
            {"kind": "serving_tokens", "params": {**model, "min_tokens_per_s": 500, "max_tpot_ms": 40}},
            {"kind": "serving_energy", "params": {**model, "metric": "j_per_query", "bound": 2}},
            {"kind": "memory_gib", "params": {"op": ">=", "value": 64}},
            {"kind": "tdp_w", "params": {"op": "<=", "value": 400}},
            {"kind": "domestic_content_pct", "params": {"op": ">=", "value": 50}},
        ],
        scoring=[{"metric": "measured_tflops", "weight": 1}],
        created_by=cast.buyer,
    )
    sweep = ZhSweep()
    buyer = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    buyer.force_login(cast.buyer)
    page = sweep.get(buyer, f"/procurement/tenders/{tender.pk}/").content.decode()
    assert "bert 在 bfloat16 下的 Server 场景 &gt;= 100 QPS" in page
    assert "热设计功耗 TDP &lt;= 400 W" in page and "国产化比例 &gt;= 50 %" in page
    finish(sweep)
