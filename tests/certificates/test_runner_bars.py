"""Issue 11: the bars the runner applies while it times (the clock cross-check bounds, the TEST04
bound) are the program level's, carried to it by the job spec; the server judges the clock
cross-check itself (integrity.timing) from the raw figures of real runner documents."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from apps.certificates import judge
from apps.certificates.models import CriterionOutcome
from apps.registry.models import Architecture, ModelTask
from apps.runs.models import JobSuite
from apps.runs.services.campaigns import campaign_submit
from apps.runs.services.programs import PROGRAMS_DIR, program_load, program_runner_bars
from runners.models.seeded import seeded_weights_bytes
from runners.timing import TimingPolicy
from tests.factories import ModelArtifactFactory
from tests.real_documents import (
    BERT_CONFIG,
    campaign_from_runner,
    cpu_target,
    gemm_items,
    runner_documents,
    stable_gemms,
)

TIMING_CRITERION = {"1.2": {"baseline": "B5", "standard": "S7", "advanced": "A8"}}


def definition(version: str = "1.2") -> dict:
    return json.loads(Path(PROGRAMS_DIR, f"aia-{version}.json").read_text())


@pytest.fixture
def aia12(db):
    return program_load(definition=definition())[0]


def variant(**thresholds):
    """AIA 1.2 (as another version) with some thresholds of every level changed."""
    changed = copy.deepcopy(definition())
    changed["version"] = "9.2"
    for level in changed["levels"]:
        for name, value in thresholds.items():
            level["thresholds"][name]["value"] = value
    return program_load(definition=changed)[0]


def submitted(cast, program, level="baseline"):
    target = cpu_target(vendor=cast.vendor)
    artifact = ModelArtifactFactory(
        owner=cast.vendor,
        name="bars-bert",
        architecture=Architecture.BERT_ENCODER,
        task=ModelTask.TEXT_EMBEDDING,
        config=BERT_CONFIG,
        content=seeded_weights_bytes(Architecture.BERT_ENCODER, BERT_CONFIG, seed=0),
        tensor_count=0,
    )
    return campaign_submit(
        vendor=cast.vendor, target=target, program=program, level=level, model_artifacts=[artifact]
    )


# Through the job spec -------------------------------------------------------------------------


def test_every_timed_job_spec_carries_the_levels_clock_bounds_and_test04_bound(cast, aia12):
    campaign = submitted(cast, aia12)
    thresholds = definition()["levels"][0]["thresholds"]
    # The suites timed by the runner's own timing code; serving is timed by LoadGen (host clock).
    timed = campaign.jobs.filter(suite__in=[JobSuite.PERFORMANCE, JobSuite.MODEL])
    assert timed.exists()
    for job in timed:
        options = job.spec["options"]
        assert options["timing"] == {
            "clock_ratio_min": thresholds["clock_ratio_bounds"]["value"]["min"],
            "clock_ratio_max": thresholds["clock_ratio_bounds"]["value"]["max"],
        }
        assert options["integrity"] == {"caching_threshold": thresholds["test04_max_speedup"]["value"]}
        # What the runner makes of them (runners/timing.py, runners/integrity.py).
        policy = TimingPolicy.from_dict({**options["timing"], "quick": options["quick"]})
        assert policy.clock_bounds == (0.5, 1.05)


def test_a_changed_bar_is_edited_in_the_program_only_and_reaches_the_runner_and_the_judge(cast):
    program = variant(clock_ratio_bounds={"min": 0.8, "max": 1.02}, test04_max_speedup=0.05)
    campaign = submitted(cast, program, level="standard")
    performance = campaign.jobs.get(suite=JobSuite.PERFORMANCE)
    assert performance.spec["options"]["timing"] == {"clock_ratio_min": 0.8, "clock_ratio_max": 1.02}
    assert performance.spec["options"]["integrity"] == {"caching_threshold": 0.05}
    thresholds = judge.level_thresholds(program=program, level="standard")
    assert (thresholds.clock_ratio_min, thresholds.clock_ratio_max, thresholds.test04_max_speedup) == (
        0.8,
        1.02,
        0.05,
    )


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_programs_that_never_stated_the_runner_bars_keep_the_values_of_their_time(version):
    for level in definition(version)["levels"]:
        bars = program_runner_bars(program=definition(version), level=level["code"])
        assert bars == {"caching_threshold": 0.10, "clock_ratio_min": 0.5, "clock_ratio_max": 1.05}
        thresholds = judge.level_thresholds(program=definition(version), level=level["code"])
        assert (thresholds.clock_ratio_min, thresholds.clock_ratio_max) == (0.5, 1.05)
        assert thresholds.sources["clock_ratio_bounds"] == judge.LEGACY_SOURCE


def test_clock_bounds_that_cannot_hold_an_honest_ratio_are_refused(db):
    from django.core.exceptions import ValidationError

    from apps.runs.services.programs import program_definition_check

    broken = copy.deepcopy(definition())
    broken["levels"][0]["thresholds"]["clock_ratio_bounds"]["value"] = {"min": 1.1, "max": 1.2}
    with pytest.raises(ValidationError, match="clock_ratio_bounds"):
        program_definition_check(broken)


# The server judges the clock cross-check ------------------------------------------------------


def events_timed(ratio: float, *, runner_says: str = "pass"):
    """Edits a real performance document as if its GEMMs had been timed by device events whose sum
    is `ratio` x the host clock (below 1: events that under-report time), the runner saying `runner_says`."""

    def edit(suite, document):
        if suite != "performance":
            return
        for item in document["measurements"]:
            item["unstable"] = False
        for item in gemm_items(document):
            host_s = item["stats"]["median"] * item["stats"]["n"] * 1.02
            item["timing_method"] = "device_events"
            item["clock"] = {
                "event_s": host_s * ratio,
                "host_s": host_s,
                "ratio": ratio,
                "min_round_ratio": ratio,
                "rounds": 3,
                "bounds": None,
                "agrees": None,
            }
        checked = len(gemm_items(document))
        document["integrity"]["timing"] = {
            "verdict": runner_says,
            "checked": checked,
            "disagreements": 0,
            "min_ratio": ratio,
            "max_ratio": ratio,
            "bounds": [0.01, 2.0] if runner_says == "pass" else None,
            "items": [],
        }

    return edit


def test_events_that_under_report_time_fail_the_timing_blocker(cast, aia12):
    # A runner that was given lenient bounds (or lies) says pass; the events claim 12x the speed.
    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, edit=events_timed(1 / 12))
    timing = campaign.criterion_results.get(criterion_id="B5")
    assert timing.outcome == CriterionOutcome.FAIL and timing.blocker
    assert "disagree with the host clock" in timing.explanation and "0.083" in timing.explanation
    assert timing.evidence["bounds"] == [0.5, 1.05]
    assert "B5" in campaign.state_reason and "failed blocker" in campaign.state_reason
    # The reviewer's page asks the same judge.
    from apps.portal.evidence import campaign_evidence

    page = campaign_evidence(campaign=campaign, criteria=list(campaign.criterion_results.all()))
    assert any("Integrity check timing" in a.text and "0.083" in a.text for a in page.anomalies)
    assert ("clock_ratio_bounds", '{"max": 1.05, "min": 0.5}') in [(n, v) for n, v, _ in page.thresholds]


def test_honest_events_pass_and_host_clock_timing_has_nothing_to_cross_check(cast, aia12):
    honest = campaign_from_runner(vendor=cast.vendor, program=aia12, edit=events_timed(0.998))
    timing = honest.criterion_results.get(criterion_id="B5")
    assert timing.outcome == CriterionOutcome.PASS, timing.explanation
    host = campaign_from_runner(vendor=cast.vendor, program=aia12)  # the CPU: host clock only
    assert host.criterion_results.get(criterion_id="B5").outcome == CriterionOutcome.NOT_APPLICABLE


def test_the_judge_reads_the_programs_bounds_not_the_runners(cast):
    strict = variant(clock_ratio_bounds={"min": 0.999, "max": 1.05})
    campaign = campaign_from_runner(vendor=cast.vendor, program=strict, edit=events_timed(0.99))
    assert campaign.criterion_results.get(criterion_id="B5").outcome == CriterionOutcome.FAIL


def test_events_timing_without_its_raw_clock_figures_fails():
    thresholds = judge.level_thresholds(program=definition(), level="baseline")
    stripped = {"name": "matmul", "dtype": "float32", "timing_method": "device_events", "clock": None}
    assert not judge.clock_verdict(item=stripped, thresholds=thresholds).passed
    host = {"name": "matmul", "dtype": "float32", "timing_method": "host_clock", "clock": None}
    assert judge.clock_verdict(item=host, thresholds=thresholds) is None
    refused = judge.timing_verdicts(
        measurements=[], integrity={"timing": {"verdict": "fail"}}, thresholds=thresholds
    )
    assert [v.passed for v in refused] == [False]
    assert refused[0].detail == "the runner refused figures whose events disagreed with the host clock"


def test_figures_the_runners_judge_found_disagreeing_with_their_raw_timings_fail():
    """Issue 13: the model suite's judge recomputes every figure from the raw timings; a document where
    they disagreed fails the clock cross-check, and says why in its own words."""
    thresholds = judge.level_thresholds(program=definition(), level="baseline")
    timing = {
        "verdict": "fail",
        "disagreements": 0,
        "items": [{"verdict": "fail", "raw_timings": {"checked": 3, "disagreements": 3}}],
    }
    [refused] = judge.timing_verdicts(measurements=[], integrity={"timing": timing}, thresholds=thresholds)
    assert not refused.passed
    assert (
        refused.detail
        == "the runner's judge refused figures that disagree with the raw timings the device returned"
    )
    honest = {"verdict": "not_applicable", "items": [{"raw_timings": {"checked": 3, "disagreements": 0}}]}
    assert judge.timing_verdicts(measurements=[], integrity={"timing": honest}, thresholds=thresholds) == []


# Headlines from the runner's claims, rounded by one rule ---------------------------------------

REASON = "Evidence complete and verified."


def certificate_headline(cast, program, edit):
    campaign = campaign_from_runner(vendor=cast.vendor, program=program, submitted_by=cast.owner, edit=edit)
    from apps.certificates.services import review_approve

    review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
    campaign.refresh_from_db()
    return json.loads(campaign.certificate.payload_json)["headline"]


def test_the_headline_is_the_runners_claimed_best_gemm_rounded_by_the_judges_rule(cast, aia12):
    def claim_one_digit(suite, document):
        stable_gemms(suite, document)
        if suite == "performance":
            best = max(gemm_items(document), key=lambda m: m["value"])
            best["significant_digits"] = 1  # the runner says its clock supports one digit only

    headline = certificate_headline(cast, aia12, claim_one_digit)
    best = max(gemm_items(runner_documents().documents["performance"]), key=lambda m: m["value"])
    assert headline["best_gemm_tflops"]["float32"] == judge.round_significant(best["value"], 1)


def test_a_runner_cannot_buy_digits_its_interval_does_not_support():
    wide = {"median": 1e-3, "ci_low": 0.9e-3, "ci_high": 1.1e-3}  # half-width 10%: one digit
    assert judge.published_digits(stats=wide, runner_digits=4) == 1
    assert judge.published_digits(stats=wide, runner_digits=None) == 1
    tight = {"median": 1e-3, "ci_low": 0.9999e-3, "ci_high": 1.0001e-3}
    assert judge.published_digits(stats=tight, runner_digits=2) == 2  # the runner may say fewer
    assert judge.published_digits(stats=tight, runner_digits=9) == 4
    assert judge.published_figure(value=0.0123456, stats=wide, runner_digits=4) == 0.01


def test_a_claim_that_its_measurements_do_not_show_publishes_no_figure(cast, aia12):
    def inflated(suite, document):
        stable_gemms(suite, document)
        if suite == "performance":
            document["claims"]["dtypes"]["float32"]["best_gemm_tflops"] *= 3

    headline = certificate_headline(cast, aia12, inflated)
    assert "float32" not in headline["best_gemm_tflops"]
    (entry,) = [e for e in headline["excluded"] if e["measurement"] == "best_gemm"]
    assert "not a figure its measurements show" in entry["reason"]


def test_a_claim_naming_an_unstable_or_lesser_gemm_publishes_no_figure():
    rows = [({"name": "small", "value": 1.0}, None), ({"name": "big", "value": 2.0}, None)]
    claim = {"best_gemm": "small", "best_gemm_tflops": 1.0}
    chosen, why = judge.claimed_best(
        claim=claim, key="best_gemm", value_key="best_gemm_tflops", candidates=rows
    )
    assert chosen is None and "not its best certifiable figure (big)" in why
    rows[1] = (rows[1][0], "unstable timing (high coefficient of variation)")
    chosen, why = judge.claimed_best(
        claim=claim, key="best_gemm", value_key="best_gemm_tflops", candidates=rows
    )
    assert chosen == rows[0][0] and why is None
    big = {"best_gemm": "big", "best_gemm_tflops": 2.0}
    chosen, why = judge.claimed_best(
        claim=big, key="best_gemm", value_key="best_gemm_tflops", candidates=rows
    )
    assert chosen is None and "excluded: unstable" in why
    # A document of a runner before the claims existed: the best certifiable row stands in.
    chosen, _ = judge.claimed_best(claim=None, key="best_gemm", value_key="best_gemm_tflops", candidates=rows)
    assert chosen == rows[0][0]


def test_the_false_alarm_bench_reads_the_bounds_a_job_spec_carries():
    """bench/timing_false_alarms.py takes the clock bounds from the program file, as the job spec does:
    the bounds have one home (the program data), copied by neither."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "bench" / "timing_false_alarms.py"
    module_spec = importlib.util.spec_from_file_location("timing_false_alarms", path)
    bench = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(bench)
    for version in ("1.2", "1.3"):
        for level in ("baseline", "standard", "advanced"):
            bars = program_runner_bars(program=definition(version), level=level)
            read = bench.program_clock_bounds(version, level)
            assert (read["min"], read["max"]) == (bars["clock_ratio_min"], bars["clock_ratio_max"])
            assert read["source"]
    assert bench.program_clock_bounds()["program"] == "AIA 1.2"  # the newest published (1.3 is a draft)
    with pytest.raises(SystemExit, match="states clock_ratio_bounds"):
        bench.program_clock_bounds("1.1", "baseline")  # AIA 1.1 states none
