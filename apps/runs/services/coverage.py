"""Does a result document cover exactly the job's plan, and does every case status follow from its stats?

The job's spec (frozen at submission, apps/runs/specs.py) is the plan; the document echoes the spec
its runner ran. A signed document is still the vendor's word: it may echo other options, omit
kernels, add cases or lie about a case's status. So ingestion compares:

- the echoed plan (suite, device, kernels, dtypes, cases, options with the timing policy, models)
  with the job's, key by key; a model by what identifies it, not by where its weights lay on a host;
- performance and model: the timing policy the document says its figures were measured with
  (``timing_policy``) with the one the plan gives the runner, the program's clock bounds included;
- conformance: the (kernel, dtype, case) records with the runners' own plan expansion
  (runners.conformance.planned_cases, so server and runner agree), none missing, none extra, none
  twice; each case's dimensions with the ones the job's challenge draws (the catalog declares
  ranges, not shapes); and each ran case's status recomputed from its stats and the catalog's
  tolerance;
- model: one ``models`` record per planned model and results only for planned models;
- serving: one record per planned model, and for each model that loaded its accuracy run and every
  scenario of the plan's settings with LoadGen's verdict and the sha256 of its two log files; and
  the TEST01 outputs kept during its timed runs at the positions the job's challenge draws
  (runners.served_outputs.reservoir_positions: a document replayed into another job shows others);
- performance: measurements and cases only in planned dtypes, and the output-consistency sample the
  job's challenge draws (a document replayed into another job shows another job's draw);
- the summary, recomputed from the cases (the portal and the judge read it).

Each function returns the problems found (empty when the document covers the plan).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from certification.recorded_text import Said, say

PLAN_KEYS = ("suite", "device", "kernels", "dtypes", "cases", "options")
MODEL_KEYS = ("name", "version", "task", "architecture", "config", "sha256")
SHOWN = 5  # problems of one kind named in the refusal; the rest are counted


def listed(code: str, items: Sequence[str], **params: Any) -> Said:
    """The phrase `code` naming the first SHOWN of `items` (and how many more there are)."""
    shown = [
        *items[:SHOWN],
        *([say("coverage.more", count=len(items) - SHOWN)] if len(items) > SHOWN else []),
    ]
    return say(code, items=", ".join(shown), **params)


def _model_identity(entry: Any) -> dict[str, Any]:
    return {key: entry.get(key) for key in MODEL_KEYS} if isinstance(entry, dict) else {"entry": entry}


def _spec_problems(echoed: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for key in PLAN_KEYS:
        if echoed.get(key) != plan.get(key):
            problems.append(
                say("coverage.spec", key=key, ran=repr(echoed.get(key)), planned=repr(plan.get(key)))
            )
    ran = [_model_identity(m) for m in echoed.get("models") or []]
    planned = [_model_identity(m) for m in plan.get("models") or []]
    if ran != planned:
        changed = sorted(
            {
                key
                for a, b in zip(ran, planned, strict=False)
                for key in MODEL_KEYS
                if a.get(key) != b.get(key)
            }
        )
        problems.append(
            say(
                "coverage.models_ran",
                ran=[m.get("name") for m in ran],
                planned=[m.get("name") for m in planned],
                keys=", ".join(changed) or say("coverage.models_count"),
            )
        )
    return problems


def _key(case: dict[str, Any]) -> tuple[str, str, str]:
    return str(case.get("kernel")), str(case.get("dtype")), str(case.get("case"))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def case_status_recomputed(stats: Any, *, atol: float, rtol: float) -> tuple[str | None, str]:
    """The status the stats of a ran case imply under the catalog's tolerance, or (None, why) when
    the stats cannot be judged. Mirrors runners.conformance.compare: an element is outside tolerance
    when |out - ref| > atol + rtol * |ref|; the tolerance ratio is the worst element's share of its
    allowance (None when a NaN or infinity disagrees), so a pass has no mismatch and no ratio above 1."""
    if not isinstance(stats, dict):
        return None, say("coverage.no_stats")
    if _number(stats.get("atol")) != float(atol) or _number(stats.get("rtol")) != float(rtol):
        return None, say(
            "coverage.tolerance",
            atol=stats.get("atol"),
            rtol=stats.get("rtol"),
            catalog_atol=atol,
            catalog_rtol=rtol,
        )
    mismatches, fraction = _number(stats.get("mismatches")), _number(stats.get("mismatch_fraction"))
    ratio = _number(stats.get("tolerance_ratio"))
    if mismatches is None or fraction is None or mismatches < 0 or not 0 <= fraction <= 1:
        return None, say("coverage.no_mismatch_count")
    if (mismatches == 0) != (fraction == 0):
        return None, say("coverage.count_fraction")
    if mismatches > 0:
        return "fail", ""
    if ratio is not None and ratio > 1:  # absent for an empty output, None for an infinite ratio
        return None, say("coverage.ratio_above")
    return "pass", ""


def _conformance_problems(document: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    from runners.conformance import planned_cases

    # The shapes are drawn from the job's challenge: the same draw as the runner's (Case.draw).
    triples, unknown = planned_cases(
        plan.get("kernels"), plan.get("dtypes"), plan.get("cases"), str(plan.get("challenge") or "")
    )
    expected = {(kernel.name, dtype, case.name): (kernel, case) for kernel, dtype, case in triples}
    expected_unknown = {_key(record) for record in unknown}  # a spec naming what the catalog lacks
    seen: set[tuple[str, str, str]] = set()
    extra: list[str] = []
    twice: list[str] = []
    status: list[str] = []
    shapes: list[str] = []
    for case in document.get("cases") or []:
        key = _key(case)
        label = "/".join(key)
        if key in seen:
            twice.append(label)
            continue
        seen.add(key)
        if key in expected_unknown:
            continue
        if key not in expected:
            extra.append(label)
            continue
        kernel, planned = expected[key]
        if case.get("dims") != dict(planned.dims):
            shapes.append(
                say("coverage.shape", case=label, ran=repr(case.get("dims")), drawn=repr(dict(planned.dims)))
            )
        if case.get("status") in ("pass", "fail"):  # tuples: a hostile value may be unhashable
            tolerance = kernel.tolerance(planned, key[1])
            recomputed, why = case_status_recomputed(
                case.get("stats"), atol=tolerance.atol, rtol=tolerance.rtol
            )
            if recomputed != case.get("status"):
                status.append(
                    say("coverage.status_why", case=label, status=case.get("status"), why=why)
                    if why
                    else say("coverage.status", case=label, status=case.get("status"), recomputed=recomputed)
                )
    missing = ["/".join(key) for key in (expected.keys() | expected_unknown) - seen]
    problems: list[str] = []
    if missing:
        problems.append(listed("coverage.missing", sorted(missing), count=len(missing)))
    if extra:
        problems.append(listed("coverage.extra", extra, count=len(extra)))
    if twice:
        problems.append(listed("coverage.twice", twice, count=len(twice)))
    if shapes:
        problems.append(listed("coverage.shapes", shapes, count=len(shapes)))
    if status:
        problems.append(listed("coverage.statuses", status, count=len(status)))
    return problems


def _model_problems(document: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    planned = sorted(str(m.get("name")) for m in plan.get("models") or [] if isinstance(m, dict))
    records = [r for r in document.get("models") or [] if isinstance(r, dict)]
    recorded = sorted(str(r.get("name")) for r in records)
    problems: list[str] = []
    if recorded != planned:
        problems.append(say("coverage.models_recorded", recorded=recorded, planned=planned))
    from runners.model_suite import DTYPES

    # What the runner does with the plan's dtypes (runners/model_suite): unknown names are dropped.
    wanted = [d for d in (plan.get("options") or {}).get("model_dtypes", list(DTYPES)) if d in DTYPES]
    results = {(str(c.get("kernel")), c.get("dtype")) for c in document.get("cases") or []}
    absent = [
        f"{record.get('name')}/{dtype}"
        for record in records
        if record.get("loaded")
        for dtype in wanted
        if (str(record.get("name")), dtype) not in results
    ]
    loaded = {str(record.get("name")) for record in records if record.get("loaded")}
    absent += [  # a model that did not load still has its error case
        name for name in planned if name not in loaded and not any(model == name for model, _dtype in results)
    ]
    if absent:
        problems.append(listed("coverage.model_missing", absent))
    outside = sorted({str(c.get("kernel")) for c in document.get("cases") or []} - {*planned, "*"})
    if outside:
        problems.append(listed("coverage.model_outside", outside))
    dtypes = (plan.get("options") or {}).get("model_dtypes")
    if dtypes:
        stray = sorted(
            {
                str(c.get("dtype"))
                for c in document.get("cases") or []
                if c.get("dtype") not in (None, "*", *dtypes)
            }
        )  # "*": a model that did not load
        if stray:
            problems.append(listed("coverage.model_dtypes", stray))
    return problems


def _performance_problems(document: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    dtypes = ((plan.get("options") or {}).get("performance") or {}).get("dtypes")
    if not dtypes:
        return []
    allowed = (*dtypes, None)
    stray = sorted(
        {
            str(item.get("dtype"))
            for item in [*(document.get("measurements") or []), *(document.get("cases") or [])]
            if isinstance(item, dict) and item.get("dtype") not in allowed and item.get("kind") != "bandwidth"
        }
    )
    return [listed("coverage.performance_dtypes", stray)] if stray else []


DIGEST_LENGTH = 64


def _serving_problems(document: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    """A serving document covers its plan: one ``models`` record and one serving record per planned
    model, and for every model that loaded the accuracy run and each scenario of the plan's settings,
    each with LoadGen's verdict and the digests of its logs; nothing for a model outside the plan."""
    planned = sorted(str(m.get("name")) for m in plan.get("models") or [] if isinstance(m, dict))
    records = [r for r in document.get("models") or [] if isinstance(r, dict)]
    recorded = sorted(str(r.get("name")) for r in records)
    problems: list[str] = []
    if recorded != planned:
        problems.append(say("coverage.models_recorded", recorded=recorded, planned=planned))
    given = document.get("serving")
    serving: dict[str, Any] = given if isinstance(given, dict) else {}
    served = {str(m.get("name")): m for m in serving.get("models") or [] if isinstance(m, dict)}
    settings = ((plan.get("options") or {}).get("serving") or {}).get("scenarios")
    wanted = sorted(settings) if isinstance(settings, dict) else ["Offline", "Server", "SingleStream"]
    cases = {
        (str(c.get("kernel")), str(c.get("case"))) for c in document.get("cases") or [] if isinstance(c, dict)
    }
    absent: list[str] = []
    for record in records:
        name = str(record.get("name"))
        if not record.get("loaded"):
            continue
        model = served.get(name)
        if model is None:
            if not any(kernel == name for kernel, _case in cases):  # no error case either
                absent.append(say("coverage.no_serving_record", name=name))
            continue
        scenarios = model.get("scenarios")
        runs: dict[str, Any] = scenarios if isinstance(scenarios, dict) else {}
        for scenario in wanted:
            run = runs.get(scenario)
            if not isinstance(run, dict):
                absent.append(f"{name}/{scenario}")
                continue
            if run.get("ran") is False:  # MultiStream of a model that is not a vision model
                continue
            digests = (run.get("summary_sha256"), run.get("detail_sha256"))
            if not all(isinstance(d, str) and len(d) == DIGEST_LENGTH for d in digests):
                absent.append(say("coverage.no_log_digests", run=f"{name}/{scenario}"))
            if not isinstance(run.get("result_valid"), bool):
                absent.append(say("coverage.no_loadgen_result", run=f"{name}/{scenario}"))
            if (name, f"serving_{scenario}") not in cases:
                absent.append(say("coverage.no_case", run=f"{name}/{scenario}"))
        if (name, "serving_accuracy") not in cases:
            absent.append(say("coverage.no_accuracy_run", name=name))
        elif isinstance(runs.get("Server"), dict) and isinstance(runs["Server"].get("result_valid"), bool):
            problems += _served_outputs_problems(document, name, str(model.get("dtype")), runs)
        problems += _offline_kept_problems(document, name, runs)
    if absent:
        problems.append(listed("coverage.serving_missing", absent))
    outside = sorted({*served, *(k for k, _c in cases)} - {*planned, "*"})
    if outside:
        problems.append(listed("coverage.serving_outside", outside))
    return problems


