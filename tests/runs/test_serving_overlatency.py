"""Session 27: a serving case's "overlatency" (the mismatch fraction of a serving scenario's case) is kept
as judged only where LoadGen judged it: a Server run judged by its query latency, read from the
scenario and the model's digested LoadGen summary, never from what the document says.

The document is the real H200 one (bench/evidence/h200-2026-11-30/serving.json), signed before session
26: it records the decoder's token-latency Server run as 1425 of 1425 queries over the latency bound
(mismatch_fraction 1) although LoadGen judged it by TTFT and TPOT only, and a fraction 0 for the
SingleStream, MultiStream and Offline runs, which judge no bound per query.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from apps.runs.services.ingestion import _case_rows, serving_server_summaries
from runners.serving_bound import overlatency_judged

H200 = Path(__file__).resolve().parents[2] / "bench/evidence/h200-2026-11-30/serving.json"
LLAMA, RESNET = "llama-small-seeded", "resnet-small-seeded"
FRACTION = 8  # CASE_COLUMNS index of mismatch_fraction


@pytest.fixture(scope="module")
def h200() -> dict:
    return json.loads(H200.read_text())


def fractions(document: dict) -> dict[tuple[str, str], float | None]:
    return {(row[0], row[2]): row[FRACTION] for row in _case_rows(document)}


def test_the_old_h200_document_says_the_decoder_missed_a_bound_it_was_not_judged_by(h200):
    said = {(c["kernel"], c["case"]): c["stats"]["mismatch_fraction"] for c in h200["cases"]}
    assert said[(LLAMA, "serving_Server")] == 1  # what the signed document says, and cannot unsay
    assert "overlatency_judged" not in next(
        c["metrics"] for c in h200["cases"] if c["case"] == "serving_Server" and c["kernel"] == LLAMA
    )
    summaries = serving_server_summaries(h200)
    assert set(summaries) == {LLAMA, RESNET}
    assert not overlatency_judged("Server", summaries[LLAMA])  # token-latency mode: TTFT and TPOT
    assert overlatency_judged("Server", summaries[RESNET])  # judged at p90 <= 100 ms per query
    for scenario in ("SingleStream", "MultiStream", "Offline"):
        assert not overlatency_judged(scenario, summaries[RESNET])
    assert not overlatency_judged("Server", None)


def test_ingestion_keeps_a_serving_cases_fraction_only_where_loadgen_judged_it(h200):
    stored = fractions(h200)
    assert stored[(LLAMA, "serving_Server")] is None  # not 1.0: no latency bound was judged per query
    assert stored[(RESNET, "serving_Server")] == 0.0  # judged, and no query was over it
    for model, scenario in ((LLAMA, "SingleStream"), (LLAMA, "Offline"), (RESNET, "MultiStream")):
        assert stored[(model, f"serving_{scenario}")] is None
    # The accuracy case's fraction is its token disagreement, not an overlatency: kept as it is.
    assert stored[(LLAMA, "serving_accuracy")] == 0.015625


def test_a_summary_that_is_not_the_digested_one_judges_nothing(h200):
    """A document that swaps the decoder's summary for one printing a plain latency bound does not make
    its overlatency a verdict: the summary must be the one whose sha256 the document records."""
    forged = copy.deepcopy(h200)
    resnet_summary = forged["serving"]["models"][1]["scenarios"]["Server"]["summary_text"]
    forged["serving"]["models"][0]["scenarios"]["Server"]["summary_text"] = resnet_summary
    assert fractions(forged)[(LLAMA, "serving_Server")] is None
    # With the sha256 changed to match, LoadGen's summary would say a latency bound was judged: the
    # rule reads LoadGen's record, and the document's own word (the case's fraction) only where it did.
    forged["serving"]["models"][0]["scenarios"]["Server"]["summary_sha256"] = hashlib.sha256(
        resnet_summary.encode()
    ).hexdigest()
    assert fractions(forged)[(LLAMA, "serving_Server")] == 1.0


@pytest.mark.django_db
def test_the_migration_unjudges_rows_stored_from_old_documents(cast, media_root):
    from django.apps import apps

    from apps.runs.models import CaseResult, JobSuite, ResultDocument
    from tests.certificates.evidence import aia_program
    from tests.procurement.evidence import certify

    certificate = certify(vendor=cast.vendor, program=aia_program())
    performance = ResultDocument.objects.get(job__campaign=certificate.campaign, suite=JobSuite.PERFORMANCE)
    # The H200 document stored as main stored it: every case's fraction as the document says.
    performance.content.save("h200-serving.json", ContentFile(H200.read_bytes()), save=True)
    document = json.loads(H200.read_text())
    CaseResult.objects.bulk_create(
        [
            CaseResult(
                document=performance,
                kernel=c["kernel"],
                dtype=c["dtype"],
                case=c["case"],
                status=c["status"],
                mismatch_fraction=c["stats"]["mismatch_fraction"],
            )
            for c in document["cases"]
        ]
    )
    migration = importlib.import_module("apps.runs.migrations.0009_s27_serving_overlatency_not_judged")
    migration.forwards(apps, None)
    stored = {
        (row.kernel, row.case): row.mismatch_fraction
        for row in CaseResult.objects.filter(document=performance)
    }
    assert stored == fractions(document)
    assert stored[(LLAMA, "serving_Server")] is None and stored[(RESNET, "serving_Server")] == 0.0
