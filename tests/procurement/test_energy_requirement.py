"""A tender's energy requirement (issue 15): it reads only the energy figure the certificate signed in
its headline, certified from a meter's reading over the VALID Server run at the level's settings; a
chip certified without a meter has no figure and fails; a later edit of a measurement row changes
nothing. Fed by the real runner's documents, through the real ingestion, evaluation and issue."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.procurement.services import evaluation_create, tender_create
from tests.real_documents import SERVING_SETTINGS, campaign_from_runner, runner_documents, stable_gemms

J_PER_QUERY = 0.05


@pytest.fixture
def tiny_program(db):
    from apps.runs.services.programs import PROGRAMS_DIR, program_load

    changed = json.loads(Path(PROGRAMS_DIR, "aia-1.2.json").read_text())
    changed["version"] = "9.17"
    for level in changed["levels"]:
        level["thresholds"]["serving"]["value"] = copy.deepcopy(
            {k: v for k, v in SERVING_SETTINGS.items() if k != "source"}
        )
    program, _ = program_load(definition=changed)
    return program


def metered(suite, document):
    """What the runner writes where a meter read the device over each run (this CPU exposes no RAPL)."""
    stable_gemms(suite, document)
    if suite != "serving":
        return
    for item in document["measurements"]:
        if item["kind"] == "energy" and item["unit"] == "J/query":
            item["value"] = J_PER_QUERY if item["params"]["scenario"] == "Server" else 0.01
            item["flags"] = [f for f in item["flags"] if f != "unavailable"]
            item["params"]["energy"] = {
                "available": True,
                "meter": "RAPL /sys/class/powercap/intel-rapl:0/energy_uj",
                "method": "counter",
                "joules": 3.2,
            }


def certify(cast, program, edit):
    from apps.certificates.services import review_approve

    if (
        runner_documents().documents["serving"]["serving"]["models"][0]["scenarios"]["Server"]["result_valid"]
        is not True
    ):
        pytest.skip("this host's loaded CPU made the tiny Server search INVALID at every step")
    campaign = campaign_from_runner(vendor=cast.vendor, program=program, submitted_by=cast.owner, edit=edit)
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason="Evidence complete and verified.")
    campaign.refresh_from_db()
    return campaign


def evaluate(cast, metric: str, bound: float) -> dict:
    requirement = {
        "kind": "serving_energy",
        "params": {"model": "tiny-bert", "dtype": "float32", "metric": metric, "bound": bound},
    }
    tender = tender_create(
        organization=cast.buyer_org,
        title="Energy",
        reference=f"E-{metric}-{bound}",
        deadline=timezone.now() + timedelta(days=30),
        requirements=[requirement],
        scoring=[{"metric": "measured_tflops", "weight": 1}],
        created_by=cast.buyer,
    )
    (row,) = evaluation_create(tender=tender).snapshot["rows"]
    return row


def test_a_metered_server_energy_figure_is_signed_and_meets_a_tender_bound(cast, tiny_program):
    from apps.certificates.models import Certificate
    from apps.runs.models import Measurement

    campaign = certify(cast, tiny_program, metered)
    certificate = Certificate.objects.get(campaign=campaign)
    headline = json.loads(certificate.payload_json)["headline"]["serving"]
    (energy,) = [f for f in headline if f["kind"] == "energy"]  # the Server run's only
    assert energy["value"] == J_PER_QUERY and energy["unit"] == "J/query" and energy["scenario"] == "Server"
    assert energy["meter"].startswith("RAPL") and energy["result_valid"] is True

    row = evaluate(cast, "j_per_query", 0.1)
    assert row["eligible"], row["reasons"]
    assert (
        row["cells"][0]["value"].startswith("0.05 J/query") and "signed headline" in row["cells"][0]["source"]
    )
    assert not evaluate(cast, "j_per_query", 0.01)["eligible"]
    # A figure per token is only a decoder's: tiny-bert has none.
    cell = evaluate(cast, "tokens_per_joule", 1.0)["cells"][0]
    assert not cell["ok"] and "no certified J/token" in cell["value"]

    # Only what the certificate signed counts: a live row edited afterwards changes nothing.
    Measurement.objects.filter(document__job__campaign=campaign, kind="energy").update(value=1e-6)
    assert not evaluate(cast, "j_per_query", 0.001)["eligible"]


def test_without_a_meter_there_is_no_energy_figure_and_the_requirement_fails(cast, tiny_program):
    from apps.certificates.models import Certificate

    campaign = certify(cast, tiny_program, stable_gemms)  # this CPU: energy `unavailable`
    certificate = Certificate.objects.get(campaign=campaign)
    headline = json.loads(certificate.payload_json)["headline"]
    assert not [f for f in headline.get("serving", []) if f["kind"] == "energy"]
    cell = evaluate(cast, "j_per_query", 1e9)["cells"][0]
    assert not cell["ok"] and "no meter" in cell["value"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model": "m", "dtype": "float32", "metric": "j_per_query", "bound": 0}, "above 0"),
        ({"model": "m", "dtype": "float32", "metric": "watts", "bound": 1}, "Unknown energy metric"),
        ({"model": "", "dtype": "float32", "metric": "j_per_query", "bound": 1}, "'model'"),
    ],
)
def test_bad_energy_requirements_are_refused(cast, params, message):
    with pytest.raises(ValidationError, match=message):
        tender_create(
            organization=cast.buyer_org,
            title="t",
            reference="T-bad",
            deadline=timezone.now() + timedelta(days=30),
            requirements=[{"kind": "serving_energy", "params": params}],
            scoring=[{"metric": "measured_tflops", "weight": 1}],
            created_by=cast.buyer,
        )