def _offline_kept_problems(document: dict[str, Any], name: str, runs: dict[str, Any]) -> list[str]:
    """The Offline figure is the best of the model's VALID Offline runs, the one its serving record keeps
    (runners/serving OFFLINE_SIZING_RULE); the Offline figure and the Server search's check against the
    Offline throughput (runners/serving_rate.py) must both read that same kept run, by its digest."""
    offline = runs.get("Offline")
    kept = offline.get("summary_sha256") if isinstance(offline, dict) else None
    if not isinstance(kept, str):
        return []  # no Offline record: reported as missing above
    problems: list[str] = []
    for item in document.get("measurements") or []:
        params = item.get("params") if isinstance(item, dict) else None
        if not isinstance(params, dict) or params.get("model") != name:
            continue
        if item.get("kind") == "serving_qps" and params.get("scenario") == "Server":
            used = params.get("offline_summary_sha256")
        elif item.get("kind") == "serving_throughput" and params.get("scenario") == "Offline":
            used = params.get("summary_sha256")
        else:
            continue
        if used != kept:
            problems.append(
                say(
                    "coverage.offline_not_kept",
                    run=f"{name}/{params.get('scenario')}",
                    used=str(used)[:12],
                    kept=kept[:12],
                )
            )
    return problems


def _collectives_problems(document: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    """A collectives document ran on the plan's world size (the target's device count): below two
    devices it says not applicable and runs nothing; otherwise it has exactly the (collective, dtype,
    size) cases the runner's own plan expansion draws from the job's challenge, each judged status
    follows from its mismatch count under the runner's tolerance, and a bandwidth figure exists only
    for a passing case, with busbw = algbw * nccl-tests' factor and algbw = bytes / time."""
    from runners.collectives import plan_cases, tolerance_for
    from runners.collectives_plan import CollectivesSpecInvalid, bus_factor, settings

    section = document.get("collectives")
    if not isinstance(section, dict):
        return [say("coverage.no_collectives")]
    try:
        options = settings(plan)
    except CollectivesSpecInvalid as exc:
        return [say("coverage.collectives_plan", error=exc)]
    world = options["world_size"]
    if section.get("world_size") != world:
        return [say("coverage.collectives_world", ran=section.get("world_size"), planned=world)]
    cases = [c for c in document.get("cases") or [] if isinstance(c, dict)]
    if world < 2:
        if section.get("applicable") is not False or cases:
            return [say("coverage.collectives_one_device")]
        return []
    if section.get("applicable") is not True:
        return [say("coverage.collectives_not_applied", devices=world, reason=section.get("reason"))]
    planned = {
        (c["op"], c["dtype"], c["name"]): c for c in plan_cases(options, world, str(plan.get("challenge")))
    }
    seen = [(str(c.get("kernel")), str(c.get("dtype")), str(c.get("case"))) for c in cases]
    problems: list[str] = []
    missing = sorted("/".join(key) for key in set(planned) - set(seen))
    extra = sorted("/".join(key) for key in set(seen) - set(planned))
    twice = sorted({"/".join(key) for key in seen if seen.count(key) > 1})
    if missing:
        problems.append(listed("coverage.collectives_missing", missing))
    if extra:
        problems.append(listed("coverage.collectives_outside", extra))
    if twice:
        problems.append(listed("coverage.collectives_twice", twice))
    passing = set()
    wrong = []
    for case, key in zip(cases, seen, strict=True):
        if key not in planned or case.get("status") not in ("pass", "fail"):
            continue
        given = case.get("stats")
        stats: dict[str, Any] = given if isinstance(given, dict) else {}
        atol, rtol, _source = tolerance_for(planned[key], world)
        mismatches = stats.get("mismatches")
        follows = (
            stats.get("atol") == atol
            and stats.get("rtol") == rtol
            and isinstance(mismatches, int)
            and case["status"] == ("pass" if mismatches == 0 else "fail")
        )
        if not follows:
            wrong.append("/".join(key))
        elif case["status"] == "pass":
            passing.add(key)
    if wrong:
        problems.append(listed("coverage.collectives_statuses", wrong))
    unfounded = []
    for item in document.get("measurements") or []:
        params = item.get("params") if isinstance(item, dict) else None
        if not isinstance(params, dict):
            unfounded.append(str(item)[:80])
            continue
        key = (str(params.get("op")), str(item.get("dtype")), str(params.get("case")))
        figures = [params.get("algbw_gbps"), item.get("value"), params.get("time_s")]
        numbers = [
            float(v) for v in figures if isinstance(v, int | float) and not isinstance(v, bool) and v > 0
        ]
        consistent = key in passing and params.get("bytes") == planned[key]["bytes"] and len(numbers) == 3
        if consistent:
            algbw, busbw, seconds = numbers
            consistent = (
                abs(algbw - planned[key]["bytes"] / seconds / 1e9) <= 1e-9 * algbw
                and abs(busbw - algbw * bus_factor(planned[key]["op"], world)) <= 1e-9 * busbw
            )
        if not consistent:
            unfounded.append(str(item.get("name")))
    if unfounded:
        problems.append(listed("coverage.bandwidth", unfounded))
    return problems


def _timed_run_tags(runs: dict[str, Any]) -> set[str]:
    """The tags of every timed LoadGen run a model's serving record shows (runners/serving)."""
    tags = {name for name in ("SingleStream", "MultiStream") if isinstance(runs.get(name), dict)}
    if isinstance(runs.get("MultiStream"), dict) and runs["MultiStream"].get("ran") is False:
        tags.discard("MultiStream")
    offline = given if isinstance(given := runs.get("Offline"), dict) else {}
    tags |= {f"Offline-{i}" for i in range(len(offline.get("attempts") or []))}
    search = (runs.get("Server") or {}).get("search") or {}
    tags |= {f"Server-{i}" for i in range(len(search.get("steps") or []))}
    return tags


def _served_outputs_problems(
    document: dict[str, Any], name: str, dtype: str, runs: dict[str, Any]
) -> list[str]:
    """A served model's TEST01 item: one entry per timed run the serving record shows, each run's kept
    positions the ones the job's challenge draws for the number of completions it reports."""
    from runners.served_outputs import SAMPLES_PER_RUN, reservoir_positions, served_outputs_salt

    consistency = (document.get("integrity") or {}).get("output_consistency") or {}
    entries = consistency.get("items") if isinstance(consistency, dict) else None
    item = next(
        (
            i
            for i in entries or []
            if isinstance(i, dict) and i.get("suite") == "serving" and i.get("model") == name
        ),
        None,
    )
    if item is None or not isinstance(item.get("runs"), list) or not item["runs"]:
        return [say("coverage.no_served_sample", name=name)]
    challenge = str((document.get("spec") or {}).get("challenge"))
    wrong = []
    for run in item["runs"]:
        if not isinstance(run, dict):
            wrong.append("?")
            continue
        tag, completed, positions = run.get("tag"), run.get("completed"), run.get("positions")
        if (
            not isinstance(tag, str)
            or not isinstance(completed, int)
            or isinstance(completed, bool)
            or completed < 0
            or positions != reservoir_positions(challenge, served_outputs_salt(name, dtype, tag), completed)
        ):
            wrong.append(str(tag))
    kept = sum(len(r.get("positions") or []) for r in item["runs"] if isinstance(r, dict))
    problems: list[str] = []
    tags = [r.get("tag") for r in item["runs"] if isinstance(r, dict)]
    if sorted(map(str, tags)) != sorted(_timed_run_tags(runs)):
        problems.append(say("coverage.served_sample_runs", name=name))
    if wrong:
        problems.append(say("coverage.served_outputs_replayed", name=name, runs=", ".join(wrong[:SHOWN])))
    if item.get("sampled") != kept or kept > SAMPLES_PER_RUN * len(item["runs"]):
        problems.append(say("coverage.served_count", name=name))
    return problems


def _benchmark_samples(node: object) -> list[dict[str, Any]]:
    """Every per-benchmark TEST01 item (benchmark, dtype, rounds) anywhere under ``node``."""
    if isinstance(node, list):
        return [item for child in node for item in _benchmark_samples(child)]
    if not isinstance(node, dict):
        return []
    if "benchmark" in node and "rounds" in node:
        return [node]
    return [item for child in node.values() for item in _benchmark_samples(child)]


def _replay_problems(document: dict[str, Any]) -> list[str]:
    """The rounds whose outputs a performance run samples for TEST01 are drawn from the job's challenge
    (runners.integrity.OutputSampler, seeded per benchmark): a document replayed under another job's
    challenge shows rounds this challenge would not have drawn."""
    from runners.integrity import sampled_rounds

    challenge = str((document.get("spec") or {}).get("challenge"))
    consistency = (document.get("integrity") or {}).get("output_consistency") or {}
    wrong = []
    for item in _benchmark_samples(consistency):
        rounds = item.get("rounds")
        if (
            not isinstance(rounds, list)
            or not rounds
            or not all(isinstance(r, int) and r >= 0 for r in rounds)
        ):
            wrong.append(f"{item.get('benchmark')}:{item.get('dtype')}")
            continue
        salt = f"performance:{item.get('benchmark')}:{item.get('dtype')}"
        if rounds != sampled_rounds(challenge, salt, max(rounds)):
            wrong.append(f"{item.get('benchmark')}:{item.get('dtype')}")
    if wrong:
        return [say("coverage.rounds_replayed", items=", ".join(sorted(wrong)[:5]))]
    return []


def _timing_policy_problems(document: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    """A performance or model document states the timing policy its figures were measured with
    (``timing_policy``); it must be the one the job's plan gives the runner (runners/timing.py
    TimingPolicy from ``options.timing`` and ``options.quick``), the program's clock bounds included."""
    from dataclasses import asdict

    from runners.timing import TimingPolicy

    options = plan.get("options") or {}
    timing = options.get("timing") or {}
    if not isinstance(timing, dict):
        return [say("coverage.timing_malformed")]
    quick = bool(options.get("quick"))
    expected = {**asdict(TimingPolicy.from_dict({**timing, "quick": quick})), "quick": quick}
    stated = document.get("timing_policy")
    if not isinstance(stated, dict):
        return [say("coverage.timing_unstated")]
    differing = sorted(key for key in expected.keys() | stated.keys() if stated.get(key) != expected.get(key))
    if differing:
        differences = ", ".join(f"{k}={stated.get(k)!r}/{expected.get(k)!r}" for k in differing[:SHOWN])
        return [say("coverage.timing_other", differences=differences)]
    return []


def evidence_plan_problems(*, document: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    """Every way a schema-valid document departs from the job's plan (`plan` is the job's spec)."""
    from runners.document import summarize

    problems = _spec_problems(document.get("spec") or {}, plan)
    suite = plan.get("suite")
    if suite == "conformance":
        problems += _conformance_problems(document, plan)
    elif suite == "model":
        problems += _model_problems(document, plan) + _timing_policy_problems(document, plan)
    elif suite == "performance":
        problems += (
            _performance_problems(document, plan)
            + _replay_problems(document)
            + _timing_policy_problems(document, plan)
        )
    elif suite == "serving":
        problems += _serving_problems(document, plan)
    elif suite == "collectives":
        problems += _collectives_problems(document, plan)
    cases = document.get("cases") or []
    if document.get("summary") != summarize(cases):
        problems.append(say("coverage.summary"))
    return problems
