"""The serving suite on the platform (issue 15): planned with the level's LoadGen settings, checked
against the plan at ingestion, judged by the level's latency bound. Fed by the real runner's serving
document (tests/real_documents.py), passed through the real ingestion."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from apps.certificates.models import CriterionOutcome
from apps.runs.models import JobSuite
from apps.runs.services.programs import PROGRAMS_DIR, program_definition_check, program_load
from runners.document import summarize
from runners.spec import validate_spec
from tests.real_documents import SERVING_SETTINGS, campaign_from_runner, runner_documents, stable_gemms


def definition() -> dict:
    return json.loads(Path(PROGRAMS_DIR, "aia-1.2.json").read_text())


@pytest.fixture
def aia12(db):
    program, _ = program_load(definition=definition())
    return program


@pytest.fixture
def tiny_program(db):
    """AIA 1.2 whose every level states the tiny plan's serving settings (another version)."""
    changed = copy.deepcopy(definition())
    changed["version"] = "9.15"
    settings = {k: v for k, v in SERVING_SETTINGS.items() if k != "source"}
    for level in changed["levels"]:
        level["thresholds"]["serving"]["value"] = copy.deepcopy(settings)
    program, _ = program_load(definition=changed)
    return program


def result(campaign, criterion_id):
    return campaign.criterion_results.get(criterion_id=criterion_id)


def server_valid() -> bool:
    document = runner_documents().documents["serving"]
    server = document["serving"]["models"][0]["scenarios"]["Server"]
    # LoadGen's VALID, and a rate the runner found sustained (on a loaded host no step may be).
    return server["result_valid"] is True and server.get("rate_sustained") is not False


def test_each_model_gets_a_serving_job_with_the_levels_loadgen_settings(cast, aia12):
    campaign = campaign_from_runner(
        vendor=cast.vendor, program=aia12, submitted_by=cast.owner, evaluate=False
    )
    job = campaign.jobs.get(suite=JobSuite.SERVING)
    assert job.model is not None and job.model.name == "tiny-bert"
    # campaign_from_runner replaced the plan by what the runner ran; a fresh submission keeps the level's.
    from apps.runs.services.campaigns import _suite_plan
    from apps.runs.specs import job_spec_build

    level = aia12.level("baseline")
    spec = job_spec_build(job=job, suite_plan=_suite_plan(level, "serving"), time_limit_s=1800)
    validate_spec(spec)
    settings = spec["options"]["serving"]
    assert settings["scenarios"] == level["thresholds"]["serving"]["value"]["scenarios"]
    assert settings["source"].startswith("program level baseline: Issue 15")
    assert [m["name"] for m in spec["models"]] == ["tiny-bert"]


def test_short_settings_fail_the_serving_criterion_but_not_the_baseline_level(cast, aia12):
    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, submitted_by=cast.owner)
    b6 = result(campaign, "B6")
    assert not b6.blocker and b6.outcome == CriterionOutcome.FAIL
    assert "tiny-bert" in b6.explanation
    if server_valid():
        assert "minimum duration (ms) 200 below the level's 2000" in b6.explanation
    assert b6.threshold == pytest.approx(0.1)  # the level's Server bound, in seconds


def test_a_valid_server_run_at_the_levels_bound_passes(cast, tiny_program):
    if not server_valid():
        pytest.skip("this host's loaded CPU made the tiny Server search INVALID at every step")
    campaign = campaign_from_runner(vendor=cast.vendor, program=tiny_program, submitted_by=cast.owner)
    b6 = result(campaign, "B6")
    assert b6.outcome == CriterionOutcome.PASS, b6.explanation
    assert "VALID at p90 <= 500 ms" in b6.explanation and b6.measured_value > 0


def _invalid_server(suite: str, document: dict) -> None:
    """LoadGen said INVALID for every Server step: no figure may be certified from it."""
    if suite != "serving":
        return
    for item in document["measurements"]:
        if item["kind"] == "serving_qps":
            value = item["value"]
            item["value"] = None
            item["params"].update(result_valid=False, invalid_value=value)
            item["flags"] = ["loadgen_invalid", "unavailable"]
    document["serving"]["models"][0]["scenarios"]["Server"]["result_valid"] = False


def test_an_invalid_server_run_fails_the_criterion(cast, tiny_program):
    campaign = campaign_from_runner(
        vendor=cast.vendor, program=tiny_program, submitted_by=cast.owner, edit=_invalid_server
    )
    b6 = result(campaign, "B6")
    assert b6.outcome == CriterionOutcome.FAIL and "INVALID" in b6.explanation


