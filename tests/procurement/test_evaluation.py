"""Evaluation: the matrix with every reason, ranking by the shown formula, snapshots that survive a
revocation, no uncertified chip ever among the candidates, and a query count independent of chips."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.certificates.models import CertificateStatus
from apps.certificates.services import certificate_revoke
from apps.procurement.services import evaluation_create, snapshot_sha256
from tests.factories import ChipFactory

pytestmark = pytest.mark.django_db

LEVEL = {"kind": "certificate_level", "params": {"program": "AIA", "level": "baseline"}}
MEMORY_80 = {"kind": "memory_gib", "params": {"op": ">=", "value": 80}}
TDP_500 = {"kind": "tdp_w", "params": {"op": "<=", "value": 500}}
CUDA = {"kind": "backend", "params": {"backends": ["cuda"]}}


def row_of(evaluation, sku):
    return next(row for row in evaluation.snapshot["rows"] if row["chip"]["sku"] == sku)


def test_each_cell_has_value_and_source_and_an_ineligible_chip_shows_every_reason(certified, tender):
    good = certified(sku="GOOD-1", memory_gib=96, tdp_w=400)
    certified(sku="BAD-1", memory_gib=32, tdp_w=900, backend="npu")
    evaluation = evaluation_create(tender=tender([LEVEL, MEMORY_80, TDP_500, CUDA]))

    ok = row_of(evaluation, "GOOD-1")
    assert ok["eligible"] and ok["rank"] == 1 and ok["reasons"] == []
    assert ok["cells"][0] == {
        "ok": True,
        "value": "AIA 1.0 level baseline",
        "source": f"certificate {good.serial}",
    }
    assert ok["cells"][1]["value"] == "96 GiB"
    bad = row_of(evaluation, "BAD-1")
    assert not bad["eligible"] and [c["ok"] for c in bad["cells"]] == [True, False, False, False]
    assert bad["reasons"] == [
        "Memory >= 80 GiB: 32 GiB",
        "TDP <= 500 W: 900 W",
        "Backend in cuda: npu (" + bad["target"] + ")",
    ]
    assert evaluation.eligible_count == 1 and evaluation.candidate_count == 2


def test_no_eligible_chip_answers_with_every_chips_reasons(certified, tender):
    certified(sku="SMALL-1", memory_gib=16)
    certified(sku="SMALL-2", memory_gib=24)
    evaluation = evaluation_create(tender=tender([MEMORY_80]))
    assert evaluation.eligible_count == 0
    assert {row["chip"]["sku"]: row["reasons"] for row in evaluation.snapshot["rows"]} == {
        "SMALL-1": ["Memory >= 80 GiB: 16 GiB"],
        "SMALL-2": ["Memory >= 80 GiB: 24 GiB"],
    }


def test_conformance_and_model_cells_come_from_scope_and_measurements(certified, tender):
    cert = certified(
        sku="M-1",
        scope_dtypes=("float32",),
        models={"resnet": {"dtype": "float16", "throughput": 1500, "latency_s": 0.004}},
    )
    certified(
        sku="M-2",
        scope_dtypes=("float32", "bfloat16"),
        models={"resnet": {"dtype": "float16", "throughput": 900, "in_scope": False}},
    )
    evaluation = evaluation_create(
        tender=tender(
            [
                {"kind": "conformance_dtype", "params": {"dtype": "bfloat16"}},
                {
                    "kind": "model_performance",
                    "params": {"model": "resnet", "dtype": "float16", "metric": "throughput", "bound": 1000},
                },
                {
                    "kind": "model_performance",
                    "params": {"model": "resnet", "dtype": "float16", "metric": "latency", "bound": 5},
                },
            ]
        )
    )
    first, second = row_of(evaluation, "M-1"), row_of(evaluation, "M-2")
    assert [c["ok"] for c in first["cells"]] == [False, True, True]
    assert first["cells"][0]["value"] == "not in certified scope (float32)"
    assert first["cells"][1]["value"] == "1500 items/s" and cert.serial in first["cells"][1]["source"]
    assert first["cells"][1]["source"].startswith("measurement ")
    assert first["cells"][2]["value"] == "4 ms"
    assert [c["ok"] for c in second["cells"]] == [True, False, False]
    assert "not in the certified model scope" in second["cells"][1]["value"]
    assert second["cells"][2]["value"] == "no certified latency measurement of resnet at float16"


def test_export_class_cells_use_the_classification_of_the_certified_peaks(certified, tender):
    certified(sku="H20-LIKE", peak_bf16_tflops=148, peak_fp32_tflops=44, die_area_mm2=814)
    certified(sku="H100-LIKE", peak_bf16_tflops=989.4, die_area_mm2=814)
    evaluation = evaluation_create(
        tender=tender([{"kind": "export_class", "params": {"mode": "not_in", "classes": ["3A090.a"]}}])
    )
    assert row_of(evaluation, "H20-LIKE")["cells"][0]["ok"] is True
    h100 = row_of(evaluation, "H100-LIKE")
    assert h100["cells"][0] == {
        "ok": False,
        "value": "3A090.a",
        "source": f"rule eccn-3a090-2023-10 on the declared peaks of certificate {h100['serial']}",
    }


def test_ranking_follows_the_shown_formula(certified, tender):
    # Declared peaks above the measured figures: a figure above the peak would not count at all.
    certified(
        sku="A",
        gemm={"float32": (100.0, 0.8)},
        tdp_w=500,
        memory_gib=80,
        list_price=10000,
        currency="USD",
        peak_fp32_tflops=125,
    )
    certified(
        sku="B",
        gemm={"float32": (60.0, 0.9)},
        tdp_w=200,
        memory_gib=40,
        list_price=3000,
        currency="USD",
        peak_fp32_tflops=67,
    )
    certified(
        sku="C",
        gemm={"float32": (80.0, 0.9)},
        tdp_w=400,
        memory_gib=120,
        list_price=None,
        peak_fp32_tflops=89,
    )
    scoring = [
        {"metric": "tflops_per_watt", "weight": 2},
        {"metric": "tflops_per_price", "weight": 1},
        {"metric": "memory_gib", "weight": 1},
    ]
    snapshot = evaluation_create(tender=tender([LEVEL], scoring=scoring)).snapshot

    assert snapshot["scoring"]["formula"] == (
        "score = (2 x tflops_per_watt/max(tflops_per_watt) + 1 x tflops_per_price/max(tflops_per_price)"
        " + 1 x memory_gib/max(memory_gib)) / 4"
    )
    # per watt: A 0.2, B 0.3, C 0.2; per 1,000 USD: A 10, B 20, C none; memory: 80, 40, 120
    expected = {
        "A": (2 * 0.2 / 0.3 + 10 / 20 + 80 / 120) / 4,
        "B": (2 * 1 + 1 + 40 / 120) / 4,
        "C": (2 * 0.2 / 0.3 + 0 + 1) / 4,
    }
    rows = [row for row in snapshot["rows"] if row["eligible"]]
    assert [row["chip"]["sku"] for row in rows] == ["B", "A", "C"]
    for row in rows:
        assert row["score"] == pytest.approx(expected[row["chip"]["sku"]], abs=1e-6)
    c_price = next(t for t in rows[2]["terms"] if t["metric"] == "tflops_per_price")
    assert c_price["value"] is None and c_price["missing"] == "no list price in USD"


def test_a_saved_snapshot_stays_the_same_after_its_certificate_is_revoked(cast, certified, tender):
    cert = certified(sku="REV-1", memory_gib=96)
    saved = evaluation_create(tender=tender([MEMORY_80]), actor=cast.buyer)
    before = (saved.snapshot, saved.snapshot_sha256)

    certificate_revoke(certificate=cert, reason="Evidence found to be forged.", actor=cast.reviewer)
    saved.refresh_from_db()
    assert (saved.snapshot, saved.snapshot_sha256) == before
    assert snapshot_sha256(saved.snapshot) == saved.snapshot_sha256
    assert saved.snapshot["rows"][0]["serial"] == cert.serial and saved.snapshot["rows"][0]["eligible"]
    event = AuditEvent.objects.get(action="procurement.evaluation_saved", object_id=str(saved.pk))
    assert event.payload["snapshot_sha256"] == saved.snapshot_sha256 and event.payload["ranked"] == [
        cert.serial
    ]

    later = evaluation_create(tender=saved.tender, actor=cast.buyer)
    assert later.candidate_count == 0 and later.snapshot["rows"] == []


@pytest.mark.parametrize(
    "status", [CertificateStatus.SUSPENDED, CertificateStatus.EXPIRED, CertificateStatus.REVOKED]
)
def test_only_active_certificates_are_candidates(cast, certified, tender, status):
    ChipFactory(vendor=cast.vendor, sku="UNCERTIFIED", memory_gib=999)
    certified(sku="NOT-LIVE", status=status)
    certified(sku="PAST-DATE", valid_days=-1)
    live = certified(sku="LIVE")
    evaluation = evaluation_create(tender=tender([MEMORY_80]))
    assert [row["serial"] for row in evaluation.snapshot["rows"]] == [live.serial]


def test_the_number_of_queries_does_not_grow_with_the_number_of_chips(certified, tender):
    subject = tender(
        [
            LEVEL,
            MEMORY_80,
            TDP_500,
            CUDA,
            {
                "kind": "model_performance",
                "params": {"model": "bert", "dtype": "float32", "metric": "throughput", "bound": 10},
            },
        ]
    )

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            evaluation_create(tender=subject)
        return len(captured)

    certified(models={"bert": {"dtype": "float32", "throughput": 100}})
    with_one = queries()
    for _ in range(5):
        certified(
            models={"bert": {"dtype": "float32", "throughput": 100}},
            gemm={"float32": (1.0, 0.5), "bfloat16": (2.0, 0.5)},
        )
    assert queries() == with_one
    assert with_one <= QUERY_BUDGET


# Rule file aside: tender requirements, certificates, programs, measurements, then the insert and
# the audit record (head row get/lock, event, head update) inside savepoints.
QUERY_BUDGET = 16


def test_declarations_are_read_as_certified_not_as_later_edited(certified, tender):
    certificate = certified(sku="FROZEN-1")
    chip = certificate.campaign.target.chip
    assert chip.fab_country == "TW"
    chip.fab_country, chip.domestic_content_pct = "US", 99
    chip.save()  # the vendor edits the registry after certification
    origin = {"kind": "origin_country", "params": {"field": "fab", "countries": ["US"]}}
    evaluation = evaluation_create(tender=tender([origin]))
    row = row_of(evaluation, "FROZEN-1")
    assert not row["eligible"] and "TW" in row["cells"][0]["value"]
