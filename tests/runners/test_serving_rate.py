"""The sustained-rate checks (runners/serving_rate.py) on the LoadGen summaries of the first H200 run
of bench/device_check.sh (bench/evidence/h200-2026-11-30/serving.json): the llama Server figure that
LoadGen called VALID at 717.9 QPS is caught by both checks, the resnet one passes both."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from runners.serving_rate import (
    SUSTAINED_RATE_TOLERANCE,
    above_offline_problem,
    summary_figures,
    summary_matches,
    unsustained_problem,
)

EVIDENCE = Path(__file__).resolve().parents[2] / "bench/evidence/h200-2026-11-30/serving.json"


@pytest.fixture(scope="module")
def h200() -> dict[str, dict]:
    document = json.loads(EVIDENCE.read_text())
    return {m["name"]: m["scenarios"] for m in document["serving"]["models"]}


def test_the_h200_llama_server_figure_was_not_sustained_nor_below_offline(h200):
    server, offline = h200["llama-small-seeded"]["Server"], h200["llama-small-seeded"]["Offline"]
    assert server["result_valid"] is True  # LoadGen's verdict, what the platform certified before
    figures = summary_figures(server["summary_text"])
    assert figures["scheduled"] == 711.23 and figures["completed"] == 379.70
    assert figures["target_qps"] == 717.862 and figures["validity"] == "VALID"
    assert "rate not sustained" in unsustained_problem(server["summary_text"])
    problem = above_offline_problem(server["summary_text"], offline["summary_text"])
    assert "above the model's Offline throughput 410.2 samples/s" in problem


def test_the_h200_resnet_server_figure_passes_both_checks(h200):
    server, offline = h200["resnet-small-seeded"]["Server"], h200["resnet-small-seeded"]["Offline"]
    assert unsustained_problem(server["summary_text"]) is None
    assert above_offline_problem(server["summary_text"], offline["summary_text"]) is None
    assert summary_figures(offline["summary_text"])["offline"] == pytest.approx(6441, rel=1e-3)


def test_the_digest_and_the_scenario_are_checked(h200):
    server, offline = h200["resnet-small-seeded"]["Server"], h200["resnet-small-seeded"]["Offline"]
    assert summary_matches(server["summary_text"], server["summary_sha256"])
    assert not summary_matches(server["summary_text"] + " ", server["summary_sha256"])
    assert not summary_matches(None, server["summary_sha256"])
    assert "not a Server run's" in unsustained_problem(offline["summary_text"])
    assert "no Offline samples per second" in above_offline_problem(
        server["summary_text"], server["summary_text"]
    )
    assert hashlib.sha256(server["summary_text"].encode()).hexdigest() == server["summary_sha256"]


def test_the_tolerance_is_the_boundary():
    def summary(scheduled: float, completed: float) -> str:
        return (
            "Scenario : Server\n"
            f"Completed samples per second    : {completed:.2f}\n"
            f"Scheduled samples per second : {scheduled:.2f}\n"
        )

    edge = 100 * (1 - SUSTAINED_RATE_TOLERANCE)
    assert unsustained_problem(summary(100, edge)) is None
    assert unsustained_problem(summary(100, edge - 0.01)) is not None
