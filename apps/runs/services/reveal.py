"""Commit, then reveal: the platform re-decides a random sample of the runner's verdicts itself.

A result document commits to a digest of every output its runner judged (runners/commitment.py).
When the job is dispatched under its challenge the platform draws a secret key (`reveal_plan_draw`,
kept in RevealPlan, never in the spec or any message to the runner) that orders every output id the
runner could commit; a platform task computes, while the runner runs, the float64 references of the
outputs that order predicts will be drawn, and for a conformance job the order and price of every
planned output, which the draw then reads instead of computing them (`reveal_prepare`). Ingestion
checks that the commitment covers exactly the judged outputs, stores the document, and then takes the
sample (`reveal_draw`):
the committed outputs in the key's order, each that fits the budgets, until the level's size. The
order is independent of what the runner commits (it cannot know the key), so the sample is uniform
over the committed outputs and the runner could not know which outputs would be asked for when it
signed. A job without a plan for its current challenge and spec draws with fresh randomness at
ingestion, as before. The request waits until none of the campaign's jobs is still queued or running
without its evidence (a runner runs its queue in order: it waited behind them anyway), then the
campaign's requests go to the target's queue together as `runners.reveal_many`
(`reveal_requests_publish`); the runner answers them in one signed message with the raw outputs
(safetensors bytes; `runners.reveal` answers one request alone, as before session 32). For each
output `reveal_receive_many` checks its digest against the commitment, recomputes the float64 reference
from the job's challenge with the runners' own catalog (runners/revealed.py), judges the output
with the catalog's tolerance and compares that verdict with the runner's.

The job waits in `running` (its document stored, progress 1.0) until the reveal is settled:

- verified: the job succeeds;
- mismatch (a digest that is not the committed one, a missing output, or a server verdict that
  differs from the runner's): a product integrity failure. Where the level has the criterion
  `integrity` / `reveal` (AIA 1.2) the job succeeds and that blocker fails the campaign in front of
  the reviewer; elsewhere the evidence is rejected and the job fails;
- no answer by the deadline (`reveals_expire`, run by the stuck-job sweep): the job fails as a
  timeout, the reveal is recorded as expired.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Case, IntegerField, OuterRef, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.audit.services import AuditEntry, audit_record_many
from apps.runs.models import (
    Campaign,
    ErrorClass,
    Job,
    JobState,
    OutputReveal,
    ResultDocument,
    RevealPlan,
    RevealPlanState,
    RevealState,
)
from apps.runs.services.coverage import listed
from certification.recorded_text import say
from runners.commitment import (
    REVEAL_MAX_BYTES,
    RevealError,
    conformance_output_id,
    model_output_id,
    named_dtype,
    output_bytes,
    output_digest,
    performance_output_id,
    reveal_unpack,
)
from runners.spec import attempt_tag
from runners.suites import COMMITTING_SUITES

if TYPE_CHECKING:
    from runners.signing import RunnerIdentity

logger = logging.getLogger(__name__)
# Intra-op threads for the platform's float64 references and comparisons of a reveal. A platform
# worker is a prefork pool (one process per core): torch's default of one OpenMP thread per core in
# every process oversubscribes the cores whenever two tasks run, and OpenMP's barriers then cost more
# than the arithmetic (bench/commit_reveal.py: the comparison of one 0.5 M-element output took 1.8 s
# with 2 threads and 0.4 s with 1 on a loaded 2-core host). One count for every reference also keeps them
# reproducible: a float64 GEMM's last bits can depend on how the library splits K between threads (an
# AVX-512 host gave matmul/float32/long_reduction references that differed between 1 and 2 threads).
REVEAL_TORCH_THREADS = 1


@contextmanager
def _reveal_threads() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(REVEAL_TORCH_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def committed_outputs(document: dict[str, Any]) -> list[dict[str, Any]]:
    section = document.get("commitment")
    outputs = section.get("outputs") if isinstance(section, dict) else None
    return [entry for entry in outputs or [] if isinstance(entry, dict)]


def _judged_outputs(document: dict[str, Any]) -> dict[str, list[Any] | None]:
    """Every output id the document's own verdicts rest on, with its shape where the document says it."""
    suite = document.get("suite")
    expected: dict[str, list[Any] | None] = {}
    cases = [c for c in document.get("cases") or [] if isinstance(c, dict)]
    if suite == "conformance":
        for case in cases:
            if case.get("status") in ("pass", "fail"):
                key = conformance_output_id(
                    str(case.get("kernel")), str(case.get("dtype")), str(case.get("case"))
                )
                expected[key] = case.get("shape")
        return expected
    section = (document.get("integrity") or {}).get("output_consistency") or {}
    items = [
        i for i in (section.get("items") if isinstance(section, dict) else None) or [] if isinstance(i, dict)
    ]
    if suite == "performance":
        for part in items:
            for item in part.get("benchmarks") or []:
                if not isinstance(item, dict):
                    continue
                name, dtype = str(item.get("benchmark")), str(item.get("dtype"))
                expected[performance_output_id(name, dtype, "accuracy")] = None
                for round_index in item.get("rounds") or []:
                    expected[performance_output_id(name, dtype, f"round{round_index}")] = None
    elif suite == "model":
        for case in cases:
            if case.get("status") in ("pass", "fail"):
                expected[model_output_id(str(case.get("kernel")), str(case.get("dtype")), "accuracy")] = None
        for item in items:
            for label in item.get("sample_ids") or []:
                expected[model_output_id(str(item.get("model")), str(item.get("dtype")), str(label))] = None
    elif suite == "serving":
        from runners.served_outputs import serving_judged_outputs

        expected.update(dict.fromkeys(serving_judged_outputs(document)))
    return expected


def commitment_problems(*, document: dict[str, Any]) -> list[str]:
    """How the document's commitment fails to cover exactly the outputs its verdicts rest on."""
    if not isinstance(document.get("commitment"), dict):
        return [say("commitment.none")]
    entries = committed_outputs(document)
    ids = [str(entry.get("id")) for entry in entries]
    expected = _judged_outputs(document)
    problems: list[str] = []
    counts = Counter(ids)  # one pass (ids.count per id was quadratic: 280,000 steps for 529 cases)
    twice = sorted(i for i, n in counts.items() if n > 1)
    missing = sorted(set(expected) - counts.keys())
    extra = sorted(counts.keys() - set(expected))
    shapes = sorted(
        str(entry.get("id"))
        for entry in entries
        if expected.get(str(entry.get("id"))) is not None
        and entry.get("shape") != expected[str(entry.get("id"))]
    )
    dtypes = sorted(str(entry.get("id")) for entry in entries if named_dtype(entry.get("dtype")) is None)
    if missing:
        problems.append(listed("commitment.missing", missing, count=len(missing)))
    if extra:
        problems.append(listed("commitment.extra", extra, count=len(extra)))
    if twice:
        problems.append(listed("commitment.twice", twice, count=len(twice)))
    if shapes:
        problems.append(listed("commitment.shapes", shapes, count=len(shapes)))
    if dtypes:
        problems.append(listed("commitment.dtypes", dtypes, count=len(dtypes)))
    return problems


