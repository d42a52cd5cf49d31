"""The campaign state machine: one table, owned by runs. Every state change of a campaign goes
through `apps.runs.services.campaigns.campaign_transition`, which refuses a move the table does not
list; every set of states a view, selector or command needs is derived from the table here.

    draft ──► queued ──► running ──► evaluating ──► awaiting_review ──► approved
      │         │   ╲      │  ▲ ╲ (re-run)                      ╲
      │         │    ╲     │  │  ▼                                ► rejected
      └─────────┴─────►  cancelled   failed ──(re-run)──► running

A campaign is created queued (draft is the model's default, never left by the platform on its own);
a job claimed or reporting progress moves a queued campaign to running; when every job has ended
it goes to evaluating or, for missing evidence, to failed; a re-run of a failed job takes it back
to running; the evaluation leaves it awaiting review; one reviewer's rejection or enough approvals
(the certificate issue) end it.
"""

from __future__ import annotations

from apps.runs.models import Campaign, CampaignState

S = CampaignState

# from-state -> the states it may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.QUEUED, S.CANCELLED}),
    S.QUEUED: frozenset({S.RUNNING, S.EVALUATING, S.FAILED, S.CANCELLED}),
    # running -> running: a failed job re-run while the others still run (re-opens the campaign's end).
    S.RUNNING: frozenset({S.RUNNING, S.EVALUATING, S.FAILED, S.CANCELLED}),
    S.EVALUATING: frozenset({S.AWAITING_REVIEW}),
    S.AWAITING_REVIEW: frozenset({S.APPROVED, S.REJECTED}),
    S.FAILED: frozenset({S.RUNNING}),  # only by a re-run of a failed job
    S.APPROVED: frozenset(),
    S.REJECTED: frozenset(),
    S.CANCELLED: frozenset(),
}


def transition_allowed(from_state: str, to_state: str) -> bool:
    return to_state in TRANSITIONS.get(from_state, frozenset())


def states_moving_to(to_state: str) -> frozenset[str]:
    """The states from which a campaign may move to `to_state`."""
    return frozenset(state for state, targets in TRANSITIONS.items() if to_state in targets)


# Derived sets; nothing else declares a set of campaign states.
FINAL_STATES = frozenset(state for state, targets in TRANSITIONS.items() if not targets)
# Ended: final, or failed (which only a person's re-run re-opens).
ENDED_STATES = FINAL_STATES | {S.FAILED}
# Open: still holds a runner's queue or a reviewer's attention (the per-target limit counts these).
OPEN_STATES = frozenset(TRANSITIONS) - ENDED_STATES
# Waiting for a reviewer's decision: the states an approval or a rejection leaves.
AWAITING_DECISION_STATES = states_moving_to(S.APPROVED) & states_moving_to(S.REJECTED)
# In progress: the platform moves it on by itself (jobs, then the evaluation); progress pages refresh.
IN_PROGRESS_STATES = OPEN_STATES - AWAITING_DECISION_STATES
# The runs are over (evidence complete or the campaign ended): `certify` stops waiting here.
RUNS_OVER_STATES = frozenset(TRANSITIONS) - IN_PROGRESS_STATES
# Ended with no reviewer's verdict (failed or cancelled): a surveillance re-test that ends so concludes as failed.
ENDED_WITHOUT_VERDICT_STATES = ENDED_STATES - frozenset().union(
    *(TRANSITIONS[state] for state in AWAITING_DECISION_STATES)
)
CANCELLABLE_STATES = states_moving_to(S.CANCELLED)
# A failed job may be re-run while its campaign can go (back) to running.
RERUNNABLE_STATES = states_moving_to(S.RUNNING)


def campaign_can(campaign: Campaign, to_state: str) -> bool:
    """Whether the table lets this campaign move to `to_state` now (the views' predicates)."""
    return transition_allowed(campaign.state, to_state)


def campaign_can_cancel(campaign: Campaign) -> bool:
    return campaign_can(campaign, S.CANCELLED)


def campaign_can_rerun_jobs(campaign: Campaign) -> bool:
    return campaign_can(campaign, S.RUNNING)


def campaign_awaits_review(campaign: Campaign) -> bool:
    return campaign.state in AWAITING_DECISION_STATES


def campaign_in_progress(campaign: Campaign) -> bool:
    return campaign.state in IN_PROGRESS_STATES
