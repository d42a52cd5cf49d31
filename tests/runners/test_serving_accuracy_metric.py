"""Issue 15: a decoder's served accuracy, teacher-forced so that one near tie does not cascade.

The free-running greedy agreement compares every served token with the float64 model's own greedy
continuation: one near tie that a reduced precision flips changes every token after it. The
teacher-forced agreement judges each served token on the prefix it was served after, and counts a
token whose reference logit ties with the first in the dtype (one machine epsilon of the dtype times
the largest |logit|; runners/served_outputs.py TIE_RULE)."""

from __future__ import annotations

import pytest
import torch

from runners.served_outputs import (
    DECIDED_ROUTING_METRIC,
    FREE_RUNNING_METRIC,
    TEACHER_FORCED_METRIC,
    served_tokens_within_tie,
    serving_accuracy_score,
)

VOCAB = 6


def logits_for(choices: list[tuple[int, int, float]]) -> torch.Tensor:
    """One position per (first, runner_up, relative gap): the reference's logits there, largest 4.0."""
    rows = []
    for first, runner_up, gap in choices:
        row = torch.full((VOCAB,), -4.0, dtype=torch.float64)
        row[first] = 4.0
        row[runner_up] = 4.0 - gap * 4.0
        rows.append(row)
    return torch.stack(rows)


def score(outputs, reference, dtype_name, forced, metric=TEACHER_FORCED_METRIC):
    return serving_accuracy_score(
        decoder=True,
        outputs=outputs,
        reference=reference,
        dtype_name=dtype_name,
        score=lambda *_: {},
        teacher_forced=forced,
        metric=metric,
    )


def test_one_flipped_near_tie_does_not_fail_every_token_after_it():
    # The reference generates 0 0 0 0; the bfloat16 device flips the first token (a near tie, 0.2% of
    # the largest logit apart) and then continues as the reference does from the prefix it served.
    reference = torch.zeros(1, 4, dtype=torch.long)
    served = torch.tensor([[1, 2, 2, 2]])
    positions = [(0, 1, 0.002), (2, 3, 0.5), (2, 3, 0.5), (2, 3, 0.5)]  # teacher-forced on the served prefix
    result = score(served, reference, "bfloat16", lambda _i, _t: logits_for(positions))
    assert result[FREE_RUNNING_METRIC] == 0.0  # every token differs from the free-running reference
    assert result["metric"] == TEACHER_FORCED_METRIC and result["value"] == 1.0
    assert result["meets_informational_bar"] and "check_logprobs_close" in result["tie_rule"]


def test_a_token_the_reference_does_not_rank_first_counts_only_within_the_dtypes_epsilon():
    tokens = torch.tensor([1])
    near = logits_for([(0, 1, 0.005)])  # 0.5% below the largest: bfloat16's epsilon is 2^-7 = 0.78%
    assert served_tokens_within_tie(tokens, near, torch.bfloat16) == 1.0
    assert served_tokens_within_tie(tokens, near, torch.float16) == 0.0  # 2^-10
    assert served_tokens_within_tie(tokens, near, torch.float32) == 0.0
    far = logits_for([(0, 1, 0.02)])
    assert served_tokens_within_tie(tokens, far, torch.bfloat16) == 0.0
    assert served_tokens_within_tie(torch.tensor([0]), far, torch.float32) == 1.0  # the first choice
    assert served_tokens_within_tie(torch.tensor([VOCAB]), far, torch.bfloat16) == 0.0  # not a token


def test_stale_tokens_fail_the_teacher_forced_agreement():
    reference = torch.zeros(2, 3, dtype=torch.long)
    served = torch.tensor([[0, 0, 0], [0, 0, 0]])  # sample 1 answered with sample 0's tokens
    per_sample = {0: [(0, 1, 0.5)] * 3, 1: [(4, 5, 0.5)] * 3}
    result = score(served, reference, "bfloat16", lambda i, _t: logits_for(per_sample[i]))
    assert result["value"] == 0.5 and not result["meets_informational_bar"]


def test_the_free_running_metric_is_still_computed_as_documents_before_aia_13_stated_it():
    reference = torch.tensor([[0, 1, 2, 3]])
    served = torch.tensor([[0, 1, 3, 3]])
    legacy = score(served, reference, "bfloat16", None, metric=FREE_RUNNING_METRIC)
    assert legacy == {
        "metric": FREE_RUNNING_METRIC,
        "value": 0.75,
        "generated_tokens": 4,
        "informational_bar": 0.9,
        "meets_informational_bar": False,
    }
    with pytest.raises(ValueError):
        score(served, reference, "bfloat16", None)  # the teacher-forced metric needs the reference's logits


def test_the_reveal_rescores_a_decoder_by_the_metric_its_document_states(tmp_path):
    """A real serving run of a tiny decoder: the platform's reveal re-scores the revealed accuracy-mode
    tokens teacher-forced (an AIA 1.3 document), or free-running for a document that states that metric
    (written before AIA 1.3), and catches a document whose stated value the tokens do not give."""
    pytest.importorskip("mlperf_loadgen")
    import copy

    from runners.backends import get_backend
    from runners.commitment import CollectingCommitment, serving_output_id
    from runners.revealed import RevealContext, judge_output
    from runners.serving import run_serving
    from tests.runners.test_serving import SETTINGS, TINY_LLAMA, entry, spec_for

    settings = {**SETTINGS, "server_search": {**SETTINGS["server_search"], "max_steps": 1}}
    spec = spec_for([entry(tmp_path, "tiny-llama", "llama-decoder", TINY_LLAMA)], settings)
    commitment = CollectingCommitment()
    document = run_serving(spec, get_backend("cpu"), commitment=commitment)
    output_id = serving_output_id("tiny-llama", "float32", "accuracy")
    tokens = dict(commitment.collected)[output_id]
    verdict = judge_output(RevealContext(document=document, plan=spec), output_id, tokens)
    # A model that does not route: every position decided (issue 16's metric equals the teacher-forced).
    assert verdict["agrees"] and verdict["metric"] == DECIDED_ROUTING_METRIC and verdict["value"] == 1.0
    case = next(c for c in document["cases"] if c["case"] == "serving_accuracy")
    assert case["metrics"]["routing"]["tied_positions"] == 0 and case["metrics"][TEACHER_FORCED_METRIC] == 1.0
    forced = copy.deepcopy(document)  # an AIA 1.3 runner before issue 16 stated the teacher-forced metric
    forced_case = next(c for c in forced["cases"] if c["case"] == "serving_accuracy")
    forced_case["metrics"] = {
        "metric": TEACHER_FORCED_METRIC,
        "value": case["metrics"][TEACHER_FORCED_METRIC],
    }
    verdict = judge_output(RevealContext(document=forced, plan=spec), output_id, tokens)
    assert verdict["agrees"] and verdict["metric"] == TEACHER_FORCED_METRIC
    older = copy.deepcopy(document)
    older_case = next(c for c in older["cases"] if c["case"] == "serving_accuracy")
    older_case["metrics"] = {"metric": FREE_RUNNING_METRIC, "value": case["metrics"][FREE_RUNNING_METRIC]}
    verdict = judge_output(RevealContext(document=older, plan=spec), output_id, tokens)
    assert verdict["agrees"] and verdict["metric"] == FREE_RUNNING_METRIC
    older_case["metrics"]["value"] = 0.5  # a value the served tokens do not give
    verdict = judge_output(RevealContext(document=older, plan=spec), output_id, tokens)
    assert not verdict["agrees"]