def level_judges_reveal(job: Job) -> bool:
    """Whether the campaign's level has the blocker that reads the reveal (AIA 1.2 `integrity`/`reveal`)."""
    level = job.campaign.program.level(job.campaign.level) or {}
    return any(
        c.get("kind") == "integrity" and (c.get("params") or {}).get("check") == "reveal"
        for c in level.get("criteria", [])
    )


def queue_ahead_seconds() -> Coalesce:
    """A Job annotation: the hard limits, in seconds, of the other jobs queued or running on the job's
    target queue without evidence yet, which a reveal request published now waits behind (a runner
    runs one task at a time, in order). Ingestion reads it with the job (`reveal_queue_ahead_s`), in
    the statement that reads the job: the reveal's draw then needs no statement of its own for it."""
    from apps.runs.services.campaigns import SUITE_TIME_LIMITS

    limits = [When(suite=suite, then=Value(seconds)) for suite, seconds in SUITE_TIME_LIMITS.items()]
    ahead = (
        Job.objects.filter(
            campaign__target_id=OuterRef("campaign__target_id"),
            state__in=[JobState.QUEUED, JobState.RUNNING],
            document__isnull=True,
        )
        .exclude(pk=OuterRef("pk"))
        .order_by()
        .values("campaign__target_id")
        .annotate(total=Sum(Case(*limits, default=Value(0), output_field=IntegerField())))
        .values("total")
    )
    return Coalesce(Subquery(ahead, output_field=IntegerField()), Value(0))


def _answer_window(job: Job) -> timedelta:
    """How long the runner has: the answer time, plus the hard limits of the jobs queued before the
    request on the same target queue (`queue_ahead_seconds`, read with the job where it was annotated,
    else read now)."""
    ahead = getattr(job, "reveal_queue_ahead_s", None)
    if ahead is None:
        ahead = (
            Job.objects.filter(pk=job.pk)
            .annotate(ahead=queue_ahead_seconds())
            .values_list("ahead", flat=True)
            .first()
        )
    return timedelta(seconds=settings.REVEAL_ANSWER_S + int(ahead or 0))


# The outputs whose references the platform computes ahead, per sampled output: the draw's `size`
# outputs in the key's order plus as many spares, for outputs the runner does not commit (a case its
# device declares unsupported); an output past the predicted ones is judged on a reference computed
# when the reveal arrives (recorded as "inline").
PREDICTED_PER_SAMPLE = 2