def test_a_looser_latency_bound_than_the_levels_fails(cast, tiny_program):
    """The bound is the one LoadGen's digested summary records (runners/serving_bound.py): a run at a
    looser bound fails the level, and a figure stating another bound than its summary is refused."""

    def looser(suite, document):
        if suite == "serving":
            server = document["serving"]["models"][0]["scenarios"]["Server"]["summary_text"]
            text = server.replace("target_latency (ns): 500000000", "target_latency (ns): 5000000000")
            assert text != server
            _with_summary(document, "Server", text)
            for item in document["measurements"]:
                if item["params"].get("scenario") == "Server":
                    item["params"]["latency_bound_s"] = 5.0

    def misstated(suite, document):
        if suite == "serving":
            for item in document["measurements"]:
                if item["kind"] == "serving_qps":
                    item["params"]["latency_bound_s"] = 0.05

    if not server_valid():
        pytest.skip("this host's loaded CPU made the tiny Server search INVALID at every step")
    assert_b6_fails(
        cast,
        tiny_program,
        (looser, "latency bound 5 s looser than the level's 0.5 s"),
        (misstated, "the figure's latency bound 50 ms is not the 500 ms LoadGen's summary records"),
    )


def assert_b6_fails(cast, program, *edits) -> None:
    """Each (edit, reason): a campaign from the real runner's documents with the edit fails B6, saying why."""
    for edit, reason in edits:
        campaign = campaign_from_runner(
            vendor=cast.vendor, program=program, submitted_by=cast.owner, edit=edit
        )
        b6 = result(campaign, "B6")
        assert b6.outcome == CriterionOutcome.FAIL and reason in b6.explanation, b6.explanation


def test_a_serving_document_missing_a_planned_scenario_is_refused(cast, aia12):
    def drop_server(suite, document):
        if suite == "serving":
            document["serving"]["models"][0]["scenarios"].pop("Server")
            document["cases"] = [c for c in document["cases"] if c["case"] != "serving_Server"]
            document["summary"] = summarize(document["cases"])

    outcomes: dict = {}
    campaign_from_runner(
        vendor=cast.vendor,
        program=aia12,
        submitted_by=cast.owner,
        edit=drop_server,
        outcomes=outcomes,
        evaluate=False,
    )
    assert outcomes["model"].accepted and not outcomes["serving"].accepted
    assert "planned serving results missing: tiny-bert/Server" in outcomes["serving"].reason


def test_a_serving_document_without_loadgen_log_digests_is_refused(cast, aia12):
    def no_digest(suite, document):
        if suite == "serving":
            document["serving"]["models"][0]["scenarios"]["Offline"].pop("detail_sha256")

    outcomes: dict = {}
    campaign_from_runner(
        vendor=cast.vendor,
        program=aia12,
        submitted_by=cast.owner,
        edit=no_digest,
        outcomes=outcomes,
        evaluate=False,
    )
    assert not outcomes["serving"].accepted
    assert "tiny-bert/Offline: LoadGen log digests" in outcomes["serving"].reason


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["scenarios"].pop("Server"), "serving scenarios missing"),
        (lambda s: s["scenarios"]["Server"].update(percentile=1.5), "Server.percentile"),
        (lambda s: s["scenarios"]["SingleStream"].update(min_duration_ms=0), "SingleStream.min_duration_ms"),
        (lambda s: s.update(duration_override_ms=100), "exploration override"),
    ],
)
def test_a_level_with_unusable_serving_settings_is_refused(change, message):
    changed = copy.deepcopy(definition())
    change(changed["levels"][0]["thresholds"]["serving"]["value"])
    with pytest.raises(ValidationError, match=message):
        program_definition_check(changed)


