"""Issues 15 and 16: which score of a decoder's served accuracy a level judges. AIA 1.3 (draft) states
bars for the teacher-forced agreement at the positions whose MoE routing is decided in the dtype; AIA
1.0-1.2 judge the free-running greedy agreement, as they always did."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.certificates import judge
from apps.runs.services.programs import PROGRAMS_DIR, program_definition_check


def definition(version: str) -> dict:
    return json.loads(Path(PROGRAMS_DIR, f"aia-{version}.json").read_text())


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_frozen_programs_keep_judging_the_free_running_agreement(version):
    program = definition(version)
    for level in program["levels"]:
        thresholds = judge.level_thresholds(program=program, level=level["code"])
        for dtype in ("float32", "bfloat16", "float16"):
            assert (
                judge.serving_decoder_metric(thresholds=thresholds, dtype=dtype) == "greedy_token_agreement"
            )


def test_aia_13_judges_the_agreement_where_routing_is_decided_at_the_same_bars():
    program = definition("1.3")
    program_definition_check(program)
    for level in program["levels"]:
        thresholds = judge.level_thresholds(program=program, level=level["code"])
        source = thresholds.sources["accuracy"]
        assert "check_logprobs_close" in source and "bench/serving_decoder_accuracy.py" in source
        assert "ROUTING_TIE_RULE" in source and "bench/deepseek_routing_error.py" in source  # issue 16
        for dtype, bars in thresholds.accuracy.items():
            if dtype == judge.FP8_ACCURACY:  # the FP8 path's bar (Advanced), not a serving dtype's
                continue
            assert judge.serving_decoder_metric(thresholds=thresholds, dtype=dtype) == (
                "decided_routing_token_agreement"
            )
            # The bar is greedy_token_agreement's (bfloat16 0.9): not lowered for the new metric.
            assert bars["decided_routing_token_agreement"] == bars["greedy_token_agreement"]
            assert bars["decided_routing_token_agreement"] >= 0.9
            assert "teacher_forced_token_agreement" not in bars  # one bar, one judged metric


def test_a_level_stating_the_teacher_forced_bar_alone_judges_it():
    """What the AIA 1.3 draft stated before issue 16: the teacher-forced agreement over every position."""
    program = definition("1.3")
    for level in program["levels"]:
        for bars in level["thresholds"]["accuracy"]["value"].values():
            bars["teacher_forced_token_agreement"] = bars.pop("decided_routing_token_agreement")
        thresholds = judge.level_thresholds(program=program, level=level["code"])
        assert judge.serving_decoder_metric(thresholds=thresholds, dtype="bfloat16") == (
            "teacher_forced_token_agreement"
        )
