"""Issue 15: the Offline figure is the best of its VALID runs, and the Server search is checked against
that same kept run. A document whose Server figure (or Offline figure) reads another Offline run than
the one its serving record keeps is refused at ingestion: a runner cannot certify one Offline figure
and let its Server rate be bounded by a faster run."""

from __future__ import annotations

import hashlib
import re

from apps.certificates import judge
from tests.real_documents import campaign_from_runner, runner_documents


def _faster(text: str) -> str:
    """The Offline summary with twice the samples/s (another, faster run than the kept one)."""

    def double(match: re.Match) -> str:
        return f"{match.group(1)}{float(match.group(2)) * 2:g}"

    return re.sub(r"^(Samples per second\s*:\s*)([\d.]+)", double, text, count=1, flags=re.MULTILINE)


def _server(document: dict) -> dict:
    return next(
        m
        for m in document["measurements"]
        if m["kind"] == "serving_qps" and m["params"]["scenario"] == "Server"
    )


def test_the_server_search_reads_the_kept_offline_run():
    document = runner_documents().documents["serving"]
    record = document["serving"]["models"][0]["scenarios"]["Offline"]
    offline = next(
        judge.serving_params(m)
        for m in document["measurements"]
        if m["kind"] == "serving_throughput" and judge.serving_params(m)["scenario"] == "Offline"
    )
    kept = record["attempts"][record["sizing"]["kept_attempt"]]
    assert offline["summary_sha256"] == record["summary_sha256"] == kept["summary_sha256"]
    assert _server(document)["params"]["offline_summary_sha256"] == record["summary_sha256"]


def _outcome(cast, program, edit) -> object:
    outcomes: dict = {}
    campaign_from_runner(
        vendor=cast.vendor,
        program=program,
        submitted_by=cast.owner,
        edit=edit,
        outcomes=outcomes,
        evaluate=False,
    )
    return outcomes["serving"]


def test_a_server_rate_checked_against_another_offline_run_is_refused(cast, aia12):
    def faster_offline(suite: str, document: dict) -> None:
        if suite != "serving":
            return
        params = _server(document)["params"]
        text = _faster(params["offline_summary"])
        params.update(offline_summary=text, offline_summary_sha256=hashlib.sha256(text.encode()).hexdigest())

    outcome = _outcome(cast, aia12, faster_offline)
    assert not outcome.accepted
    assert (
        "tiny-bert/Server reads Offline run" in outcome.reason
        and "not the kept Offline run" in outcome.reason
    )


def test_an_offline_figure_from_another_run_than_the_kept_one_is_refused(cast, aia12):
    def other_offline(suite: str, document: dict) -> None:
        if suite != "serving":
            return
        for item in document["measurements"]:
            if item["kind"] == "serving_throughput" and item["params"]["scenario"] == "Offline":
                item["params"]["summary_sha256"] = "0" * 64

    outcome = _outcome(cast, aia12, other_offline)
    assert not outcome.accepted
    assert "tiny-bert/Offline reads Offline run 000000000000, not the kept Offline run" in outcome.reason