def test_the_certificate_carries_only_valid_serving_figures_at_the_levels_settings(cast, tiny_program, aia12):
    from apps.certificates.services import review_approve
    from apps.portal.evidence import campaign_evidence

    if not server_valid():
        pytest.skip("this host's loaded CPU made the tiny Server search INVALID at every step")
    campaign = campaign_from_runner(
        vendor=cast.vendor, program=tiny_program, submitted_by=cast.owner, edit=stable_gemms
    )
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason="Evidence complete and verified.")
    headline = json.loads(campaign.certificate.payload_json)["headline"]
    server = [f for f in headline["serving"] if f["scenario"] == "Server" and f["kind"] == "serving_qps"]
    assert len(server) == 1 and server[0]["result_valid"] is True and server[0]["value"] > 0
    assert server[0]["latency_bound_s"] == 0.5 and server[0]["percentile"] == 0.9
    assert len(server[0]["loadgen_summary_sha256"]) == 64
    rows = campaign_evidence(campaign=campaign, criteria=list(campaign.criterion_results.all())).serving
    qps_row = next(r for r in rows if r["m"].kind == "serving_qps")
    assert qps_row["problem"] is None and qps_row["valid"] is True and qps_row["steps"]

    # The same evidence under the real AIA 1.2 baseline (2 s, 100 queries, 100 ms): nothing certified.
    short = campaign_from_runner(
        vendor=cast.vendor, program=aia12, submitted_by=cast.owner, edit=stable_gemms
    )
    review_approve(campaign=short, reviewer=cast.reviewer, reason="Evidence complete and verified.")
    headline = json.loads(short.certificate.payload_json)["headline"]
    assert "serving" not in headline
    assert any(
        e["kind"] == "serving_qps" and "below the level's 2000" in e["reason"] for e in headline["excluded"]
    )


def _resummarized(text: str, line: str, value: float) -> str:
    """``text`` (a LoadGen summary) with the figure of the line starting ``line`` set to ``value``."""
    lines = text.splitlines(keepends=True)
    at = next(i for i, entry in enumerate(lines) if entry.startswith(line))
    lines[at] = f"{line}: {value:.2f}\n"
    return "".join(lines)


def _with_summary(document: dict, scenario: str, text: str) -> None:
    """A runner that writes ``text`` as ``scenario``'s LoadGen summary, digested everywhere the
    document names it (the run's record, its figures, and the Server figures' Offline copy)."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    run = document["serving"]["models"][0]["scenarios"][scenario]
    old, run["summary_text"], run["summary_sha256"] = run["summary_sha256"], text, digest
    for item in document["measurements"]:
        params = item["params"]
        if params.get("summary_sha256") == old:
            params["summary_sha256"] = digest
            if "loadgen_summary" in params:
                params["loadgen_summary"] = text
        if params.get("offline_summary_sha256") == old:
            params.update(offline_summary=text, offline_summary_sha256=digest)


def _server_qps(document: dict) -> float:
    return next(m["value"] for m in document["measurements"] if m["kind"] == "serving_qps")


def test_a_server_rate_above_the_models_offline_throughput_fails(cast, tiny_program):
    """Offline is the maximum throughput: a Server figure above it (beyond the tolerance) is refused."""

    def slow_offline(suite, document):
        if suite == "serving":
            offline = document["serving"]["models"][0]["scenarios"]["Offline"]["summary_text"]
            lowered = _resummarized(offline, "Samples per second", _server_qps(document) / 2)
            _with_summary(document, "Offline", lowered)

    if not server_valid():
        pytest.skip("this host's loaded CPU made the tiny Server search INVALID at every step")
    campaign = campaign_from_runner(
        vendor=cast.vendor, program=tiny_program, submitted_by=cast.owner, edit=slow_offline
    )
    b6 = result(campaign, "B6")
    assert b6.outcome == CriterionOutcome.FAIL, b6.explanation
    assert "above the model's Offline throughput" in b6.explanation


def test_a_server_rate_loadgen_saw_unsustained_or_an_undigested_summary_fails(cast, tiny_program):
    """The judge re-reads LoadGen's completed and scheduled rates from the digested summary: a run
    that completed half of what was scheduled certifies nothing, whatever LoadGen's VALID said."""

    def half_completed(suite, document):
        if suite == "serving":
            server = document["serving"]["models"][0]["scenarios"]["Server"]["summary_text"]
            scheduled = float(server.split("Scheduled samples per second :")[1].split()[0])
            half = _resummarized(server, "Completed samples per second    ", scheduled / 2)
            _with_summary(document, "Server", half)

    def undigested(suite, document):
        if suite == "serving":
            for item in document["measurements"]:
                if "loadgen_summary" in item["params"]:
                    item["params"]["loadgen_summary"] += "\n"

    if not server_valid():
        pytest.skip("this host's loaded CPU made the tiny Server search INVALID at every step")
    assert_b6_fails(
        cast,
        tiny_program,
        (half_completed, "rate not sustained"),
        (undigested, "no LoadGen Server summary matching the run's digest"),
    )
