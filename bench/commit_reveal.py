"""Benchmark: what the commit–reveal round adds to a campaign's platform overhead.

A real campaign under AIA 1.2 is fed the real runner's documents of this CPU through the platform's
real services. Two plans: `--plan tiny`, the test suite's tiny plan (tests/real_documents.py: three
kernels, two GEMM sizes, a tiny BERT encoder's model and serving jobs); `--plan level`, the level's
own plan exactly as campaign_submit builds it for a CPU target declaring an fp32 peak (Baseline: all
529 conformance cases of float32 and bfloat16, the full performance suite in float32 and bfloat16, the
model suite in the level's dtypes, the serving suite with the level's LoadGen settings; Standard adds
float16 and int8). The vendor's model is the tiny BERT encoder in both (a larger model makes the
model and serving jobs' references costlier, on the runner and in the reveal alike).

The runner runs once per plan (`--plan level`: its documents and raw outputs are kept under
--documents and reused while the plan is the same); its time is the device's and is printed apart,
never counted. Every round then replays the same documents through fresh campaigns.

Counted, the campaign's platform overhead (wall time of this process, minus what is listed below as
not counted; this process's CPU time is printed beside it, and the database server's time is in the
wall figure only): submission (campaign, jobs, specs, audit), the reveal plan's draw for each job's
final spec (as dispatch draws it), ingestion of each signed document (signature, runner binding,
challenge, schema, the plan coverage check, the spot check, storage, case and measurement rows, audit),
the reveal's draw and its request, the platform's handling of the runner's answer (signature,
digests, the float64 references recomputed for the sampled cases or read precomputed, the verdicts,
the audit event, the job's success), the campaign's completion and its evaluation.

Not counted: the runner's suites (device time); the runner packing and signing its reveal answer; the
harness's copy of each document and its re-signing for the job it now names (runner-side work); the
vendor's registration (organization, chip, hardware target, model artifact: done before the clock);
the references the platform precomputes while the runner runs (runs.reveal_prepare_jobs, a separate task
off the campaign's path: reported apart, and added in "platform work including ..."). Nothing of
Celery's transport or of HTTP is in either figure: the harness calls the services directly.

Each job's plan is drawn once, for the spec the job runs (dispatch's draw for the submitted spec,
which the harness replaces, is left out), and the runner answers the request the platform published
(not one the harness rebuilds).

Each round runs, interleaved and in an order rotated each round: the campaign under a copy of AIA 1.2
whose levels draw no reveal (reveal_sample size 0, otherwise identical: the baseline), under AIA 1.2
with the references computed when the reveal arrives (the race's path) and with them precomputed, and
the baseline with the spot check that AIA 1.2 with size 0 runs today ("full spot check": it also
recomputes the five sampled cases' float64 references, work the round makes unnecessary); with
--redraw also the campaign with the round as ingestion ran before session 25 (each check drawing the
cases' dimensions anew). The headline baseline spot-checks inputs only, as the campaigns with the
round do, so the difference is the round's own cost; the five spot-checked cases are the same in every
variant of a round (a fresh seed per round). The added overhead is the ratio of the median
platform-side path times minus one, and the round's own steps timed directly (its commitment check,
draw, publishes and answer handling) as a share of the median path without it, the steadier of the two
on a busy host; the target (at most 10%) holds when both do; per-round paired ratios, this process's CPU
time (steadier than the wall clock on a loaded host), the round's own share (OutputReveal.server_seconds:
draw and judging), the SQL statements and audit events of each campaign and the load after each round
are printed too, and the platform's CPU in all for the two ways of computing the references: every
planned output the draw could take, while the runner runs (path + precomputation), or only the drawn
outputs', after the draw (the campaign judged on arrival). One unmeasured campaign of each kind runs
first: a process's first campaign pays its one-off imports and caches, which belong to no round. Uses its own database (--database, default
"bench_reveal"; flushed at start).

Set CELERY_BROKER_URL to a running broker (redis://127.0.0.1:6379/9 here): the campaigns enqueue
notifications, and without a broker each enqueue fails and logs a traceback that would be counted as
platform time, in both variants, shrinking the round's share.

    CELERY_BROKER_URL=redis://127.0.0.1:6379/9 OMP_NUM_THREADS=1 .venv/bin/python bench/commit_reveal.py \
        [--plan level] [--level standard] \
        [--rounds 5] [--redraw] [--url postgresql://postgres@127.0.0.1:5432] [--profile 40]
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

from benchdb import ensure_database

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.10
# Where the bench publishes the reveal_prepare tasks dispatch would publish on the platform queue
# (counted as platform time, never consumed: the bench runs the task itself, off the path).
BENCH_QUEUE = "bench-reveal-prepare"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--level", default="baseline", help="the AIA 1.2 level whose campaign is measured")
    parser.add_argument(
        "--plan",
        choices=["tiny", "level"],
        default="tiny",
        help="tiny: the test suite's tiny plan (tests/real_documents.py); level: the level's own plan as "
        "campaign_submit builds it for a CPU target (every kernel of the level's dtypes, the full "
        "performance suite, the level's model dtypes and serving settings; the vendor's model is the tiny "
        "BERT encoder of tests/real_documents.py)",
    )
    parser.add_argument(
        "--documents",
        default=str(ROOT / "var" / "bench-reveal-documents"),
        help="--plan level: where the runner's documents and raw outputs are kept between runs of the bench "
        "(one folder per level and plan; produced when missing)",
    )
    parser.add_argument("--database", default="bench_reveal", help="the bench's own database (flushed)")
    parser.add_argument(
        "--before",
        action="store_true",
        help="also run each round's reveal judged inline on torch's default intra-op threads, interleaved",
    )
    parser.add_argument(
        "--redraw",
        action="store_true",
        help="also run each round's campaign with the round as ingestion ran before session 25 (every "
        "check draws the cases' dimensions anew), interleaved",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also clock each step of the path (wall time, inclusive of the steps it calls) and print its "
        "median per campaign without and with the round (precomputed references)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after the rounds, profile one campaign with the round (precomputed references) and print the "
        "N functions of most cumulative time (cProfile)",
    )
    args = parser.parse_args()
    ensure_database(args.url, args.database)
    os.environ["DATABASE_URL"] = f"{args.url}/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "certification.settings")
    os.environ.setdefault("SECRET_KEY", "bench")
    sys.path.insert(0, str(ROOT))
    import tempfile

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="bench-media-"))
    settings.CERT_SIGNING_KEY_DIR = Path(tempfile.mkdtemp(prefix="bench-keys-"))
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)  # the bench's own database, fresh each run

    import hashlib

    import runners.worker as runner_worker
    import tests.real_documents as harness
    from apps.accounts.models import OrganizationKind
    from apps.runs.models import OutputReveal, RevealState
    from apps.runs.services.programs import PROGRAMS_DIR, program_load
    from apps.runs.services.reveal import commitment_problems
    from tests.factories import ModelArtifactFactory, OrganizationFactory
    from tests.real_documents import campaign_from_runner, runner_documents

    definition = json.loads(Path(PROGRAMS_DIR, "aia-1.2.json").read_text())
    # Codes of the bench's own (the bench database keeps programs across runs; an active one is frozen).
    tag = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:8]
    definition["code"] = f"R{tag}"
    program, _ = program_load(definition=definition)
    started = time.perf_counter()
    if args.plan == "level":  # the runner runs the level's own plan once (device time, not counted)
        real = level_plan_documents(program=program, level=args.level, cache=Path(args.documents))
        harness.runner_documents = lambda: real
    else:
        real = runner_documents()  # the runner's side: its suites on this CPU (not platform time)
    print(
        f"runner documents of the {args.plan} plan ready in {time.perf_counter() - started:.1f}s (runner side, "
        f"not counted): " + ", ".join(f"{suite} {plan_size(doc)}" for suite, doc in real.documents.items())
    )
    without = json.loads(json.dumps(definition))
    without["code"] = f"N{tag}"
    for level in without["levels"]:
        level["thresholds"]["reveal_sample"]["value"]["size"] = 0
        # The reveal blocker stays (AIA 1.2 refuses a level without it); with size 0 nothing is drawn.
    program_without, _ = program_load(definition=without)
    runner_side = runner_cpu = 0.0
    depth = 0

    def off_path(function):
        """`function` timed as the runner host's or the harness's work, not the platform's (nested calls
        counted once)."""

        def timed(*a, **kw):
            nonlocal runner_side, runner_cpu, depth
            t, c = time.perf_counter(), time.process_time()
            depth += 1
            try:
                return function(*a, **kw)
            finally:
                depth -= 1
                if depth == 0:
                    runner_side += time.perf_counter() - t
                    runner_cpu += time.process_time() - c

        return timed

    # The runner host packing and signing its outputs (the reveal's answer), and the harness making each
    # job's document its own: a copy of the runner's document, canonicalized and signed again by the
    # runner's key for the job it now names. All of it is the runner's (or the harness's) work; before
    # session 25 the copy and the re-signing were counted as platform time (of a real plan's
    # conformance document: tens of milliseconds per job, in the baseline and with the round alike).
    import copy as copy_module
    import types as types_module

    from runners.signing import RunnerIdentity

    runner_worker.reveal_answers = off_path(runner_worker.reveal_answers)
    harness.canonical_json = off_path(harness.canonical_json)
    harness.copy = types_module.SimpleNamespace(deepcopy=off_path(copy_module.deepcopy))
    RunnerIdentity.envelope = off_path(RunnerIdentity.envelope)

    from apps.runs.services import reveal as reveal_service

    prepare_side = prepare_cpu = 0.0
    prepare = reveal_service.reveal_prepare_many

    preparing = False

    from certification.celery import app as celery_app

    def timed_prepare(*a, **kw):  # the platform task that runs while the runner runs (off the path)
        nonlocal prepare_side, prepare_cpu, preparing
        # Dispatch publishes the task on the campaign's path (reveal_plans_prepare_dispatch; counted:
        # before session 28 the harness computed the references without it); a platform worker runs it.
        t = time.perf_counter()
        celery_app.send_task(
            "runs.reveal_prepare_jobs", args=[[list(p) for p in kw["plans"]]], queue=BENCH_QUEUE
        )
        own["round"] += time.perf_counter() - t
        t, c = time.perf_counter(), time.process_time()
        preparing = True
        try:
            return prepare(*a, **kw)
        finally:
            preparing = False
            prepare_side += time.perf_counter() - t
            prepare_cpu += time.process_time() - c

    reveal_service.reveal_prepare_many = timed_prepare

    from django.db import connection

    from apps.audit.models import AuditEvent

    last_cpu = 0.0
    from apps.runs import dispatch as dispatch_module
    from apps.runs.services import ingestion as ingestion_module

    # One plan per job. campaign_from_runner gives each job the plan the runner ran after submission,
    # and draws the jobs' reveal plans for them then, together (tests/real_documents.py), as dispatch
    # draws them for the jobs' final specs in production; the draw at submission would be replaced
    # unused (it was counted twice before). Dispatch's draw is therefore left to the harness, once per
    # job, in every variant.
    dispatch_module._reveal_plans = lambda jobs: None

    # The spot check at ingestion samples its cases with the round's seed, the same cases in every
    # variant of a round (a random draw per campaign made the baseline's full recomputation of five
    # cases of very different sizes the largest term of the noise); a fresh seed each round.
    import random
    import types

    spot_seed = 0
    ingestion_module.secrets = types.SimpleNamespace(SystemRandom=lambda: random.Random(spot_seed))
    # The baseline: the same campaign without the round, everything else as in the campaigns with it.
    # With a reveal drawn the spot check only regenerates the sampled cases' inputs (the reveal judges
    # outputs); without one it also recomputes their float64 references (ingestion._validate). That
    # recomputation is not the round's, and its cost depends on which five cases are drawn (what made
    # the old figure noisy), so the headline baseline spot-checks inputs only, as the campaigns with the
    # round do; the campaign without the round as AIA 1.2 with size 0 runs it today (references
    # recomputed too: the round then also saves that work) is measured beside it ("full spot check").
    spot_check = ingestion_module.spot_check_cases
    spot_full = False

    def spot_check_as_with_round(document, *, sample_size, rng, inputs_only=False):
        return spot_check(
            document, sample_size=sample_size, rng=rng, inputs_only=inputs_only or not spot_full
        )

    ingestion_module.spot_check_cases = spot_check_as_with_round

    # The round's own steps, timed directly (a steadier figure than the difference of two campaigns'
    # medians, into which the noise of every shared step enters): the commitment check, the draw and the
    # request's publish at ingestion, the plans' draw at dispatch, the preparation's publish, and the
    # answer's handling without the completion check it ends with (which the baseline runs at ingestion).
    # What it leaves out is indirect (a longer audit payload, the reveal rows the evaluation reads): the
    # difference of the campaigns' medians includes it.
    own = {"round": 0.0, "plans": 0.0, "completion": 0.0}
    answering = False

    def own_step(module, name: str, part: str = "round") -> None:
        function = getattr(module, name)

        def timed(*a, **kw):
            nonlocal answering
            t = time.perf_counter()
            outer = name == "reveal_receive_many"
            answering = answering or outer
            try:
                return function(*a, **kw)
            finally:
                if outer:
                    answering = False
                if not preparing and (part != "completion" or answering):
                    own[part] += time.perf_counter() - t

        setattr(module, name, timed)

    for module, name in (
        (ingestion_module, "commitment_problems"),
        (ingestion_module, "reveal_draw"),
        (ingestion_module, "reveal_requests_publish"),
        (reveal_service, "reveal_receive_many"),
    ):
        own_step(module, name)
    own_step(reveal_service, "reveal_plans_draw", "plans")

    # The runner answers the requests the platform published (the campaign's reveals, claimed and
    # grouped once its last job's evidence is in: reveal_requests_claim), not ones the harness rebuilds
    # from the database (those reads are no platform work).
    published: list[dict] = []
    claim = reveal_service.reveal_requests_claim

    def kept_requests(**kw):
        requests = claim(**kw)
        published.extend(requests)
        return requests

    reveal_service.reveal_requests_claim = kept_requests

    def answer_published(campaign, *, real=None, root=None):
        real = real or runner_documents()
        outcomes = []
        while published:
            message = runner_worker.reveal_answers(
                published.pop(0), identity=real.identity, root=root or real.output_root
            )
            outcomes += reveal_service.reveal_receive_many(message=message)
        return outcomes

    harness.answer_published_reveals = answer_published

    # --breakdown: each step's wall time in a campaign (inclusive of the steps it calls), by step.
    step_times: dict[str, float] = collections.defaultdict(float)
    breakdown: dict[str, dict[str, list[float]]] = collections.defaultdict(
        lambda: collections.defaultdict(list)
    )
    if args.breakdown:
        from apps.certificates import criteria as criteria_module
        from apps.runs.services import campaigns as campaigns_module
        from apps.runs.services import messages as messages_module

        def clocked(module, name: str, label: str) -> None:
            function = getattr(module, name)

            def timed(*a, **kw):
                t = time.perf_counter()
                try:
                    return function(*a, **kw)
                finally:
                    if not preparing:
                        step_times[label] += time.perf_counter() - t

            setattr(module, name, timed)

        for module, name, label in (
            (ingestion_module, "_result_ingest", "ingestion (all)"),
            (ingestion_module, "_validate", "ingestion: validation"),
            (ingestion_module, "reveal_draw", "round: draw at ingestion"),
            (ingestion_module, "reveal_requests_publish", "round: requests claimed and published"),
            (reveal_service, "reveal_plans_draw", "round: plans drawn at dispatch"),
            (reveal_service, "reveal_receive_many", "round: answer (all)"),
            (messages_module, "message_payload", "round: answer parsed"),
            (messages_module, "_verified_payload", "round: answer verified"),
            (reveal_service, "_judge", "round: answer judged"),
            (reveal_service, "audit_record_many", "round: answers' audit events"),
            (campaigns_module, "campaign_check_completion", "completion and evaluation"),
            (ingestion_module, "campaign_check_completion", "completion and evaluation"),
            (criteria_module, "_reveal", "evaluation: reveal criterion"),
        ):
            clocked(module, name, label)
        # Every publish, the reveal_prepare tasks the bench publishes in dispatch's place included.
        clocked(celery_app, "send_task", "publishes (all)")

    from apps.runs.services import campaigns as campaigns_for_own

    own_step(campaigns_for_own, "campaign_check_completion", "completion")

    def campaign_time(program, precompute: bool = True, label: str = "") -> tuple[float, float, list]:
        """(platform time on the campaign's path, platform time of the references precomputed while
        the runner runs, the reveals)."""
        nonlocal runner_side, prepare_side, runner_cpu, prepare_cpu, spot_full, last_cpu
        spot_full = label == "full"
        # The vendor's registration (organization, chip, target, model artifact) is no part of the
        # campaign: done before the clock starts.
        vendor = OrganizationFactory(kind=OrganizationKind.VENDOR)
        target = harness.cpu_target(vendor=vendor)
        ModelArtifactFactory(
            owner=vendor,
            name=real.model_name,
            architecture="bert-encoder",
            task="text-embedding",
            config=harness.BERT_CONFIG,
            content=real.weights,
            tensor_count=0,
        )
        runner_side = prepare_side = runner_cpu = prepare_cpu = 0.0
        statements = 0

        def count(execute, sql, params, many, context):
            nonlocal statements
            statements += not preparing  # the references' precomputation is off the path
            return execute(sql, params, many, context)

        events = AuditEvent.objects.count()
        step_times.clear()
        own.update(round=0.0, plans=0.0, completion=0.0)
        # Every campaign starts from a collected heap: the garbage of the variant before (parsed
        # documents, tensors) would otherwise be collected in whichever campaign runs next, a full
        # collection landing at random in one variant of a round (per-round ratios from -13% to +50% at
        # load 1 before session 28).
        gc.collect()
        t, c = time.perf_counter(), time.process_time()
        with connection.execute_wrapper(count):
            campaign = campaign_from_runner(
                vendor=vendor, program=program, level=args.level, precompute=precompute, target=target
            )
        wall = time.perf_counter() - t
        # Every statement this process sent on the campaign's path.
        sql_counts[(program.code + label, precompute)] = (statements, AuditEvent.objects.count() - events)
        # This process's CPU time on the path (the database server's is not in it): steadier than the
        # wall clock on a loaded host.
        last_cpu = time.process_time() - c - runner_cpu - prepare_cpu
        reveals = list(OutputReveal.objects.filter(job__campaign=campaign).select_related("job"))
        assert reveals or program == program_without
        assert all(r.state == RevealState.VERIFIED for r in reveals), [
            (r.job.suite, r.state, r.findings) for r in reveals
        ]
        return wall - runner_side - prepare_side, prepare_side, reveals

    import contextlib

    import torch

    drawn_once = ingestion_module.drawn_cases_kept
    cpu_times: dict[str, list[float]] = collections.defaultdict(list)
    own_times: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    sql_counts: dict[tuple[str, bool], tuple[int, int]] = {}
    default_threads = torch.get_num_threads()
    started = time.perf_counter()
    campaign_time(program_without)  # warm-up, unmeasured: the process's first campaign of each kind
    campaign_time(program_without, label="full")
    campaign_time(program, precompute=False)
    campaign_time(program)
    cpu_times.clear()
    print(f"warm-up campaigns (not counted): {time.perf_counter() - started:.1f}s")
    walls: dict[str, list[float]] = collections.defaultdict(list)
    shares, prepared, prepared_cpu, loads = [], [], [], []
    names = {
        "plain": "without the round",
        "full": "without the round, full spot check",
        "inline": "with it, references computed on arrival",
        "precomputed": "with it, precomputed references",
        "threads": f"with it, inline on {default_threads} threads",
        "redraw": "with it, precomputed, every case drawn again (before session 25)",
    }
    for index in range(args.rounds):
        spot_seed = index + 1  # the five spot-checked cases of this round, the same in every variant
        # Interleaved, and the order rotated each round: no variant always runs first or last.
        variants = ["plain", "inline", "precomputed", "full"] + (["threads"] if args.before else [])
        variants += ["redraw"] if args.redraw else []
        variants = variants[index % len(variants) :] + variants[: index % len(variants)]
        outcome = {}
        for variant in variants:
            if variant in ("plain", "full"):
                outcome[variant] = campaign_time(program_without, label="full" if variant == "full" else "")
            elif variant == "inline":  # the references computed when the reveal arrives (the race)
                outcome[variant] = campaign_time(program, precompute=False)
            elif variant == "redraw":  # ingestion as before session 25: each check draws the cases anew
                ingestion_module.drawn_cases_kept = contextlib.nullcontext
                outcome[variant] = campaign_time(program, label="redraw")
                ingestion_module.drawn_cases_kept = drawn_once
            elif variant == "threads":  # the same round judged on torch's default threads in the reveal
                reveal_service.REVEAL_TORCH_THREADS = default_threads
                outcome[variant] = campaign_time(program, precompute=False, label="threads")
                reveal_service.REVEAL_TORCH_THREADS = 1
            else:
                outcome[variant] = campaign_time(program)
            walls[variant].append(outcome[variant][0])
            for label, seconds in step_times.items():
                breakdown[variant][label].append(seconds)
            own_times[variant].append((own["round"] - own["completion"], own["plans"]))
            cpu_times[variant].append(last_cpu)
            if variant == "precomputed":
                prepared_cpu.append(prepare_cpu)
        loads.append(os.getloadavg()[0])
        timed, ahead, reveals = outcome["precomputed"]
        sources = sorted({c.get("reference", "-") for r in reveals for c in r.checked})
        t = time.perf_counter()
        for reveal in reveals:
            commitment_problems(document=real.documents[reveal.job.suite])
        round_s = sum(r.server_seconds or 0.0 for r in reveals) + time.perf_counter() - t
        requested = sum(len(r.requested) for r in reveals)
        print(
            f"round {index + 1} (order {', '.join(variants)}; load {loads[-1]:.1f}): "
            + ", ".join(f"{names[v]} {outcome[v][0]:.2f}s" for v in outcome)
            + f" (+{ahead:.2f}s precomputing while the runner runs; {requested} outputs revealed, "
            f"references {sources}; the round's draw + judging {round_s:.3f}s)"
        )
        shares.append(round_s)
        prepared.append(ahead)

    def ratio(variant: str, base: str = "plain", times: dict | None = None) -> float:
        times = times or walls
        return statistics.median(times[variant]) / statistics.median(times[base]) - 1

    def paired(variant: str, base: str, times: dict) -> str:
        each = [v / b - 1 for v, b in zip(times[variant], times[base], strict=True)]
        return f"{', '.join(f'{r:+.1%}' for r in each)} (median {statistics.median(each):+.1%})"

    print(f"load average after the rounds: {os.getloadavg()}; 1-min load after each round: {loads}")
    for times, what in ((walls, "platform-side wall time"), (cpu_times, "this process's CPU time")):
        print(
            f"{what} on the path (medians of {args.rounds}): "
            + ", ".join(f"{names[v]} {statistics.median(times[v]):.3f}s" for v in times)
        )
        print(
            f"  {what}: the round adds {ratio('precomputed', times=times):+.1%} with precomputed references "
            f"(per round {paired('precomputed', 'plain', times)}), {ratio('inline', times=times):+.1%} "
            f"judged on arrival; against the full spot check {ratio('precomputed', 'full', times):+.1%} "
            f"(per round {paired('precomputed', 'full', times)})"
        )
        if "redraw" in times:
            print(
                f"  {what}: with every case drawn again (before session 25) the round adds "
                f"{ratio('redraw', times=times):+.1%} (per round {paired('redraw', 'plain', times)}); the cut "
                f"saves {1 - statistics.median(times['precomputed']) / statistics.median(times['redraw']):.1%} "
                f"of that campaign's path (per round {paired('precomputed', 'redraw', times)})"
            )
    # The round's own steps (timed directly), plus its plans' draw beyond what the baseline's dispatch
    # spends on plans (it deletes any: its level draws none), against the baseline's median path.
    plans_base = statistics.median(p for _, p in own_times["plain"])
    own_round = [r + p - plans_base for r, p in own_times["precomputed"]]
    print(
        f"the round's own steps on the path, timed directly (medians of {args.rounds}): "
        f"{statistics.median(own_round) * 1e3:.1f} ms a campaign, "
        f"{statistics.median(own_round) / statistics.median(walls['plain']):+.1%} of the path without it "
        f"(per round {', '.join(f'{o / w:+.1%}' for o, w in zip(own_round, walls['plain'], strict=True))})"
    )
    if args.breakdown:
        print(f"steps of the path, wall time per campaign (medians of {args.rounds}; inclusive):")
        for label in sorted({label for times in breakdown.values() for label in times}):
            cells = [
                f"{names[v]} {statistics.median(breakdown[v][label] + [0.0] * (args.rounds - len(breakdown[v][label]))) * 1e3:.1f} ms"
                for v in ("plain", "precomputed")
            ]
            print(f"  {label}: " + ", ".join(cells))
    plain_sql, plain_events = sql_counts[(program_without.code, True)]
    full_sql, _ = sql_counts[(program_without.code + "full", True)]
    inline_sql, _ = sql_counts[(program.code, False)]
    timed_sql, timed_events = sql_counts[(program.code, True)]
    print(
        f"SQL statements on a campaign's path (last round): {plain_sql} without the round ({full_sql} with the "
        f"full spot check), {inline_sql} with it judged on arrival, {timed_sql} with precomputed references "
        f"(+{timed_sql - plain_sql}); audit events {plain_events} without, {timed_events} with "
        f"(+{timed_events - plain_events})"
    )
    work = [w + p for w, p in zip(walls["precomputed"], prepared, strict=True)]
    print(
        f"platform work including the references computed while the runner runs: "
        f"{statistics.median(work) / statistics.median(walls['plain']) - 1:+.1%} "
        f"(median {statistics.median(prepared):.2f}s of precomputation)"
    )
    # Which is better for the authority: the references of every planned output the draw could take,
    # computed while the runner runs (off the path, a shorter answer-to-verdict time), or only those of
    # the drawn outputs, after the draw (judged on arrival: less CPU in all)? This process's CPU time.
    path_cpu, ahead_cpu = statistics.median(cpu_times["precomputed"]), statistics.median(prepared_cpu)
    print(
        f"platform CPU in all (medians of {args.rounds}): precomputed references {path_cpu + ahead_cpu:.3f}s "
        f"({path_cpu:.3f}s on the path + {ahead_cpu:.3f}s while the runner runs); only the drawn outputs' "
        f"references, after the draw {statistics.median(cpu_times['inline']):.3f}s (all on the path)"
    )
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        campaign_time(program)
        profiler.disable()
        profiler.dump_stats(ROOT / "var" / "commit_reveal.prof")  # for pstats, e.g. print_callees
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
    with contextlib.suppress(Exception), celery_app.connection_for_write() as broker:
        broker.default_channel.queue_purge(BENCH_QUEUE)  # the published tasks nobody consumes
    # The verdict takes the larger of the two figures: the difference of the campaigns' medians (every
    # effect of the round, direct or not, and every shared step's noise: on a busy host one run of 25
    # rounds read +13% and the next +26%) and the round's own steps timed directly (steady, direct only).
    headline = ratio("precomputed")
    direct = statistics.median(own_round) / statistics.median(walls["plain"])
    verdict = "OK" if max(headline, direct) <= TARGET_RATIO else "ABOVE TARGET"
    print(
        f"commit–reveal adds {headline:+.1%} to a campaign's platform-side path (medians of {args.rounds}: "
        f"{statistics.median(walls['precomputed']):.2f}s with, {statistics.median(walls['plain']):.2f}s "
        f"without; the round itself {statistics.median(shares):.3f}s), its own steps timed directly "
        f"{direct:+.1%}; target <= {TARGET_RATIO:.0%} for both: {verdict}"
    )
    return 0 if verdict == "OK" else 1


def plan_size(document: dict) -> str:
    """How much a runner document holds: cases, measurements or models."""
    held = [f"{len(document[key])} {key}" for key in ("cases", "measurements") if document.get(key)]
    return " + ".join(held + [f"{len(document.get('commitment', {}).get('outputs', []))} committed outputs"])


def level_plan_documents(*, program, level: str, cache: Path):
    """The runner's documents for the level's own plan, run once on this CPU (the device's time, not the
    platform's), with the raw outputs kept for the reveal as a runner host keeps them.

    The plan is what campaign_submit builds for a job of the level on a CPU target (the spec dispatch
    sends), under tests/real_documents.py's session challenge. The documents and outputs are kept under
    `cache/<program>-<level>-<plan digest>` and reused while the plan, the torch version and this code's
    inputs are the same."""
    import hashlib

    import torch

    from apps.accounts.models import OrganizationKind
    from apps.registry.models import Architecture, ModelTask
    from apps.runs.models import Job
    from apps.runs.services.campaigns import campaign_submit
    from runners.backends import get_backend
    from runners.commitment import OutputCommitment, OutputStore
    from runners.models.seeded import seeded_weights_bytes
    from runners.spec import attempt_tag
    from runners.suites import run_suite
    from tests.factories import ChipFactory, HardwareTargetFactory, ModelArtifactFactory, OrganizationFactory
    from tests.real_documents import (
        BERT_CONFIG,
        CHALLENGE,
        MODEL_NAME,
        PLAN_KEYS,
        RUNNER_SPEC_PEAK_FP32,
        RunnerDocuments,
    )
    from tests.runs.world import identity_for

    vendor = OrganizationFactory(kind=OrganizationKind.VENDOR)
    chip = ChipFactory(
        vendor=vendor,
        peak_fp32_tflops=RUNNER_SPEC_PEAK_FP32,
        peak_bf16_tflops=None,
        peak_fp16_tflops=None,
        peak_int8_tops=None,
    )
    target = HardwareTargetFactory(
        chip=chip,
        backend="cpu",
        torch_version=torch.__version__,
        driver_version="",
        runtime_version="",
        device_count=1,
    )
    weights = seeded_weights_bytes("bert-encoder", BERT_CONFIG, seed=0)
    artifact = ModelArtifactFactory(
        owner=vendor,
        name=MODEL_NAME,
        architecture=Architecture.BERT_ENCODER,
        task=ModelTask.TEXT_EMBEDDING,
        config=BERT_CONFIG,
        content=weights,
        tensor_count=0,
    )
    campaign = campaign_submit(
        vendor=vendor, target=target, program=program, level=level, model_artifacts=[artifact]
    )
    specs = {}
    for job in Job.objects.filter(campaign=campaign).order_by("pk"):
        specs[job.suite] = {**job.spec, "job_id": "0", "challenge": CHALLENGE}
    # The model's file lives in this run's media folder: not part of the plan.
    plans = {
        suite: {k: v for k, v in json.loads(json.dumps(spec)).items() if k in PLAN_KEYS}
        for suite, spec in specs.items()
    }
    for plan in plans.values():
        for entry in plan.get("models", []):
            entry.pop("weights_path", None)
    digest = hashlib.sha256(
        json.dumps(
            [plans, torch.__version__, CHALLENGE, hashlib.sha256(weights).hexdigest()], sort_keys=True
        ).encode()
    ).hexdigest()[:12]
    folder = cache / f"{program.version}-{level}-{digest}"
    written = folder / "documents.json"
    if not written.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        output_root = folder / "outputs"
        output_root.mkdir(exist_ok=True)
        (folder / "weights.safetensors").write_bytes(weights)
        for spec in specs.values():  # the runner host's copy of the vendor's weights
            for entry in spec.get("models", []):
                entry["weights_path"] = str(folder / "weights.safetensors")
        documents, device = {}, {}
        for suite, spec in specs.items():
            started = time.perf_counter()
            documents[suite] = run_suite(
                spec,
                backend=get_backend("cpu"),
                progress=lambda fraction, label: None,
                commitment=OutputCommitment(OutputStore(output_root, attempt_tag(CHALLENGE))),
            )
            device[suite] = time.perf_counter() - started
            print(
                f"  runner: {suite} ran in {device[suite]:.1f}s (load {os.getloadavg()[0]:.1f})", flush=True
            )
        partial = folder / "documents.json.part"
        partial.write_text(json.dumps({"documents": documents, "runner_seconds": device}))
        os.replace(partial, written)
    kept = json.loads(written.read_text())
    print(
        f"runner's own time for the {level} plan (device side, not counted; from {folder}): "
        + ", ".join(f"{suite} {seconds:.0f}s" for suite, seconds in kept["runner_seconds"].items())
    )
    identity, pem = identity_for("real-runner")
    return RunnerDocuments(kept["documents"], identity, pem, weights, MODEL_NAME, folder / "outputs")


if __name__ == "__main__":
    sys.exit(main())
