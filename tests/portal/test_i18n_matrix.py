"""A tender's evaluation matrix in zh-hans (issue 17): every kind of cell, its value, its source and an
ineligible row's reasons were English f-strings stored in the evaluation's snapshot; they are recorded
phrases now (certification/recorded_text.py, matrix.*), stored in English and read in the reader's
language, snapshots saved before included. Strict: the sweep of tests/portal/test_i18n_pages.py.

And the last English of a failed campaign's reason (its jobs' labels) and of the role guards' 403 page."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.portal.test_i18n_pages import ZhSweep

pytestmark = pytest.mark.django_db(transaction=False)

MODEL = {"model": "bert", "dtype": "float32"}
# One requirement of each kind (a cell of each kind per candidate).
REQUIREMENTS = [
    {"kind": "certificate_level", "params": {"program": "AIA-TEST", "level": "baseline"}},
    {"kind": "conformance_dtype", "params": {"dtype": "bfloat16"}},
    {"kind": "model_performance", "params": {**MODEL, "metric": "throughput", "bound": 10}},
    {"kind": "model_performance", "params": {**MODEL, "metric": "latency", "bound": 20}},
    {"kind": "measured_tflops", "params": {"dtype": "int8", "min_tflops": 1}},
    {"kind": "serving_qps", "params": {**MODEL, "min_qps": 100, "max_latency_ms": 50}},
    {
        "kind": "serving_tokens",
        "params": {**MODEL, "min_tokens_per_s": 500, "max_tpot_ms": 40, "percentile": 0.9},
    },
    {"kind": "serving_energy", "params": {**MODEL, "metric": "j_per_query", "bound": 2}},
    {"kind": "serving_energy", "params": {**MODEL, "metric": "tokens_per_joule", "bound": 2}},
    {"kind": "memory_gib", "params": {"op": ">=", "value": 64}},
    {"kind": "tdp_w", "params": {"op": "<=", "value": 400}},
    {"kind": "domestic_content_pct", "params": {"op": ">=", "value": 50}},
    {"kind": "origin_country", "params": {"field": "both", "countries": ["CN"]}},
    {"kind": "export_class", "params": {"mode": "not_in", "classes": ["3A090.a"]}},
    {"kind": "backend", "params": {"backends": ["rocm"]}},
]
MEASURED = {"measurement": 41, "document": "ab" * 32}


def variants(real):
    """The real candidate (a certificate the services issued: most figures missing), and copies of it
    that reach every other kind of cell value: figures present, a model outside the certified scope,
    serving figures with and without the bound a requirement compares at, a signed energy figure with and
    without its meter, another program, a level this version lacks, an undetermined export class, and
    declarations from the registry (a certificate signed before its subject carried them)."""
    from apps.procurement.export_control import UNDETERMINED

    server = {**MEASURED, "unit": "queries/s", "percentile": 0.99, "latency_bound_s": 0.04}
    tokens = {
        **MEASURED,
        "unit": "tokens/s",
        "percentile": 0.9,
        "token_latencies": True,
        "ttft_bound_s": 2.0,
        "tpot_bound_s": 0.03,
    }
    rich = dataclasses.replace(
        real,
        serial=real.serial + "-R",
        scope_dtypes=["float32", "bfloat16"],
        scope_models={"bert": ["float32"]},
        memory_gib=80.0,
        tdp_w=350.0,
        gemm={"int8": {**MEASURED, "value": 420.5, "efficiency": 0.8}},
        model_figures={
            ("bert", "float32", "throughput"): {**MEASURED, "value": 1234.5, "unit": "items/s"},
            ("bert", "float32", "latency"): {**MEASURED, "value": 0.012, "unit": "s"},
        },
        serving={
            ("bert", "float32", "serving_qps"): {**server, "value": 150.0},
            ("bert", "float32", "serving_tokens"): {**tokens, "value": 900.0},
        },
        energy={
            ("bert", "float32", "J/query"): {
                "value": 1.5,
                "meter": "Yokogawa WT333E",
                "scenario": "Server",
                "percentile": 0.99,
                "latency_bound_s": 0.04,
            },
            ("bert", "float32", "J/token"): {"value": 0.2, "meter": ""},
        },
    )
    undetermined = dataclasses.replace(
        real.classification, code=UNDETERMINED, possible=["3A090.a", "3A090.b", "not-3A090"]
    )
    other = dataclasses.replace(
        real,
        serial=real.serial + "-O",
        program_code="AIA-OTHER",
        scope_dtypes=[],
        scope_models={},
        memory_gib=None,
        tdp_w=None,
        model_figures={("bert", "float32", "throughput"): {**MEASURED, "value": 99.0, "unit": "items/s"}},
        serving={
            # Judged by TTFT and TPOT, so at no query latency bound; and one that states no bound at all.
            ("bert", "float32", "serving_qps"): {**tokens, "value": 80.0},
            ("bert", "float32", "serving_tokens"): {**MEASURED, "value": 70.0, "unit": "tokens/s"},
        },
        classification=undetermined,
        declarations_signed=False,
    )
    undefined_level = dataclasses.replace(
        real, serial=real.serial + "-L", level_ranks={}, scope_dtypes=["float32"]
    )
    two = dataclasses.replace(
        real,
        serial=real.serial + "-T",
        classification=dataclasses.replace(undetermined, possible=["3A090.b", "not-3A090"]),
        serving={("bert", "float32", "serving_qps"): {**MEASURED, "value": 5.0, "unit": "queries/s"}},
    )
    return [real, rich, other, undefined_level, two]


@pytest.fixture
def matrix(cast, certified, monkeypatch):
    """A tender with one requirement of each kind, evaluated by the real service over the real certified
    candidate and its variants; returns the evaluation."""
    from apps.procurement import selectors
    from apps.procurement.services import evaluation_create, tender_create

    certificate = certified()
    program = certificate.campaign.program.code
    requirements = [
        {**r, "params": {**r["params"], "program": program}} if r["kind"] == "certificate_level" else r
        for r in REQUIREMENTS
    ]
    tender = tender_create(
        organization=cast.buyer_org,
        title="推理加速器采购",
        reference="ZB-27",
        deadline=timezone.now() + timedelta(days=30),
        currency="CNY",
        requirements=requirements,
        scoring=[{"metric": "measured_tflops", "weight": 1}],
        created_by=cast.buyer,
    )
    real_candidates = selectors.certified_candidates

    def candidates(*, rule):
        (real,) = real_candidates(rule=rule)
        return variants(real)

    monkeypatch.setattr(selectors, "certified_candidates", candidates)
    return evaluation_create(tender=tender, actor=cast.buyer)


def finish(sweep: ZhSweep, area: str) -> None:
    report = sweep.report()
    print(f"untranslated strings ({area}): {len(report)}")
    print("\n".join(report))
    assert report == [], f"{len(report)} untranslated strings:\n" + "\n".join(report)


def cells(evaluation) -> list[str]:
    snapshot = evaluation.snapshot
    return [
        text
        for row in snapshot["rows"]
        for text in (
            *(c["value"] for c in row["cells"]),
            *(c["source"] for c in row["cells"]),
            *row["reasons"],
        )
        if isinstance(text, str)
    ]


def test_every_kind_of_matrix_cell_reads_in_zh_hans(cast, matrix):
    evaluation = matrix
    evaluation.refresh_from_db()  # the snapshot as stored: plain English strings, read back from them
    texts = cells(evaluation)
    # The snapshot (and so the API and the CSV) keeps the English it was decided in.
    for english in (
        "no certified Server QPS of bert at float32",
        "150 QPS at latency p99 <= 40 ms",
        "900 tokens/s at TTFT p90 <= 2000 ms and TPOT p90 <= 30 ms",
        "80 QPS, at no latency bound (LoadGen judged TTFT p90 <= 2000 ms and TPOT p90 <= 30 ms)",
        "70 tokens/s, at no TPOT bound",
        "1.5 J/query (Server at p99 <= 40 ms)",
        "memory not stated in the certificate",
        "TDP not stated in the certificate",
        "undetermined (3A090.a or 3A090.b or not-3A090)",
        "not in certified scope (none)",
        "no certified int8 GEMM measurement",
    ):
        assert english in texts, english
    assert any(t.endswith("(another program)") for t in texts)
    assert any("is not defined in this version" in t for t in texts)
    assert any(
        t.startswith("signed headline of certificate ") and "meter named in the document" in t for t in texts
    )
    assert any("from the registry (certificate " in t for t in texts)
    assert any(", but bert is not in the certified model scope" in t for t in texts)
    assert any(t.startswith("Backend in rocm: ") for t in texts), "an ineligible row's reason"

    sweep = ZhSweep()
    buyer = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    buyer.force_login(cast.buyer)
    page = sweep.get(buyer, f"/procurement/evaluations/{evaluation.pk}/").content.decode()
    sweep.get(buyer, f"/procurement/evaluations/{evaluation.pk}/report/")
    finish(sweep, "evaluation matrix")
    for chinese in (
        "无 bert 在 float32 下经认证的 Server QPS",
        "未确定（3A090.a 或 3A090.b 或 not-3A090 之一）",
        "证书未载明内存",
        "证书未载明TDP",
        "不在认证范围内（认证范围为空）",
        "（其他认证方案）",
        "计量仪表见文档",
        "TTFT p90 &lt;= 2000 ms 且 TPOT p90 &lt;= 30 ms",
        "后端属于 rocm：",
        "bert 在 float32 下的吞吐量 &gt;= 10 items/s",
        "bert 在 float32 下的延迟 &lt;= 20 ms",
        "不满足",
    ):
        assert chinese in page, chinese
    assert "FAIL" not in page and "PASS" not in page

    # In English the page shows the record as it was written.
    english = Client(HTTP_ACCEPT_LANGUAGE="en")
    english.force_login(cast.buyer)
    page = english.get(f"/procurement/evaluations/{evaluation.pk}/").content.decode()
    assert "no certified Server QPS of bert at float32" in page and "FAIL" in page


def test_a_snapshot_saved_before_reads_in_zh_hans(cast, matrix):
    """An evaluation saved by the code before the phrases (its snapshot's cells hold the same English,
    written by f-strings) reads the same: each text is read back out of its English."""
    from apps.procurement.models import Evaluation

    evaluation = matrix
    snapshot = evaluation.snapshot
    serial = snapshot["rows"][0]["serial"]
    old = {"ok": False, "source": f"certificate {serial}"}
    snapshot["rows"][0]["cells"][:3] = [
        {**old, "value": "no certified throughput measurement of bert at float32"},
        {**old, "value": "TDP not stated in the certificate"},
        {
            **old,
            "value": "fab TW, assembly MY",
            "source": f"vendor declaration, not measured, as signed in certificate {serial}",
        },
    ]
    snapshot["rows"][0]["reasons"] = ["TDP <= 400 W: TDP not stated in the certificate"]
    before = Evaluation.objects.create(
        tender=evaluation.tender,
        rule_id=evaluation.rule_id,
        candidate_count=evaluation.candidate_count,
        eligible_count=evaluation.eligible_count,
        snapshot=snapshot,
        snapshot_sha256="0" * 64,
    )
    sweep = ZhSweep()
    buyer = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    buyer.force_login(cast.buyer)
    page = sweep.get(buyer, f"/procurement/evaluations/{before.pk}/").content.decode()
    finish(sweep, "an evaluation saved before")
    assert "无 bert 在 float32 下经认证的吞吐量测量结果" in page
    assert "晶圆制造 TW，封装组装 MY" in page and f"厂商声明，未经测量，按证书 {serial}中签署的记录" in page


def test_a_failed_campaigns_reason_names_its_jobs_in_zh_hans(cast, certified):
    """A campaign whose jobs end without evidence records "No evidence to evaluate: Job 7 conformance: …":
    the job's label is a phrase too, its suite read in the reader's language."""
    from apps.certificates.services.surveillance import surveillance_submit
    from apps.runs.models import CampaignState, ErrorClass
    from apps.runs.services.campaigns import campaign_check_completion, job_fail
    from certification.recorded_text import say

    run = surveillance_submit(certificate=certified())
    jobs = list(run.campaign.jobs.select_related("model"))
    for job in jobs:
        job_fail(job_id=job.pk, error_class=ErrorClass.TIMEOUT, message=say("job.deadline_passed"))
    campaign_check_completion(campaign_id=run.campaign_id)
    campaign = run.campaign
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.FAILED
    first = jobs[0]
    label = f"Job {first.pk} {first.suite}" + (f":{first.model.name}" if first.model_id else "")
    assert label == str(first) and label + ": Timeout " in campaign.state_reason  # the English as before
    sweep = ZhSweep()
    owner = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    owner.force_login(cast.owner)
    page = sweep.get(owner, f"/campaigns/{campaign.pk}/").content.decode()
    finish(sweep, "failed campaign")
    suites = {"conformance": "符合性", "performance": "性能", "model": "模型", "serving": "推理服务"}
    assert f"作业 {first.pk}（{suites[first.suite]}" in page
    assert f"Job {first.pk} " not in page


def test_the_role_guards_403_page_reads_in_zh_hans(cast):
    sweep = ZhSweep()
    vendor = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    vendor.force_login(cast.owner)
    page = sweep.get(vendor, "/procurement/", status=403).content.decode()
    assert "只有采购方可以使用招标。" in page and "无权访问" in page
    buyer = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    buyer.force_login(cast.buyer)
    page = sweep.get(buyer, "/queue/", status=403).content.decode()
    assert "此页面不适用于您的角色。" in page
    sweep.get(buyer, "/no-such-page/", status=404)
    finish(sweep, "403 and 404 pages")
