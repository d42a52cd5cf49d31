"""The collectives suite (issue 16): all_reduce, all_gather, reduce_scatter and uneven all_to_all
over two gloo processes, judged against float64 and measured as nccl-tests' algbw and busbw; a
reduce that drops a rank and an all_to_all with a wrong split are caught; one device is not
applicable."""

from __future__ import annotations

import pytest

from runners.backends import get_backend
from runners.collectives import OPS, bus_factor, moe_splits, run_collectives
from runners.document import validate_document
from runners.spec import build_spec
from runners.suites import SUITES

CHALLENGE = "c011ec71" * 8
SMALL = {"sizes_bytes": [4096, 65536], "iterations": 3, "warmup": 1, "hidden": 128}


def run(
    options: dict, ops_module: str = "runners.collectives.ops", backend=None, device: str = "cpu"
) -> dict:
    spec = build_spec(
        suite="collectives", device=device, challenge=CHALLENGE, options={"collectives": options}
    )
    document = run_collectives(spec, backend or get_backend("cpu"), ops_module=ops_module)
    validate_document(document)
    return document


def test_bus_factors_are_nccl_tests():
    assert bus_factor("all_reduce", 8) == pytest.approx(2 * 7 / 8)
    for op in ("all_gather", "reduce_scatter", "all_to_all"):
        assert bus_factor(op, 4) == pytest.approx(3 / 4)
    assert "collectives" in SUITES


def test_moe_splits_are_uneven_leave_an_expert_rank_empty_and_keep_every_row():
    for world in (2, 4, 8):
        splits = moe_splits(CHALLENGE, 3, world, 100)
        assert all(sum(row) == 100 for row in splits)
        assert splits[0][-1] == 0
        assert len({tuple(row) for row in splits}) > 1 or world == 1


@pytest.mark.slow
def test_the_honest_stack_passes_every_collective_and_reports_bus_bandwidth():
    document = run({**SMALL, "interconnect": "loopback"})
    section = document["collectives"]
    assert section["applicable"] and section["backend"] == "gloo" and section["world_size"] == 2
    assert section["interconnect"] == "loopback" and len(section["devices"]) == 2
    assert {c["kernel"] for c in document["cases"]} == set(OPS)
    assert document["summary"]["total"] == len(OPS) * 2 * 2
    assert document["summary"]["passed"] == document["summary"]["total"], [
        (c["kernel"], c["message"]) for c in document["cases"] if c["status"] != "pass"
    ]
    assert len(document["measurements"]) == document["summary"]["total"]
    for item in document["measurements"]:
        params = item["params"]
        assert item["kind"] == "collective" and item["unit"] == "GB/s"
        assert params["algbw_gbps"] == pytest.approx(params["bytes"] / params["time_s"] / 1e9)
        assert item["value"] == pytest.approx(params["algbw_gbps"] * bus_factor(params["op"], 2))


@pytest.mark.slow
def test_a_reduce_that_drops_a_rank_and_an_all_to_all_with_a_wrong_split_are_caught():
    document = run(SMALL, ops_module="tests.runners.planted_collectives")
    by_op: dict[str, set[str]] = {}
    for case in document["cases"]:
        by_op.setdefault(case["kernel"], set()).add(case["status"])
    assert by_op == {
        "all_reduce": {"fail"},
        "all_to_all": {"fail"},
        "all_gather": {"pass"},
        "reduce_scatter": {"pass"},
    }
    failed = {m["params"]["op"] for m in document["measurements"]}
    assert failed == {"all_gather", "reduce_scatter"}  # no bandwidth for a wrong answer


class OneDevice:
    def fingerprint(self) -> dict:
        return {**get_backend("cpu").fingerprint(), "backend": "cuda", "device_count": 1}


def test_one_device_is_not_applicable_and_runs_nothing():
    document = run(SMALL, backend=OneDevice(), device="cuda")
    assert document["collectives"]["applicable"] is False
    assert "at least two" in document["collectives"]["reason"]
    assert document["cases"] == [] and document["measurements"] == []
    single_cpu = run({**SMALL, "world_size": 1})
    assert single_cpu["collectives"]["applicable"] is False


@pytest.mark.parametrize(
    "options",
    [
        {"ops": ["broadcast"]},
        {"sizes_bytes": [0]},
        {"iterations": 0},
        {"world_size": "2"},
        {"ops_module": "os"},
    ],
)
def test_bad_options_are_a_bad_spec_case_not_a_crash(options):
    document = run(options)
    assert [c["code"] for c in document["cases"]] == ["bad_spec"]
    assert document["collectives"]["applicable"] is False
