"""The reveal's plan, drawn when a job is dispatched (apps/runs/services/reveal.py): a secret key orders
the outputs the platform will ask for, and the references of the predicted sample are computed while
the runner runs. The key never reaches the runner; precomputed references judge exactly as references
computed when the reveal arrives; a document that arrives before its references is judged inline."""

from __future__ import annotations

import json

import pytest
import torch

from apps.runs.models import OutputReveal, RevealPlan, RevealPlanState, RevealState
from apps.runs.services.reveal import (
    _current_plan,
    _platform_weights,
    _precomputed,
    _reveal_threads,
    _sample_rank,
    reveal_plan_draw,
    reveal_prepare,
    reveal_prepare_dispatch,
    reveal_request_build,
)
from runners.commitment import reveal_unpack
from runners.revealed import RevealContext, judge_output, reference_key, reference_parts
from runners.worker import reveal_answer
from tests.real_documents import campaign_from_runner, runner_documents

pytestmark = pytest.mark.django_db


def _revealed_tensors(reveal: OutputReveal) -> dict[str, torch.Tensor]:
    """What the runner host revealed for this (settled) reveal, read again from its output store."""
    real = runner_documents()
    message = reveal_answer(reveal_request_build(reveal), identity=real.identity, root=real.output_root)
    return reveal_unpack(json.loads(message["payload_json"]))


def test_the_sample_key_is_in_no_message_the_runner_receives(cast, aia12):
    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, evaluate=False, reveal=False)
    for job in campaign.jobs.all():
        plan = RevealPlan.objects.get(job=job)
        spec = json.dumps(job.spec, sort_keys=True)  # the dispatch message: runners.execute's argument
        assert plan.sample_key and plan.sample_key not in spec and "sample_key" not in spec
        # Drawing the plan again (a new key, other predictions) leaves the dispatch message unchanged:
        # it carries nothing about the sample.
        again = reveal_plan_draw(job=job)
        assert again is not None and again.sample_key != plan.sample_key
        job.refresh_from_db()
        assert json.dumps(job.spec, sort_keys=True) == spec
        # The only message about the sample, the reveal request, exists once the commitment is stored
        # and names the drawn outputs alone, never the key or the predicted order.
        reveal = OutputReveal.objects.get(job=job)
        request = json.dumps(reveal_request_build(reveal))
        assert again.sample_key not in request and plan.sample_key not in request
        assert set(reveal_request_build(reveal)) == {"reveal_id", "job_id", "attempt", "outputs", "max_bytes"}


def test_the_sample_follows_the_secret_key_of_the_attempt(cast, aia12):
    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, evaluate=False)
    for reveal in OutputReveal.objects.filter(job__campaign=campaign).select_related("job"):
        plan = RevealPlan.objects.get(job=reveal.job)
        ranks = [_sample_rank(plan.sample_key, output_id) for output_id in reveal.requested]
        assert reveal.requested and ranks == sorted(ranks), reveal.job.suite
    conformance = OutputReveal.objects.get(job__campaign=campaign, job__suite="conformance")
    plan = RevealPlan.objects.get(job=conformance.job)
    # The outputs predicted before any commit are judged on their precomputed references, any other
    # (past the predicted ones, when the runner did not commit some of them) inline.
    for checked in conformance.checked:
        assert checked["reference"] == ("precomputed" if checked["id"] in plan.predicted else "inline")
    # A new attempt (a retried job's fresh challenge) leaves the old plan unused.
    job = conformance.job
    job.challenge = "0" * 64
    assert _current_plan(job) is None


