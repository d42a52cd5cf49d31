"""Issue 16, draft AIA 1.3: a MoE decoder's served tokens judged with near-tied routing apart.

Where the float64 reference keeps one expert (or group) over another by less than the dtype's rounding
can move their selection scores, a correct low-precision device may keep the other and serve another
token: session 24 saw an honest bfloat16 serving run at 0.891, below the 0.90 bar, with nearly every
disagreement at such a position. ``decided_routing_token_agreement`` (runners/served_outputs.py
ROUTING_TIE_RULE) judges the positions whose routing is decided in the dtype and counts the others
apart. These tests serve the real tiny DeepSeek-V3 decoder (the model suite's seeded weights) in the
dtype and score it against the float64 reference written apart, as the serving suite does."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from runners.model_suite import DTYPES, deepseek_tiny_model
from runners.model_suite.workloads import INFORMATIONAL_AGREEMENT, float64_model, workload_for
from runners.models import ModelSpec, load_model
from runners.served_outputs import (
    DECIDED_ROUTING_METRIC,
    ROUTING_TIE_EPS,
    TEACHER_FORCED_METRIC,
    decided_routing_agreement,
    decoder_reference_tokens,
    routing_tie_margin,
    served_routing_gaps,
    serving_accuracy_score,
    teacher_forced_logits,
)
from tests.runners.test_deepseek_model import FAULTS

VOCAB = 6
TOKENS = 8  # AIA 1.3 Baseline's output_tokens


def _logits(firsts: list[int]) -> torch.Tensor:
    rows = torch.full((len(firsts), VOCAB), -1.0, dtype=torch.float64)
    rows[torch.arange(len(firsts)), torch.tensor(firsts)] = 1.0
    return rows


def test_the_margin_is_four_epsilons_of_the_dtype():
    assert ROUTING_TIE_EPS == 4
    assert routing_tie_margin(torch.bfloat16) == 2.0**-5
    assert routing_tie_margin(torch.float16) == 2.0**-8
    assert routing_tie_margin(torch.float32) == 2.0**-21


def test_a_disagreement_at_a_near_tied_routing_is_counted_apart_and_one_where_it_is_decided_is_judged():
    served = torch.tensor([[0, 1, 2, 3]])
    forced = lambda _i, _t: _logits([0, 2, 2, 2])  # noqa: E731 - the reference ranks 0, 2, 2, 2 first
    margin = routing_tie_margin(torch.bfloat16)
    tied_second = lambda _i, _t: torch.tensor([1.0, margin / 2, 1.0, 0.5])  # noqa: E731
    result = decided_routing_agreement(served, forced, tied_second, torch.bfloat16)
    # Position 1 (tied) is apart; position 3 (decided, token 3 where the reference says 2) is judged.
    assert result["value"] == pytest.approx(2 / 3)
    assert (result["decided_positions"], result["tied_positions"], result["agreement_where_tied"]) == (
        3,
        1,
        0.0,
    )
    # Exactly at the margin is decided; a gap just below it is a tie.
    at_margin = lambda _i, _t: torch.tensor([1.0, margin, 1.0, margin * (1 - 2**-20)])  # noqa: E731
    assert decided_routing_agreement(served, forced, at_margin, torch.bfloat16)["value"] == pytest.approx(
        2 / 3
    )
    # A model that does not route: every position judged.
    assert decided_routing_agreement(served, forced, None, torch.bfloat16)["value"] == 0.5


def test_nothing_decided_or_an_unjudgeable_row_is_no_evidence():
    served = torch.tensor([[0, 1]])
    forced = lambda _i, _t: _logits([0, 1])  # noqa: E731
    all_tied = lambda _i, _t: torch.zeros(2, dtype=torch.float64)  # noqa: E731
    assert decided_routing_agreement(served, forced, all_tied, torch.bfloat16)["value"] == 0.0
    foreign = torch.tensor([[0, VOCAB]])
    assert decided_routing_agreement(foreign, forced, None, torch.bfloat16)["value"] == 0.0
    short_gaps = lambda _i, _t: torch.ones(1, dtype=torch.float64)  # noqa: E731
    assert decided_routing_agreement(served, forced, short_gaps, torch.bfloat16)["value"] == 0.0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    entry = deepseek_tiny_model(Path(tmp_path_factory.mktemp("deepseek-routing")))
    return load_model(ModelSpec.from_dict(entry))


_CHALLENGES: dict[tuple[int, int, bool], tuple] = {}


def _challenge(loaded, index: int, quick: bool) -> tuple:
    """(workload, prompts, float64 reference decoder, its greedy tokens) of a challenge, drawn once per module run (the
    prompt draw runs the float64 reference over every candidate token)."""
    key = (id(loaded), index, quick)
    if key not in _CHALLENGES:
        challenge = hashlib.sha256(f"deepseek served {index}".encode()).hexdigest()
        workload = workload_for(loaded, challenge, quick=quick)
        prompts = workload.make_batch(range(workload.size), torch.device("cpu"), torch.float64)[0]
        f64 = float64_model(loaded, workload)
        _CHALLENGES[key] = (workload, prompts, f64, decoder_reference_tokens(f64, prompts, TOKENS))
    return _CHALLENGES[key]


def _score(loaded, module, index: int, dtype: str, *, quick: bool) -> dict:
    """The serving suite's accuracy-mode score of ``module`` serving TOKENS greedy tokens after every
    prompt of a challenge (bench/deepseek_served_accuracy.py's challenges)."""
    workload, prompts, f64, reference = _challenge(loaded, index, quick)
    vocab = loaded.config.vocab_size
    with torch.inference_mode():
        served = module.generate(prompts, TOKENS)
    return serving_accuracy_score(
        decoder=True,
        outputs=served,
        reference=reference,
        dtype_name=dtype,
        score=workload.score,
        teacher_forced=lambda i, t: teacher_forced_logits(f64, prompts[i : i + 1], t, vocab),
        routing_gaps=lambda i, t: served_routing_gaps(f64, prompts[i : i + 1], t, vocab),
    )


@pytest.mark.slow
def test_honest_bfloat16_runs_below_the_old_bar_pass_with_routing_ties_apart(tiny):
    """Challenges of quick prompts (4 x 12) where the teacher-forced agreement over every position falls
    below the bfloat16 bar on this host: every disagreement at a tied routing, so each passes with the
    ties apart. Which challenges fall below depends on the host's bfloat16 arithmetic (0, 8 and 13 at
    0.875, 0.875, 0.844 on the AMD EPYC of session 24; 7, 13 and 18 at 0.875, 0.844, 0.875 on an Intel
    Xeon with AVX512-BF16, session 28), so the first three below it are found, not named."""
    module = tiny.place(torch.device("cpu"), torch.bfloat16, free_bytes=None)
    below = []
    for index in range(32):
        result = _score(tiny, module, index, "bfloat16", quick=True)
        if result[TEACHER_FORCED_METRIC] < INFORMATIONAL_AGREEMENT["bfloat16"]:
            below.append((index, result))
        if len(below) == 3:
            break
    assert below, "no challenge fell below the teacher-forced bar: the case this test is for never arose"
    for index, result in below:
        assert result["metric"] == DECIDED_ROUTING_METRIC
        assert result["value"] >= INFORMATIONAL_AGREEMENT["bfloat16"] and result["meets_informational_bar"], (
            index,
            result,
        )
        routing = result["routing"]
        assert routing["tied_positions"] > 0 and routing["agreement_where_tied"] < 1.0, (index, routing)
        assert (
            routing["routing_tie_margin"] == 2.0**-5
            and "four machine epsilons" in routing["routing_tie_rule"]
        )


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_honest_runs_pass_on_several_challenges(tiny, dtype):
    """Quick prompts (the serving suite's in tests; the program's are 8 x 32, figures in aia-1.3.json)."""
    module = tiny.place(torch.device("cpu"), DTYPES[dtype], free_bytes=None)
    for index in (1, 2, 3):
        result = _score(tiny, module, index, dtype, quick=True)
        assert result["value"] >= INFORMATIONAL_AGREEMENT[dtype], (index, result)
        assert result["routing"]["decided_positions"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["shared_expert_dropped", "routing_ignores_the_group_limit"])
def test_a_planted_fault_still_fails_in_bfloat16(tiny, fault):
    broken = FAULTS[fault](tiny.config)
    broken.load_state_dict(tiny.module.state_dict())
    broken = broken.to(dtype=torch.bfloat16).eval()
    for index in (0, 1):
        result = _score(tiny, broken, index, "bfloat16", quick=True)
        assert result["value"] < 0.8, (index, result)  # far below the bfloat16 bar (0.90)
        assert not result["meets_informational_bar"] and result["routing"]["decided_positions"] > 0