def _spec_digest(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def _sample_rank(sample_key: str, output_id: str) -> bytes:
    """The output's place in the draw: HMAC-SHA256 under the plan's secret key (a pseudorandom
    permutation of every possible output id, fixed before the runner commits, unknown to it)."""
    return hmac.new(bytes.fromhex(sample_key), output_id.encode(), hashlib.sha256).digest()


def _stored_plan(job: Job) -> RevealPlan | None:
    """The job's plan row: the one loaded with the job (`select_related("reveal_plan")`), else read."""
    if Job.reveal_plan.is_cached(job):
        return getattr(job, "reveal_plan", None)  # None: loaded, and there is none
    return RevealPlan.objects.filter(job_id=job.pk).first()


def _current_plan(job: Job) -> RevealPlan | None:
    """The job's reveal plan when it was drawn for the job's current challenge and spec, else None."""
    plan = _stored_plan(job)
    if plan is None or plan.challenge != job.challenge or plan.spec_sha256 != _spec_digest(job.spec):
        return None
    if str(job.spec.get("challenge")) != job.challenge:
        return None
    return plan


def reveal_plan_draw(*, job: Job) -> RevealPlan | None:
    """At dispatch: draw the job's secret sample key for its current challenge (what the key predicts is
    computed off the path by `reveal_prepare`: `_predictions`). Replaces the plan of an earlier attempt;
    None when the job's level draws no reveal. Nothing drawn here goes into the job's spec."""
    return reveal_plans_draw(jobs=[job])[job.pk]


def _plan_fields(job: Job) -> dict[str, Any] | None:
    """A fresh plan's fields for the job's current attempt (a new secret key), or None when its level
    draws no reveal for the job's suite. Only the key is drawn here, on the campaign's path: which outputs
    it predicts, and the price and place of every planned output in its order, are computed with the
    references off the path (`reveal_prepare`; issue 13: ordering and pricing a Baseline conformance
    plan's 529 outputs at dispatch, and again at the draw, was a fifth of the round's cost)."""
    from apps.runs.services.programs import program_reveal_policy

    policy = program_reveal_policy(program=job.campaign.program, level=job.campaign.level)
    if policy.size <= 0 or policy.rule != "uniform" or job.suite not in COMMITTING_SUITES:
        return None
    return {
        "challenge": job.challenge,
        "spec_sha256": _spec_digest(job.spec),
        "sample_key": secrets.token_hex(32),
        "state": RevealPlanState.PREPARING,
        "predicted": [],
        "draw_order": [],
        "references": "",
        "reference_numbers": {},
        "problems": [],
        "prepared_at": None,
        "prepare_seconds": None,
    }


def _predictions(job: Job, sample_key: str) -> tuple[list[str], list[list[Any]]]:
    """What a plan predicts for its key, computed off the campaign's path (`reveal_prepare`): the reference
    keys whose references are computed ahead (runners.revealed.planned_output_ids, in the key's order,
    within the level's recomputation budget; for a performance job, every benchmark the plan names whose
    outputs the draw could take: which of its timed rounds the runner commits is the device's), and for
    a conformance job the draw order: every planned case's output in the key's order, with its cost and
    why the platform could not judge it (None when it can), which is all the draw at ingestion needs of
    an output the document commits (both depend on the spec and challenge alone)."""
    from apps.runs.services.programs import program_reveal_policy
    from runners.revealed import (
        RevealContext,
        judgeable,
        planned_cost,
        planned_output_ids,
        planned_performance,
        reference_cost,
    )

    policy = program_reveal_policy(program=job.campaign.program, level=job.campaign.level)
    if job.suite == "performance":  # every planned benchmark an output of which the draw could take
        costs = {key: planned_cost(bench) for key, bench in planned_performance(job.spec).items()}
        keys = sorted(
            (key for key, cost in costs.items() if cost <= policy.budget_elements),
            key=lambda key: _sample_rank(sample_key, key),
        )
        return keys, []
    keys = planned_output_ids(job.spec, job.suite)
    if job.suite != "conformance":
        return keys, []
    context = RevealContext({}, job.spec)
    priced: list[tuple[str, int, str | None]] = [
        (output_id, reference_cost(context, output_id), judgeable(context, output_id))
        for output_id in sorted(keys, key=lambda i: _sample_rank(sample_key, i))
    ]
    predicted: list[str] = []
    spend = policy.budget_elements
    for output_id, cost, why in priced:
        if len(predicted) == policy.size * PREDICTED_PER_SAMPLE:
            break
        if why is None and cost <= spend:
            predicted.append(output_id)
            spend -= cost
    return predicted, [list(row) for row in priced]


def _plan_replaced(plan: RevealPlan, fields: dict[str, Any], stale: list[str]) -> RevealPlan:
    """An earlier attempt's plan replaced by this draw's `fields` in one UPDATE; the name of its
    references file, if any, is added to `stale` (deleted once the draw is done)."""
    if plan.references:
        stale.append(str(plan.references.name))
    for name, value in fields.items():
        setattr(plan, name, value)
    plan.save(update_fields=list(fields))
    return plan


def reveal_plans_draw(*, jobs: list[Job]) -> dict[int, RevealPlan | None]:
    """`reveal_plan_draw` for the jobs dispatched together (a campaign's, at its submission), by job id:
    the first attempts' plans in one INSERT, the plans of jobs whose level draws none removed in one
    DELETE, an earlier attempt's plan replaced in one UPDATE each (issue 13: a campaign's dispatch wrote
    each job's plan in a transaction of its own)."""
    drawn: dict[int, RevealPlan | None] = {}
    fresh: list[RevealPlan] = []
    stale: list[str] = []
    fields_of = {job.pk: _plan_fields(job) for job in jobs}
    cleared = [job for job in jobs if fields_of[job.pk] is None]
    if cleared:
        RevealPlan.objects.filter(job_id__in=[job.pk for job in cleared]).delete()
        for job in cleared:
            Job.reveal_plan.related.set_cached_value(job, None)
            drawn[job.pk] = None
    for job in jobs:
        fields = fields_of[job.pk]
        if fields is None:
            continue
        plan = _stored_plan(job)
        if plan is None:  # the job's first attempt
            fresh.append(RevealPlan(job=job, **fields))
            continue
        drawn[job.pk] = _plan_replaced(plan, fields, stale)
    if fresh:
        try:
            with transaction.atomic():
                RevealPlan.objects.bulk_create(fresh)
        except IntegrityError:  # drawn meanwhile by another dispatch of a job: this draw replaces it
            for plan in fresh:
                existing = RevealPlan.objects.filter(job_id=plan.job_id).first()
                if existing is None:
                    plan.save()
                    drawn[plan.job_id] = plan
                    continue
                drawn[plan.job_id] = _plan_replaced(existing, fields_of[plan.job_id] or {}, stale)
        else:
            for plan in fresh:
                drawn[plan.job_id] = plan
        for job in jobs:
            if drawn.get(job.pk) is not None:
                job.reveal_plan = drawn[job.pk]
    for name in stale:
        RevealPlan._meta.get_field("references").storage.delete(name)
    return drawn


def reveal_prepare(*, job_id: int, challenge: str) -> str:
    """The platform task run while the runner runs: compute the references of the plan's predicted
    outputs from the job's spec and challenge (the same code judging runs inline) and store them.
    Returns the plan's state, or "stale" when the plan is gone or was drawn for another attempt."""
    from django.core.files.base import ContentFile
    from safetensors.torch import save

    from runners.revealed import NotJudgeable, RevealContext, reference_parts

    started = time.perf_counter()
    plan = (
        RevealPlan.objects.select_related("job__model", "job__campaign__program")
        .filter(job_id=job_id, challenge=challenge, state=RevealPlanState.PREPARING)
        .first()
    )
    if plan is None or _current_plan(plan.job) is None:
        return "stale"
    context = RevealContext({}, plan.job.spec, weights=_platform_weights(plan.job))
    tensors: dict[str, Any] = {}
    numbers: dict[str, dict[str, float]] = {}
    problems: list[str] = []
    predicted: list[str] = []
    order: list[list[Any]] = []
    state = RevealPlanState.READY
    try:
        predicted, order = _predictions(plan.job, plan.sample_key)
        with _reveal_threads():
            for key in predicted:
                try:
                    parts = reference_parts(context, key)
                except NotJudgeable as exc:
                    problems.append(f"{key}: {exc}")
                    continue
                for name, value in parts.items():
                    if hasattr(value, "contiguous"):
                        tensors[f"{key}#{name}"] = value.contiguous()
                    else:
                        numbers.setdefault(key, {})[name] = float(value)
        blob = save(tensors) if tensors else b""
    except Exception as exc:  # the references are then computed when the reveal arrives, as before
        logger.exception("could not precompute the reveal references of job %s", job_id)
        state, blob, numbers, predicted, order = RevealPlanState.FAILED, b"", {}, [], []
        problems.append(say("reveal.precomputation_failed", error=f"{type(exc).__name__}: {exc}"[:480]))
    # A file in the media storage (a row would carry megabytes through every read of the plan), under
    # a random name: the references reveal the sample, so their name must not be guessable.
    name = ""
    if blob:
        name = plan.references.storage.save(
            f"reveal-plans/{secrets.token_hex(16)}.safetensors", ContentFile(blob)
        )
    # Only the plan these predictions were made for: a redraw (a new key) makes them another plan's.
    if not RevealPlan.objects.filter(
        pk=plan.pk, challenge=challenge, sample_key=plan.sample_key, state=RevealPlanState.PREPARING
    ).update(
        state=state,
        predicted=predicted,
        draw_order=order,
        references=name,
        reference_numbers=numbers,
        problems=problems[:200],
        prepared_at=timezone.now(),
        prepare_seconds=time.perf_counter() - started,
    ):
        if name:  # redrawn or prepared meanwhile: this work is unused
            plan.references.storage.delete(name)
        return "stale"
    return state


def reveal_prepare_dispatch(*, job: Job) -> None:
    """Draw the job's reveal plan and start computing its references on the platform queue (called
    when the job is sent to its runner; in the tests' in-process mode, computed at once)."""
    reveal_plans_prepare_dispatch(jobs=[job])


def reveal_prepare_many(*, plans: list[tuple[int, str]]) -> list[str]:
    """`reveal_prepare` for each (job id, challenge) in turn: the plans of the jobs dispatched together."""
    return [reveal_prepare(job_id=job_id, challenge=challenge) for job_id, challenge in plans]


def reveal_plans_prepare_dispatch(*, jobs: list[Job]) -> None:
    """Draw the plans of the jobs dispatched together (`reveal_plans_draw`) and queue their references
    on the platform queue in one task, computed in the order the jobs were dispatched, which is the
    order their runner runs them (in the tests' in-process mode, computed at once). One publish for a
    campaign rather than one a job (issue 13: each was a round trip to the broker on the campaign's
    path); the references of every job are ready long before its document (a job's are a fraction of a
    second of platform CPU, and the runner runs the jobs before it first)."""
    drawn = reveal_plans_draw(jobs=jobs)
    plans = [(job.pk, plan.challenge) for job in jobs if (plan := drawn.get(job.pk)) is not None]
    if not plans:  # no job's level draws a reveal
        return
    if settings.CELERY_TASK_ALWAYS_EAGER:
        reveal_prepare_many(plans=plans)
        return
    from apps.runs.dispatch import PLATFORM_QUEUE
    from certification.celery import app

    app.send_task("runs.reveal_prepare_jobs", args=[[list(p) for p in plans]], queue=PLATFORM_QUEUE)


class StoredReferences(Mapping[str, dict[str, Any]]):
    """The references a plan holds, by reference key (`runners.revealed.reference_key`), each read from
    the plan's file only when judging asks for it: a reveal judges a handful of outputs, while the file
    holds every output the draw could take (a Baseline performance plan's is 5 MB, and reading and
    parsing it whole took 3 ms of each answer's path: issue 13). Where the storage has no local path the
    file is read whole, as before."""

    def __init__(self, numbers: dict[str, dict[str, float]], references: Any) -> None:
        from safetensors import safe_open
        from safetensors.torch import load

        self._numbers = numbers
        self._parts: dict[str, dict[str, Any]] = {}
        self._file: Any = None
        self._loaded: dict[str, Any] = {}
        names: list[str] = []
        if references:
            try:
                path = references.path
            except (NotImplementedError, ValueError):  # storage without local paths
                with references.open("rb") as handle:
                    self._loaded = load(handle.read())
                names = list(self._loaded)
            else:
                self._file = safe_open(path, framework="pt")
                names = list(self._file.keys())
        self._tensors: dict[str, list[tuple[str, str]]] = {}
        for name in names:
            key, _, part = name.rpartition("#")
            self._tensors.setdefault(key, []).append((part, name))
        self._keys = list(dict.fromkeys([*numbers, *self._tensors]))

    def __getitem__(self, key: str) -> dict[str, Any]:
        if key not in self._parts:
            if key not in self._numbers and key not in self._tensors:
                raise KeyError(key)
            parts: dict[str, Any] = dict(self._numbers.get(key) or {})
            for part, name in self._tensors.get(key, []):
                parts[part] = self._loaded[name] if self._file is None else self._file.get_tensor(name)
            self._parts[key] = parts
        return self._parts[key]

    def __contains__(self, key: object) -> bool:
        return key in self._numbers or key in self._tensors

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def _precomputed(job: Job) -> tuple[Mapping[str, dict[str, Any]], str]:
    """The references the plan holds for the job's current attempt, by reference key, and the plan's
    state at judging ("none" without a plan for this challenge and spec)."""
    plan = _current_plan(job)
    if plan is None:
        return {}, "none"
    if plan.state != RevealPlanState.READY:
        return {}, plan.state  # still preparing (the race) or failed: judged inline
    return StoredReferences(plan.reference_numbers, plan.references), plan.state


def reveal_draw(
    *, stored: ResultDocument, document: dict[str, Any], job: Job, size: int, rule: str, budget: int
) -> tuple[OutputReveal, dict[str, Any]]:
    """Draw the sample for a stored document (call it after the document row is saved, in the same
    transaction) and return it with the facts of the request, which the acceptance's audit event
    records (its "reveal" entry: one event for the document and its sample): uniform without replacement over the committed outputs (rule "uniform"), taking
    each draw that still fits the reveal's byte budget and the platform's recomputation budget
    (`budget`, input elements; runners.revealed.reference_cost), until `size` are drawn. Every output
    that fits the budgets on its own can be drawn; those that cannot (or that the platform cannot
    judge) are listed as excluded, with the reason, for the reviewer."""
    from runners.revealed import RevealContext, judgeable, reference_cost, reference_key

    started = time.perf_counter()
    if rule != "uniform":
        raise ValueError(f"unknown reveal rule {rule!r}")
    context = RevealContext(document, job.spec, weights=_platform_weights(job))
    entries = committed_outputs(document)
    excluded, drawable = [], []
    plan = _current_plan(job)
    # The plan's draw order, where its preparation has priced it (a conformance plan: every planned
    # case's output, by its place in the key's order); otherwise every output is priced now.
    place: dict[str, int] = {}
    priced: dict[str, tuple[str | None, int]] = {}
    for index, (output_id, cost, why) in enumerate(plan.draw_order if plan is not None else []):
        place[output_id] = index
        priced[output_id] = (why, cost)

    def price(output_id: str) -> tuple[str | None, int]:
        # A benchmark's outputs (its accuracy call and timed rounds) share its judgeability and cost,
        # both read from its measurement: priced once per benchmark (77 outputs, 19 benchmarks).
        key = reference_key(output_id) if output_id.startswith("performance/") else output_id
        if key not in priced:
            priced[key] = (judgeable(context, output_id), reference_cost(context, output_id))
        return priced[key]

    with _reveal_threads():  # each output's id and size read once (723 outputs in a Baseline campaign)
        costed = [
            (output_id, output_bytes(entry), *price(output_id))
            for entry in entries
            if (output_id := str(entry.get("id")))
        ]
    for output_id, size_bytes, why, cost in costed:
        if why is None and size_bytes > REVEAL_MAX_BYTES:
            why = say("reveal.too_many_bytes", bytes=size_bytes)
        if why is None and cost > budget:
            why = say("reveal.over_budget", cost=cost, budget=budget)
        if why:
            excluded.append({"id": output_id, "reason": why})
        else:
            drawable.append((output_id, size_bytes, cost))
    if plan is not None and all(d[0] in place for d in drawable):  # ordered off the path
        order = sorted(drawable, key=lambda d: place[d[0]])
    elif plan is not None:  # the key drawn at dispatch, which the runner never saw
        order = sorted(drawable, key=lambda d: _sample_rank(plan.sample_key, d[0]))
    else:  # no plan for this attempt: fresh randomness now, after the commitment is stored
        order = secrets.SystemRandom().sample(drawable, len(drawable))
    requested: list[str] = []
    room, spend = REVEAL_MAX_BYTES, budget
    for output_id, size_bytes, cost in order:
        if len(requested) == size:
            break
        if size_bytes <= room and cost <= spend:
            requested.append(output_id)
            room -= size_bytes
            spend -= cost
    now = timezone.now()
    reveal = OutputReveal.objects.create(
        document=stored,
        job=job,
        state=RevealState.PENDING if requested else RevealState.VERIFIED,
        rule=rule,
        sample_size=size,
        committed=len(entries),
        requested=requested,
        judging={
            **judging_excerpt(document, requested),
            "criterion": level_judges_reveal(job),
            "bytes": REVEAL_MAX_BYTES - room,  # what the answer's outputs take (requests are grouped by it)
        }
        if requested
        else {},
        excluded=excluded[:200],
        deadline_at=now + _answer_window(job),
        answered_at=None if requested else now,
        server_seconds=time.perf_counter() - started,
    )
    facts = {
        "reveal_id": reveal.pk,
        "requested": len(requested),
        "committed": len(entries),
        "excluded": len(excluded),
        "order": "dispatch key" if plan is not None else "drawn at ingestion",
    }
    return reveal, facts


def judging_excerpt(document: dict[str, Any], requested: list[str]) -> dict[str, Any]:
    """What judging the answer reads, kept on the reveal row at the draw (the document is parsed then):
    the committed digest of each requested output, and the document reduced to what the judges read of
    those outputs (runners.revealed.judged_excerpt). A conformance document is hundreds of kilobytes
    whose every case the answer re-read before (issue 13)."""
    from runners.revealed import judged_excerpt

    wanted = set(requested)
    digests = {i: e.get("digest") for e in committed_outputs(document) if (i := str(e.get("id"))) in wanted}
    return {
        "digests": {i: digests.get(i) for i in requested},
        "document": judged_excerpt(document, requested),
    }


def reveal_request_build(reveal: OutputReveal) -> dict[str, Any]:
    """The request for one reveal (`runners.reveal`; an item of `runners.reveal_many`'s)."""
    return _request_item(reveal.pk, reveal.job_id, reveal.requested, reveal.job.challenge)


def _request_item(reveal_id: int, job_id: int, requested: list[str], challenge: str) -> dict[str, Any]:
    """What the runner receives of one reveal: which attempt's outputs, which ones, how many bytes at most."""
    return {
        "reveal_id": reveal_id,
        "job_id": str(job_id),
        "attempt": attempt_tag(challenge),
        "outputs": list(requested),
        "max_bytes": REVEAL_MAX_BYTES,
    }


# The most reveals one request names and one answer carries: a campaign's jobs are a handful, and a
# request over more goes out as several. Together their outputs take at most what one reveal's may
# (REVEAL_MAX_BYTES), so an answer is never larger than before requests were grouped.
REVEALS_PER_REQUEST = 16


def _request_groups(rows: list[tuple[Any, ...]]) -> list[list[dict[str, Any]]]:
    """The requests of the claimed reveals (id, job id, requested, challenge, bytes, runner), grouped by
    the runner that committed them (each answers only for its own outputs) and then by size."""
    groups: list[list[dict[str, Any]]] = []
    by_runner: dict[int, list[tuple[Any, ...]]] = {}
    for row in sorted(rows, key=lambda r: r[1]):  # in the jobs' order, the order the runner ran them
        by_runner.setdefault(row[5], []).append(row)
    for runner_rows in by_runner.values():
        group: list[dict[str, Any]] = []
        room = REVEAL_MAX_BYTES
        for reveal_id, job_id, requested, challenge, size, _ in runner_rows:
            size = REVEAL_MAX_BYTES if size is None else int(size)  # unknown: a request of its own
            if group and (len(group) == REVEALS_PER_REQUEST or size > room):
                groups.append(group)
                group, room = [], REVEAL_MAX_BYTES
            group.append(_request_item(reveal_id, job_id, requested, challenge))
            room -= size
        groups.append(group)
    return groups


def reveal_requests_publish(*, campaign_id: int, queue: str | None = None) -> int:
    """Publish the requests of the campaign's drawn reveals that wait, once none of its jobs is still
    queued or running without its evidence (`reveal_requests_claim`); returns how many reveals went out.

    A runner runs its queue's tasks one at a time, in order, and a campaign's jobs are queued together:
    a request published at a job's ingestion waited behind the campaign's other jobs anyway. Published
    once the last of them has sent its evidence, the campaign's reveals go in one request
    (`runners.reveal_many`) and come back in one signed answer (`reveal_receive_many`): one publish,
    one signature, one read, one audit statement and one completion check a campaign, not one a job
    (issue 13: those were most of the round's cost on the campaign's path). Called once a document's
    ingestion commits, when a job fails, and by the stuck-job sweep (`reveals_publish_waiting`)."""
    requests = reveal_requests_claim(campaign_id=campaign_id)
    count = sum(len(request["reveals"]) for request in requests)
    if not requests:
        return 0
    if settings.CELERY_TASK_ALWAYS_EAGER:
        for request in requests:
            _reveals_in_process(request)
        return count
    if queue is None:
        campaign = Campaign.objects.select_related("target__vendor").only(
            "target__slug", "target__vendor__slug"
        )
        queue = campaign.get(pk=campaign_id).target.queue
    from certification.celery import app, embedded_broker_ready

    embedded_broker_ready()
    expires = timezone.now() + timedelta(seconds=settings.REVEAL_ANSWER_S)
    for request in requests:
        app.send_task(
            "runners.reveal_many",
            args=[request],
            queue=queue,
            expires=expires,
            argsrepr=f"reveals {[item['reveal_id'] for item in request['reveals']]}",
        )
    return count


def reveal_requests_claim(*, campaign_id: int) -> list[dict[str, Any]]:
    """Claim the campaign's drawn reveals that wait (`published_at`), if none of its jobs is still
    queued or running without its evidence, and return their grouped requests (`runners.reveal_many`'s
    argument: {"reveals": [...], "max_bytes"}); none otherwise.

    One statement claims them and extends each deadline to at least the answer time from now: of two
    calls at once (two ingestions committing together), the one whose statement runs after both
    commits sees every document, and each reveal is claimed once."""
    now = timezone.now()
    reveals, jobs, documents = OutputReveal._meta.db_table, Job._meta.db_table, ResultDocument._meta.db_table
    # The tables' and columns' names are the models' own; every value is a parameter.
    sql = (
        f"UPDATE {reveals} r SET published_at = %s, deadline_at = GREATEST(r.deadline_at, %s) "  # noqa: S608
        f"FROM {jobs} j, {documents} d "
        "WHERE r.job_id = j.id AND d.id = r.document_id AND j.campaign_id = %s "
        "AND r.state = %s AND r.published_at IS NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {jobs} o WHERE o.campaign_id = %s AND o.state IN (%s, %s) "
        f"AND NOT EXISTS (SELECT 1 FROM {documents} e WHERE e.job_id = o.id)) "
        "RETURNING r.id, r.job_id, r.requested, j.challenge, (r.judging ->> 'bytes')::bigint, d.runner_id"
    )
    params = [
        now,
        now + timedelta(seconds=settings.REVEAL_ANSWER_S),
        campaign_id,
        RevealState.PENDING.value,
        campaign_id,
        JobState.QUEUED.value,
        JobState.RUNNING.value,
    ]
    with transaction.get_connection().cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    # Django's PostgreSQL backend reads jsonb as text (its JSONField parses it); a driver may parse it.
    rows = [(r[0], r[1], json.loads(r[2]) if isinstance(r[2], str) else r[2], *r[3:]) for r in rows]
    return [{"reveals": group, "max_bytes": REVEAL_MAX_BYTES} for group in _request_groups(rows)]


def reveals_publish_waiting() -> int:
    """The stuck-job sweep's part: publish the waiting reveals of every campaign that no longer waits
    for a job's evidence (a job that ended without a document by a path that did not publish them)."""
    campaigns = (
        OutputReveal.objects.filter(state=RevealState.PENDING, published_at__isnull=True)
        .order_by()
        .values_list("job__campaign_id", flat=True)
        .distinct()
    )
    return sum(reveal_requests_publish(campaign_id=campaign_id) for campaign_id in list(campaigns))


def _reveals_in_process(request: dict[str, Any]) -> None:
    """The in-process path of a grouped request (CELERY_TASK_ALWAYS_EAGER): this machine is its own
    runner host."""
    from apps.runs import tasks as platform_tasks
    from runners.worker import reveal_answers

    identity = _local_runner_identity()
    if identity is None:
        logger.warning("no local runner key: the reveals %s wait for their deadline", request)
        return
    message = reveal_answers(request, identity=identity)
    platform_tasks.reveal_answers.apply(args=[message], throw=True)


def _local_runner_identity() -> RunnerIdentity | None:
    """The embedded set-up's own runner (its key lives in var/, outside the database), if it has a key."""
    import os
    from pathlib import Path

    from runners.signing import RunnerIdentity

    name = str(os.environ.get("RUNNER_NAME") or settings.EMBEDDED_RUNNER_NAME)  # the setting has a default
    key_file = Path(os.environ.get("RUNNER_KEY_FILE") or settings.EMBEDDED_RUNNER_KEY_FILE)
    if not key_file.is_file():
        return None
    return RunnerIdentity.from_file(name, key_file)


def _platform_weights(job: Job) -> dict[str, str]:
    """The registered artifact's file for a model job: the platform never reads a runner's path."""
    model = job.model  # None without a query when model_id is None
    if model is None or not model.weights:
        return {}
    try:
        return {model.name: model.weights.path}
    except (NotImplementedError, ValueError):  # storage without local paths
        return {}


def _judge(reveal: OutputReveal, payload: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The server's verdict on each revealed output, and every contradiction found. Each checked
    output records whether its reference was the one precomputed while the runner ran or computed
    now ("reference": "precomputed" | "inline"); the race (the document before the references) is
    judged inline, never waited for."""
    from runners.revealed import NotJudgeable, RevealContext, judge_output, reference_key

    if payload.get("error"):
        return [], [say("reveal.runner_error", error=str(payload["error"])[:300])]
    try:
        tensors = reveal_unpack(payload, max_bytes=REVEAL_MAX_BYTES)
    except RevealError as exc:
        return [], [say("reveal.unreadable", error=exc)]
    if reveal.judging:  # stored at the draw (issue 13): the document is not read again
        document, digests = reveal.judging["document"], reveal.judging["digests"]
    else:  # a reveal drawn before the excerpt was stored
        with reveal.document.content.open("rb") as handle:
            document = json.loads(handle.read())
        digests = {str(e.get("id")): e.get("digest") for e in committed_outputs(document)}
    context = RevealContext(document, reveal.job.spec, weights=_platform_weights(reveal.job))
    context.precomputed, plan_state = _precomputed(reveal.job)
    checked: list[dict[str, Any]] = []
    findings: list[str] = []
    extra = sorted(set(tensors) - set(reveal.requested))
    if extra:
        findings.append(listed("reveal.extra", extra, count=len(extra)))
    for output_id in reveal.requested:
        tensor = tensors.get(output_id)
        if tensor is None:
            findings.append(say("reveal.not_revealed", output=output_id))
            checked.append({"id": output_id, "revealed": False})
            continue
        digest = output_digest(tensor)
        entry = {
            "id": output_id,
            "revealed": True,
            "digest_matches": digest == digests.get(output_id),
        }
        if not entry["digest_matches"]:
            findings.append(say("reveal.digest_mismatch", output=output_id, digest=digest[:16]))
            checked.append(entry)
            continue
        try:
            with _reveal_threads():
                entry.update(judge_output(context, output_id, tensor))
        except NotJudgeable as exc:
            # The platform's own shortfall (e.g. a missing package for a reference), never the
            # vendor's: shown beside the verdicts, not counted against the runner.
            entry.update(server_status=None, agrees=None, detail=say("reveal.not_judged", error=exc))
        else:
            entry["reference"] = context.used.get(reference_key(output_id), "inline")
            if entry["reference"] == "inline" and plan_state != "none":
                entry["reference_plan"] = plan_state
            if not entry["agrees"]:
                verdicts = {
                    "output": output_id,
                    "server": entry["server_status"],
                    "runner": entry["runner_status"],
                }
                findings.append(
                    say("reveal.disagrees_because", **verdicts, detail=entry["detail"])
                    if entry.get("detail")
                    else say("reveal.disagrees", **verdicts)
                )
        checked.append(entry)
    return checked, findings


# What settling an answer reads of its reveal, in one statement: the reveal's own judging record, the
# job's plan and spec, its reveal plan (the precomputed references), the registered model's file and
# the committing runner. The program is not read (the draw recorded what settles a mismatch), nor the
# document (its excerpt is in `judging`) or the artifact's other fields (issue 13: the answer's read of
# the whole program, job, model and document rows took 5 ms of the round's path; this one 2 ms).
_ANSWER_READS = (
    "state",
    "requested",
    "judging",
    "server_seconds",
    "document__runner__name",
    "document__runner__key_id",
    "document__runner__public_key",
    "document__runner__status",
    "document__runner__last_heartbeat_at",
    "job__suite",
    "job__challenge",
    "job__spec",
    "job__campaign",
    "job__model__name",
    "job__model__weights",
    "job__reveal_plan__challenge",
    "job__reveal_plan__spec_sha256",
    "job__reveal_plan__state",
    "job__reveal_plan__references",
    "job__reveal_plan__reference_numbers",
)


def _settled_by_criterion(reveal: OutputReveal) -> bool:
    """Whether the level's `integrity`/`reveal` criterion settles a mismatch (else the job fails), as the
    draw recorded it from the campaign's program (frozen once active); read from the program for a
    reveal drawn before the draw recorded it."""
    recorded = (reveal.judging or {}).get("criterion")
    if isinstance(recorded, bool):
        return recorded
    return level_judges_reveal(Job.objects.select_related("campaign__program").get(pk=reveal.job_id))


class Verdict(NamedTuple):
    """What settling one answered reveal writes (_settle_all)."""

    reveal: OutputReveal
    state: str
    checked: list[dict[str, Any]]
    findings: list[str]
    seconds: float
    job_succeeds: bool


def _settle(
    reveal: OutputReveal,
    *,
    state: str,
    checked: list[dict[str, Any]],
    findings: list[str],
    seconds: float,
    job_succeeds: bool,
) -> bool:
    """One reveal's verdict (see _settle_all); False when it was settled meanwhile (nothing written)."""
    verdict = Verdict(reveal, state, checked, findings, seconds, job_succeeds)
    return reveal.pk in _settle_all([verdict])


def _settle_all(verdicts: list[Verdict]) -> set[int]:
    """In one statement, for every verdict: the reveal's verdict, recorded only while the reveal is
    pending, and where the verdict settles the job (`job_succeeds`), the job's success, only while it
    runs and only if the verdict was recorded. Returns the reveals whose verdict was recorded (one
    settled meanwhile is left as it is). Two UPDATEs a reveal before session 29, one a reveal before
    session 32 (issue 13: each a round trip on the answer's path)."""
    if not verdicts:
        return set()
    connection = transaction.get_connection()
    now = timezone.now()
    column: dict[str, models.Field[Any, Any]] = {}
    for name in ("state", "checked", "findings", "server_seconds"):
        field = OutputReveal._meta.get_field(name)
        assert isinstance(field, models.Field)  # concrete columns, never relations
        column[name] = field
    rows: list[str] = []
    params: list[Any] = []
    for verdict in verdicts:
        values = {
            "state": verdict.state,
            "checked": verdict.checked,
            "findings": verdict.findings,
            "server_seconds": verdict.seconds,
        }
        rows.append("(%s::bigint, %s, %s::jsonb, %s::jsonb, %s::double precision, %s::boolean)")
        params += [verdict.reveal.pk]
        params += [field.get_db_prep_save(values[name], connection) for name, field in column.items()]
        params.append(verdict.job_succeeds)
    answered = OutputReveal._meta.get_field("answered_at")
    assert isinstance(answered, models.Field)
    assignments = ", ".join(f"{field.column} = v.{name}" for name, field in column.items())
    reveals, jobs = OutputReveal._meta.db_table, Job._meta.db_table
    # The tables' and columns' names are the models' own; every value is a parameter.
    sql = (
        f"WITH v (id, state, checked, findings, server_seconds, succeeds) AS (VALUES {', '.join(rows)}), "  # noqa: S608
        f"settled AS (UPDATE {reveals} r SET {assignments}, {answered.column} = %s FROM v "
        "WHERE r.id = v.id AND r.state = %s RETURNING r.id, r.job_id, v.succeeds), "
        f"succeeded AS (UPDATE {jobs} j SET state = %s, finished_at = %s, progress_message = '' "
        "FROM settled s WHERE j.id = s.job_id AND s.succeeds AND j.state = %s RETURNING j.id) "
        "SELECT id FROM settled"
    )
    params += [now, RevealState.PENDING.value, JobState.SUCCEEDED.value, now, JobState.RUNNING.value]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {int(row[0]) for row in cursor.fetchall()}


def _pending_answered(ids: list[int]) -> models.QuerySet[OutputReveal]:
    """The pending reveals an answer names, with what settling them reads (_ANSWER_READS), in one
    statement and without ORDER BY (the model's ordering cost half a millisecond of compiling and
    planning on the answer's path)."""
    return (
        OutputReveal.objects.select_related("job__reveal_plan", "job__model", "document__runner")
        .only(*_ANSWER_READS)
        .filter(pk__in=ids, state=RevealState.PENDING)
        .order_by()
    )


def _answer_judged(reveal: OutputReveal, answer: Any) -> tuple[str, list[dict[str, Any]], list[str]] | None:
    """The server's verdict on one reveal's answer (its message verified as the committing runner's):
    (state, checked, findings), or None when the answer is not this reveal's (another kind, job or
    attempt: it counts for nothing)."""
    job = reveal.job
    if not isinstance(answer, dict) or answer.get("kind") != "reveal":
        return None
    if answer.get("job_id") != str(job.pk) or answer.get("attempt") != attempt_tag(job.challenge):
        logger.warning("dropped reveal answer for job %s: another attempt", job.pk)
        return None
    checked, findings = _judge(reveal, answer)
    return (RevealState.MISMATCH if findings else RevealState.VERIFIED), checked, findings


def _settle_answers(
    judged: list[tuple[OutputReveal, str, list[dict[str, Any]], list[str], float]],
) -> list[str]:
    """Record the verdicts (reveal, state, checked, findings, seconds) in one transaction with one audit
    statement (an `evidence.revealed` event a reveal); then fail each job whose mismatch the level's
    criterion does not settle, and check each campaign's completion once. Returns each reveal's
    outcome ("dropped" for one settled meanwhile: nothing written)."""
    from apps.runs.services.campaigns import campaign_check_completion, job_fail

    outcomes: list[str] = []
    failing: list[tuple[int, list[str]]] = []
    completing: list[int] = []
    verdicts = [
        Verdict(*answer, job_succeeds=answer[1] == RevealState.VERIFIED or _settled_by_criterion(answer[0]))
        for answer in judged
    ]
    with transaction.atomic():
        settled = _settle_all(verdicts)
        entries = []
        for verdict in verdicts:
            reveal = verdict.reveal
            if reveal.pk not in settled:
                outcomes.append("dropped")
                continue
            outcomes.append(verdict.state)
            entries.append(
                AuditEntry(
                    action="evidence.revealed",
                    obj=reveal.job,
                    payload={
                        "reveal_id": reveal.pk,
                        "state": verdict.state,
                        "checked": len(verdict.checked),
                        "findings": verdict.findings[:10],
                    },
                )
            )
            if not verdict.job_succeeds:  # a mismatch the level's criterion does not settle
                failing.append((reveal.job.pk, verdict.findings))
            elif reveal.job.campaign_id not in completing:
                completing.append(reveal.job.campaign_id)
        audit_record_many(entries=entries)
    for job_id, findings in failing:
        job_fail(
            job_id=job_id,
            error_class=ErrorClass.REJECTED_EVIDENCE,
            message=say("reveal.integrity_failure", findings="; ".join(findings[:5])),
        )
    for campaign_id in completing:
        campaign_check_completion(campaign_id=campaign_id)
    return outcomes


def reveal_receive(*, message: dict[str, Any]) -> str:
    """Settle a reveal from the runner's signed answer to a request for it alone (`runners.reveal`);
    returns what became of it.

    A message that does not verify, is not from the runner that signed the document, or names another
    attempt is dropped without touching anything (only the committing runner can reveal). The pending
    reveal the payload names is read first, with its document's runner, in one statement; the message
    counts only if that runner's key signed it (a signature by any other key is refused)."""
    from apps.runs.services.messages import UnverifiedMessage, _verified_payload, message_payload

    started = time.perf_counter()
    try:
        claimed: Any = message_payload(message)  # not trusted before the signature verifies
        reveal_id = int(claimed.get("reveal_id"))  # None or anything else: dropped
    except (UnverifiedMessage, AttributeError, TypeError, ValueError):
        logger.warning("dropped reveal answer: no reveal named")
        return "dropped"
    reveal = next(iter(_pending_answered([reveal_id])), None)
    if reveal is None:
        return "dropped"
    try:
        _, payload = _verified_payload(message, signer=reveal.document.runner, payload=claimed)
    except UnverifiedMessage as exc:
        logger.warning("dropped reveal answer for reveal %s: %s", reveal_id, exc)
        return "dropped"
    judged = _answer_judged(reveal, payload)
    if judged is None:
        return "dropped"
    seconds = (reveal.server_seconds or 0.0) + time.perf_counter() - started
    return _settle_answers([(reveal, *judged, seconds)])[0]


def reveal_receive_many(*, message: dict[str, Any]) -> list[str]:
    """Settle the reveals of one grouped answer (`runners.reveal_many`: the answers to a campaign's
    request, `reveal_requests_publish`); returns what became of each answer, in its order.

    The message is verified once, and counts only if every pending reveal it names was committed by
    the runner whose key signed it: a message naming another runner's reveal, or one reveal twice, is
    dropped whole without touching anything. Each answer is then judged as `reveal_receive` judges a
    lone one (an answer for another kind, job or attempt counts for nothing), and the verdicts are
    recorded together."""
    from apps.runs.services.messages import UnverifiedMessage, _verified_payload, message_payload

    started = time.perf_counter()
    try:
        claimed: Any = message_payload(message)  # not trusted before the signature verifies
        answers = claimed.get("answers")
        if not isinstance(answers, list) or not 0 < len(answers) <= REVEALS_PER_REQUEST:
            raise ValueError("no answers")
        ids = [int(answer.get("reveal_id")) for answer in answers]
    except (UnverifiedMessage, AttributeError, TypeError, ValueError):
        logger.warning("dropped reveal answers: no reveals named")
        return []
    dropped = ["dropped"] * len(ids)
    if len(set(ids)) != len(ids):
        logger.warning("dropped reveal answers: a reveal answered twice")
        return dropped
    found = {reveal.pk: reveal for reveal in _pending_answered(ids)}
    if not found:
        return dropped
    runners = {reveal.document.runner_id for reveal in found.values()}
    if len(runners) != 1:
        logger.warning("dropped reveal answers: reveals of several runners in one message")
        return dropped
    try:
        _, payload = _verified_payload(
            message, signer=next(iter(found.values())).document.runner, payload=claimed
        )
    except UnverifiedMessage as exc:
        logger.warning("dropped reveal answers for reveals %s: %s", sorted(found), exc)
        return dropped
    if payload.get("kind") != "reveals":
        return dropped
    shared = (time.perf_counter() - started) / len(found)  # reading, parsing and verifying, shared
    judged, places = [], []
    for place, (answer, reveal_id) in enumerate(zip(answers, ids, strict=True)):
        reveal = found.get(reveal_id)
        if reveal is None:
            continue
        began = time.perf_counter()
        verdict = _answer_judged(reveal, answer)
        if verdict is None:
            continue
        seconds = (reveal.server_seconds or 0.0) + shared + time.perf_counter() - began
        judged.append((reveal, *verdict, seconds))
        places.append(place)
    for place, outcome in zip(places, _settle_answers(judged), strict=True):
        dropped[place] = outcome
    return dropped


def reveals_expire(*, now: datetime | None = None) -> int:
    """Pending reveals past their deadline: the job fails as a timeout (classified), the reveal expires."""
    from apps.runs.services.campaigns import job_fail

    now = now or timezone.now()
    count = 0
    for reveal in OutputReveal.objects.filter(state=RevealState.PENDING, deadline_at__lt=now):
        if not OutputReveal.objects.filter(pk=reveal.pk, state=RevealState.PENDING).update(
            state=RevealState.EXPIRED,
            findings=[say("reveal.none_by", deadline=reveal.deadline_at.isoformat())],
        ):
            continue
        job_fail(
            job_id=reveal.job_id,
            error_class=ErrorClass.TIMEOUT,
            message=say(
                "reveal.timeout", count=len(reveal.requested), deadline=reveal.deadline_at.isoformat()
            ),
        )
        count += 1
    return count