def test_precomputed_references_judge_exactly_as_inline_ones(cast, aia12):
    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, evaluate=False)
    sources = set()
    for reveal in OutputReveal.objects.filter(job__campaign=campaign).select_related("job", "document"):
        assert reveal.state == RevealState.VERIFIED, reveal.findings
        plan = RevealPlan.objects.get(job=reveal.job)
        assert plan.state == RevealPlanState.READY, plan.problems
        precomputed, state = _precomputed(reveal.job)
        assert state == RevealPlanState.READY
        # Every stored reference is the one computed now from the spec and challenge, bit for bit, at the
        # platform's thread count (a float64 GEMM's split of K between threads can change its last bits).
        fresh_context = RevealContext({}, reveal.job.spec, weights=_platform_weights(reveal.job))
        for key, parts in precomputed.items():
            with _reveal_threads():
                fresh = reference_parts(fresh_context, key)
            assert set(fresh) == set(parts), key
            for name, value in fresh.items():
                if isinstance(value, torch.Tensor):
                    # Bit for bit, NaN where NaN (torch.equal calls NaN unequal to itself).
                    assert value.dtype == parts[name].dtype, key
                    torch.testing.assert_close(value, parts[name], rtol=0, atol=0, equal_nan=True, msg=key)
                else:
                    assert value == parts[name], key
        # Every revealed output's verdict is the same judged on either.
        with reveal.document.content.open("rb") as handle:
            document = json.loads(handle.read())
        tensors = _revealed_tensors(reveal)
        weights = _platform_weights(reveal.job)
        ahead = RevealContext(document, reveal.job.spec, weights=weights)
        ahead.precomputed = precomputed
        now = RevealContext(document, reveal.job.spec, weights=weights)
        for output_id in reveal.requested:
            # Both at the platform's thread count, as _judge runs them (at torch's default a float64
            # GEMM's bound differed in its last bits on an AVX-512 host: session 28's CI, one process).
            with _reveal_threads():
                assert judge_output(ahead, output_id, tensors[output_id]) == judge_output(
                    now, output_id, tensors[output_id]
                ), output_id
        assert set(now.used.values()) <= {"inline"}
        sources |= {(reveal.job.suite, c["reference"]) for c in reveal.checked}
        if reveal.job.suite == "performance":
            # One reference per benchmark the plan names (the GEMMs; the STREAM buffers follow the
            # device's cache, so their outputs are judged on arrival): each output of a predicted
            # benchmark is judged on the reference computed while the runner ran.
            assert plan.predicted and all(key.startswith("performance/matmul") for key in plan.predicted)
            for checked in reveal.checked:
                predicted = reference_key(checked["id"]) in plan.predicted
                assert checked["reference"] == ("precomputed" if predicted else "inline"), checked["id"]
    # The platform judged the conformance, model and serving samples on precomputed references.
    assert {("conformance", "precomputed"), ("model", "precomputed"), ("serving", "precomputed")} <= sources


def test_a_document_that_arrives_before_its_references_is_judged_inline(cast, aia12):
    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, evaluate=False, precompute=False)
    for reveal in OutputReveal.objects.filter(job__campaign=campaign).select_related("job"):
        assert reveal.state == RevealState.VERIFIED, reveal.findings
        assert all(c["agrees"] and c["reference"] == "inline" for c in reveal.checked)
        # Every plan, the performance one included (its benchmarks), had references still to compute.
        assert all(c["reference_plan"] == RevealPlanState.PREPARING for c in reveal.checked), reveal.job.suite
    # The late task still finishes (its work unused), and one for another attempt changes nothing.
    job = campaign.jobs.get(suite="conformance")
    plan = RevealPlan.objects.get(job=job)
    assert reveal_prepare(job_id=job.pk, challenge="f" * 64) == "stale"
    assert reveal_prepare(job_id=job.pk, challenge=plan.challenge) == RevealPlanState.READY
    assert reveal_prepare(job_id=job.pk, challenge=plan.challenge) == "stale"  # done once


def test_dispatching_a_job_draws_its_plan_and_prepares_it(cast, aia12):
    campaign = campaign_from_runner(
        vendor=cast.vendor, program=aia12, evaluate=False, reveal=False, precompute=False
    )
    job = campaign.jobs.get(suite="conformance")
    before = RevealPlan.objects.get(job=job)
    reveal_prepare_dispatch(job=job)  # the tests' in-process mode computes the references at once
    after = RevealPlan.objects.get(job=job)
    assert after.sample_key != before.sample_key and after.state == RevealPlanState.READY
    assert after.predicted and after.references


def test_an_encoders_served_outputs_are_judged_without_a_float64_copy_of_the_model(cast, aia12, monkeypatch):
    """Issue 13: the float64 copy of a served model is what a decoder's references and teacher-forced
    logits run on; an encoder's served outputs never read it, so judging them builds none, and every
    verdict is the one judged with the copy built, as before."""
    import runners.models.reference as reference_module
    import runners.revealed as revealed

    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, evaluate=False)
    reveal = OutputReveal.objects.select_related("job", "document").get(
        job__campaign=campaign, job__suite="serving"
    )
    assert reveal.state == RevealState.VERIFIED and reveal.requested, reveal.findings
    with reveal.document.content.open("rb") as handle:
        document = json.loads(handle.read())
    tensors = _revealed_tensors(reveal)
    weights = _platform_weights(reveal.job)
    copies = []
    real_copy = reference_module.float64_copy

    def counted_copy(*args, **kwargs):
        copies.append(args[0])
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(reference_module, "float64_copy", counted_copy)
    now = RevealContext(document, reveal.job.spec, weights=weights)
    verdicts = {output_id: judge_output(now, output_id, tensors[output_id]) for output_id in reveal.requested}
    assert copies == []  # the tiny BERT of the plan is an encoder: no copy built
    loaded, workload, f64 = now.models[("serving", runner_documents().model_name)]
    assert workload.kind == "encoder" and f64 is None

    # As before: the copy built for every served model, the verdicts the same.
    built = RevealContext(document, reveal.job.spec, weights=weights)
    built.models[("serving", loaded.spec.name)] = (
        loaded,
        workload,
        real_copy(loaded.module, type(loaded.module), loaded.config),
    )
    for output_id in reveal.requested:
        assert judge_output(built, output_id, tensors[output_id]) == verdicts[output_id], output_id
        assert verdicts[output_id]["agrees"], verdicts[output_id]
    assert revealed.reference_key(reveal.requested[0]).startswith("serving/")


