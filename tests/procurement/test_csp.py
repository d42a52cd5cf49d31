"""Procurement pages, the printable report with its embedded charts included, satisfy the portal's CSP."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.procurement.services import evaluation_create
from tests.csp_check import assert_page_satisfies_the_policy

pytestmark = pytest.mark.django_db


def test_procurement_pages_satisfy_the_policy(cast, certified, tender):
    chip = certified(sku="GOOD-1", memory_gib=96, gemm={"float32": (60.0, 0.9)}, peak_fp32_tflops=67).chip
    evaluation = evaluation_create(
        tender=tender([{"kind": "memory_gib", "params": {"op": ">=", "value": 64}}]), actor=cast.buyer
    )
    client = Client()
    client.force_login(cast.buyer)
    for url in [
        "/procurement/",
        "/procurement/tenders/new/",
        f"/procurement/tenders/{evaluation.tender_id}/",
        f"/procurement/evaluations/{evaluation.pk}/",
        f"/procurement/evaluations/{evaluation.pk}/report/",
        "/procurement/registry/",
        "/procurement/chips/",
        f"/procurement/chips/{chip.pk}/classification/",
    ]:
        assert_page_satisfies_the_policy(client.get(url))
    report = client.get(f"/procurement/evaluations/{evaluation.pk}/report/").content.decode()
    assert "<svg" in report and "data-print" in report