def test_the_plans_of_jobs_dispatched_together_are_written_in_one_statement(cast, aia12):
    """Session 28 (issue 13): a campaign's dispatch wrote each job's plan in a transaction of its own.
    The first attempts' plans are one INSERT; drawn again (a retry), each is replaced with a new key."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.runs.services.reveal import reveal_plans_draw

    campaign = campaign_from_runner(
        vendor=cast.vendor, program=aia12, evaluate=False, reveal=False, precompute=False
    )
    RevealPlan.objects.filter(job__campaign=campaign).delete()
    jobs = list(campaign.jobs.select_related("campaign__program", "reveal_plan").order_by("pk"))
    with CaptureQueriesContext(connection) as queries:
        drawn = reveal_plans_draw(jobs=jobs)
    writes = [q["sql"] for q in queries.captured_queries if "runs_revealplan" in q["sql"]]
    assert len(writes) == 1 and writes[0].startswith("INSERT"), writes
    assert set(drawn) == {job.pk for job in jobs} and all(drawn.values())
    keys = {job.pk: RevealPlan.objects.get(job=job).sample_key for job in jobs}
    assert len(set(keys.values())) == len(jobs)
    assert all(_current_plan(job) == drawn[job.pk] for job in jobs)
    again = reveal_plans_draw(jobs=jobs)  # a new attempt's draw replaces each plan
    assert RevealPlan.objects.filter(job__campaign=campaign).count() == len(jobs)
    assert all(again[job.pk].sample_key != keys[job.pk] for job in jobs)


def test_one_jobs_failed_draw_does_not_cost_the_others_their_plans(cast, aia12, monkeypatch, caplog):
    from apps.runs import dispatch
    from apps.runs.services import reveal as reveal_service

    campaign = campaign_from_runner(
        vendor=cast.vendor, program=aia12, evaluate=False, reveal=False, precompute=False
    )
    RevealPlan.objects.filter(job__campaign=campaign).delete()
    jobs = list(campaign.jobs.select_related("campaign__program", "reveal_plan").order_by("pk"))
    fields = reveal_service._plan_fields

    def broken_for_performance(job):
        if job.suite == "performance":
            raise RuntimeError("a plan the platform cannot read")
        return fields(job)

    monkeypatch.setattr(reveal_service, "_plan_fields", broken_for_performance)
    dispatch._reveal_plans(jobs)
    planned = set(RevealPlan.objects.filter(job__campaign=campaign).values_list("job__suite", flat=True))
    assert planned == {job.suite for job in jobs} - {"performance"}
    assert "no reveal plan for job" in caplog.text  # the failed job's reveal is drawn at ingestion


def test_a_plan_drawn_meanwhile_by_another_dispatch_is_replaced_by_this_draw(cast, aia12):
    """Two dispatches of a job racing: the plan another one wrote after these jobs were read makes the
    one INSERT fail; each plan is then written on its own and the other dispatch's is replaced."""
    from apps.runs.services.reveal import reveal_plans_draw

    campaign = campaign_from_runner(
        vendor=cast.vendor, program=aia12, evaluate=False, reveal=False, precompute=False
    )
    RevealPlan.objects.filter(job__campaign=campaign).delete()
    jobs = list(campaign.jobs.select_related("campaign__program", "reveal_plan").order_by("pk"))
    other = reveal_plans_draw(jobs=[campaign.jobs.select_related("campaign__program").get(pk=jobs[0].pk)])
    drawn = reveal_plans_draw(jobs=jobs)  # read before the other dispatch wrote its plan
    assert RevealPlan.objects.filter(job__campaign=campaign).count() == len(jobs)
    assert all(_current_plan(job) is not None for job in jobs)
    kept = RevealPlan.objects.get(job_id=jobs[0].pk)
    assert kept.sample_key == drawn[jobs[0].pk].sample_key != other[jobs[0].pk].sample_key


def test_the_draw_reads_the_order_and_prices_its_plan_prepared_off_the_path(cast, aia12, monkeypatch):
    """Session 31 (issue 13): a conformance plan's preparation orders every planned output by the key
    and prices it; the draw at ingestion reads that instead of pricing and ordering every committed
    output on the campaign's path (529 at Baseline), and draws exactly what doing so would draw."""
    import runners.revealed as revealed
    from apps.runs.models import Job
    from apps.runs.services.reveal import reveal_draw
    from runners.revealed import judgeable, planned_output_ids, reference_cost

    campaign = campaign_from_runner(vendor=cast.vendor, program=aia12, evaluate=False, reveal=False)
    reveal = OutputReveal.objects.select_related("job", "document").get(
        job__campaign=campaign, job__suite="conformance"
    )
    plan = RevealPlan.objects.get(job=reveal.job)
    spec = reveal.job.spec
    context = RevealContext({}, spec)
    ids = [row[0] for row in plan.draw_order]
    assert sorted(ids) == sorted(planned_output_ids(spec, "conformance")) and len(ids) > 10
    assert ids == sorted(ids, key=lambda i: _sample_rank(plan.sample_key, i))
    assert all(
        [cost, why] == [reference_cost(context, i), judgeable(context, i)] for i, cost, why in plan.draw_order
    )
    assert plan.predicted == [i for i in ids if i in plan.predicted]  # the first drawable, in order
    with reveal.document.content.open("rb") as handle:
        document = json.loads(handle.read())
    priced = []
    cost = revealed.reference_cost
    monkeypatch.setattr(revealed, "reference_cost", lambda *a: priced.append(a[1]) or cost(*a))

    def draw(order: list | None) -> tuple[list[str], list[dict], int]:
        OutputReveal.objects.filter(job=reveal.job).delete()
        job = Job.objects.select_related("campaign__program", "reveal_plan").get(pk=reveal.job_id)
        if order is not None:
            job.reveal_plan.draw_order = order
        priced.clear()
        drawn, _ = reveal_draw(
            stored=reveal.document, document=document, job=job, size=5, rule="uniform", budget=1 << 26
        )
        return drawn.requested, drawn.excluded, len(priced)

    stored = draw(None)
    assert stored[0] and stored[2] == 0  # nothing priced on the path
    unprepared = draw([])  # a plan not prepared yet (the race): every output priced and ordered now
    assert unprepared[:2] == stored[:2] and unprepared[2] >= len(ids)
    # An order that lacks a committed output (never written by a preparation of this plan): ordered by
    # the key, as when nothing was prepared.
    assert draw(plan.draw_order[:-1])[:2] == stored[:2]


def test_the_plans_dispatched_together_are_prepared_by_one_task_in_their_order(
    cast, aia12, settings, monkeypatch
):
    """Session 31 (issue 13): dispatch queues one platform task for the plans of the jobs it sends
    together (one publish on the campaign's path, not one a job); the task prepares them in order and
    skips an entry of another shape."""
    from apps.runs import tasks
    from apps.runs.services import reveal as reveal_service
    from certification.celery import app

    campaign = campaign_from_runner(
        vendor=cast.vendor, program=aia12, evaluate=False, reveal=False, precompute=False
    )
    jobs = list(campaign.jobs.select_related("campaign__program", "reveal_plan").order_by("pk"))
    published = []
    monkeypatch.setattr(app, "send_task", lambda name, **kw: published.append((name, kw)))
    settings.CELERY_TASK_ALWAYS_EAGER = False
    reveal_service.reveal_plans_prepare_dispatch(jobs=jobs)
    plans = {plan.job_id: plan for plan in RevealPlan.objects.filter(job__in=jobs)}
    assert [name for name, _ in published] == ["runs.reveal_prepare_jobs"]
    (pairs,) = published[0][1]["args"]
    assert pairs == [[job.pk, plans[job.pk].challenge] for job in jobs]
    assert all(plan.state == RevealPlanState.PREPARING and not plan.predicted for plan in plans.values())
    prepared = []
    monkeypatch.setattr(
        reveal_service,
        "reveal_prepare",
        lambda **kw: prepared.append((kw["job_id"], kw["challenge"])) or RevealPlanState.READY,
    )
    tasks.reveal_prepare_jobs.apply(args=[[pairs[1], ["7", "c"], [True, "c"], "junk", pairs[0], [1, 2, 3]]])
    assert prepared == [tuple(pairs[1]), tuple(pairs[0])]
    tasks.reveal_prepare_jobs.apply(args=[{"not": "a list"}])
    assert len(prepared) == 2
