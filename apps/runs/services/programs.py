"""Loading certification programs from their data files; an active program never changes."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_noop

from apps.audit.services import audit_record
from apps.registry.models import Architecture
from apps.runs.models import Program, ProgramStatus
from runners.canonical import canonical_json, legacy_canonical_text

PROGRAMS_DIR = Path(__file__).resolve().parent.parent / "programs"
SUITE_NAMES = {"conformance", "performance", "model", "serving", "collectives"}
CRITERION_KINDS = {
    "conformance_pass_rate",
    "model_accuracy",
    "model_architectures",
    "integrity",
    "claims",
    "performance_stability",
    "serving",
    "semantic_cases",
    "collectives",
}
# The bars a judgement uses (apps/certificates/judge.py). From AIA 1.2 every level states each one as
# {"value": ..., "source": "..."}; older versions keep their numbers in criterion params.
THRESHOLD_NAMES = {
    "conformance_min_pass_rate",
    "unsupported_tolerated",
    "accuracy",
    "claims_min_ratio",
    "above_peak_ratio",
    "test01_max_mismatches",
    "test01_tolerance",
    "test04_max_speedup",
    "max_unstable_fraction",
    "spot_check_size",
    "accepted_math_modes",
    # Issue 13 (AIA 1.2): the semantic-case rule.
    "semantic_cases",
    "clock_ratio_bounds",
    "serving",
    "reveal_sample",
}
# Thresholds a level may state (not every level has their subject). fp8_accuracy (AIA 1.3 draft,
# issue 16): the accuracy bars of an FP8-path model run (apps/certificates/judge.py FP8_ACCURACY), stated
# by a level whose model plan asks for FP8 computation (``fp8_compute``).
OPTIONAL_THRESHOLD_NAMES = {"fp8_accuracy"}
# What a level's `serving` threshold must state for each scenario (the runner's LoadGen settings).
SERVING_REQUIRED_SCENARIOS = ("SingleStream", "Offline", "Server")
SERVING_SCENARIO_FIELDS = {
    "SingleStream": ("min_duration_ms", "min_query_count", "percentile"),
    "MultiStream": ("min_duration_ms", "min_query_count", "percentile", "samples_per_query"),
    "Server": ("min_duration_ms", "min_query_count", "percentile", "latency_bound_ms"),
    "Offline": ("min_duration_ms", "min_query_count"),
}
DEFAULT_SPOT_CHECK_SIZE = 5
# The bars the runner itself applies while it runs (it refuses a figure whose timing events disagree
# with the host clock; it marks a TEST04 probe pass or fail), which the job spec carries to it. AIA 1.0
# and 1.1 never stated them: these are the values the platform's runner applied when they were in
# force, frozen here so their jobs and documents are judged as they were (apps/certificates/judge.py
# reads the same table). From AIA 1.2 each is a threshold of the level, with its source.
LEGACY_TEST04_MAX_SPEEDUP = 0.10
LEGACY_CLOCK_RATIO_BOUNDS = {"min": 0.5, "max": 1.05}
# Issue 13 (AIA 1.2): what every level of a program that states its thresholds must hold as a blocker,
# so that no level can be certified past a failed integrity check, an impossible figure, a broken
# semantic case or an unjudged model dtype.
REQUIRED_INTEGRITY_CHECKS = (
    "fingerprint",
    "output_consistency",
    "caching",
    "timing",
    "server_verdicts",
    "reveal",
)
# Commit–reveal (issue 13) came with AIA 1.2. A program that does not state `reveal_sample` (AIA 1.0
# and 1.1, frozen as published) draws no reveal: its documents are judged as they were then.
REVEAL_RULES = {"uniform"}
LEGACY_REVEAL: dict[str, Any] = {"size": 0, "rule": "none", "budget_elements": 0}
LEGACY_REVEAL_SOURCE = gettext_noop(
    "AIA 1.0/1.1 predate commit–reveal (AIA 1.2): no reveal is drawn (frozen default)"
)


def _thresholds_check(code: str, level: dict[str, Any]) -> list[str]:
    """A level with thresholds states every one, each with a source; it publishes no quick-policy figure."""
    thresholds = level["thresholds"]
    if not isinstance(thresholds, dict):
        return [f"level {code}: thresholds must be an object"]
    problems = []
    missing = sorted(THRESHOLD_NAMES - set(thresholds))
    unknown = sorted(set(thresholds) - THRESHOLD_NAMES - OPTIONAL_THRESHOLD_NAMES)
    if missing:
        problems.append(f"level {code}: missing thresholds {missing}")
    if unknown:
        problems.append(f"level {code}: unknown thresholds {unknown}")
    for name, entry in thresholds.items():
        if not isinstance(entry, dict) or "value" not in entry or not str(entry.get("source") or "").strip():
            problems.append(f"level {code}: threshold {name} needs a value and a source")
    bounds = (thresholds.get("clock_ratio_bounds") or {}).get("value")
    if "clock_ratio_bounds" in thresholds and not (
        isinstance(bounds, dict)
        and all(
            isinstance(bounds.get(k), int | float) and not isinstance(bounds.get(k), bool)
            for k in ("min", "max")
        )
        and 0 < bounds["min"] <= 1 <= bounds["max"]
    ):
        problems.append(f"level {code}: clock_ratio_bounds needs numbers min <= 1 <= max, min above 0")
    serving = (thresholds.get("serving") or {}).get("value") if "serving" in thresholds else None
    if serving is not None:
        problems += _serving_settings_check(code, serving)
    if isinstance(thresholds.get("reveal_sample"), dict):
        problems += _reveal_check(code, thresholds)
    for suite in ("performance", "model"):
        if (level.get("suites", {}).get(suite) or {}).get("quick"):
            problems.append(
                f"level {code}: the {suite} suite publishes figures and cannot use the quick timing policy"
            )
    problems += _loophole_problems(code, level)
    approvals = level.get("required_approvals", 1)
    if not isinstance(approvals, int) or isinstance(approvals, bool) or approvals < 1:
        problems.append(f"level {code}: required_approvals must be a whole number of at least 1")
    return problems


def _fp8_check(code: str, level: dict[str, Any]) -> list[str]:
    """A model plan that asks for FP8 computation needs the level's FP8 bars (an FP8-path run is judged
    by them, never by the bfloat16 bar), and FP8 bars are numbers in (0, 1] with an agreement bar."""
    thresholds = level.get("thresholds") or {}
    asks = ((level.get("suites") or {}).get("model") or {}).get("fp8_compute")
    if asks not in (None, True, False):
        return [f"level {code}: the model suite's fp8_compute must be true or false"]
    if "fp8_accuracy" not in thresholds:
        return (
            [f"level {code}: the model suite asks for fp8_compute, so the level states fp8_accuracy"]
            if asks
            else []
        )
    bars = (thresholds.get("fp8_accuracy") or {}).get("value")
    if (
        not isinstance(bars, dict)
        or "greedy_token_agreement" not in bars
        or not all(_positive(v) and v <= 1 for v in bars.values())
    ):
        return [
            f"level {code}: fp8_accuracy needs a greedy_token_agreement bar, every bar a number in (0, 1]"
        ]
    return []


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _serving_settings_check(code: str, serving: Any) -> list[str]:
    """The serving settings a runner's LoadGen receives: every required scenario with positive numbers,
    percentiles in (0, 1), and no exploration override (a program's settings are certifying)."""
    if not isinstance(serving, dict) or not isinstance(serving.get("scenarios"), dict):
        return [f"level {code}: the serving threshold needs scenarios"]
    problems = []
    scenarios = serving["scenarios"]
    if "duration_override_ms" in serving:
        problems.append(f"level {code}: serving settings cannot carry an exploration override")
    missing = [name for name in SERVING_REQUIRED_SCENARIOS if name not in scenarios]
    if missing:
        problems.append(f"level {code}: serving scenarios missing {missing}")
    for name, settings in scenarios.items():
        fields = SERVING_SCENARIO_FIELDS.get(name)
        if fields is None or not isinstance(settings, dict):
            problems.append(f"level {code}: unknown serving scenario {name!r}")
            continue
        for field in fields:
            value: Any = settings.get(field)
            if not _positive(value) or (field == "percentile" and value >= 1):
                problems.append(f"level {code}: serving {name}.{field} must be a positive number")
    return problems


def _loophole_problems(code: str, level: dict[str, Any]) -> list[str]:
    """Issue 13: integrity checks, claims (impossible figures) and semantic cases are blockers at every
    level, and every model dtype the level names has a blocker accuracy criterion of its own."""
    blockers = [c for c in level.get("criteria", []) if isinstance(c, dict) and c.get("blocker") is True]

    def params(criterion: dict[str, Any]) -> dict[str, Any]:
        given = criterion.get("params")
        return given if isinstance(given, dict) else {}

    problems = []
    checks = {params(c).get("check") for c in blockers if c.get("kind") == "integrity"}
    missing = [check for check in REQUIRED_INTEGRITY_CHECKS if check not in checks]
    if missing:
        problems.append(f"level {code}: integrity checks {missing} must be blocker criteria")
    if not any(
        c.get("kind") == "claims"
        and params(c).get("above_peak") == "any_figure"
        and params(c).get("dtypes") == "declared"
        for c in blockers
    ):
        problems.append(
            f"level {code}: a blocker claims criterion must judge every declared dtype and every figure "
            '(params {"dtypes": "declared", "above_peak": "any_figure"})'
        )
    conformance = (level.get("suites", {}).get("conformance") or {}).get("dtypes") or []
    semantic = {
        d for c in blockers if c.get("kind") == "semantic_cases" for d in params(c).get("dtypes") or []
    }
    if conformance and not set(conformance) <= semantic:
        problems.append(
            f"level {code}: semantic cases of {sorted(set(conformance) - semantic)} need a blocker criterion"
        )
    model = (level.get("suites", {}).get("model") or {}).get("dtypes") or []
    judged = {params(c).get("dtype") for c in blockers if c.get("kind") == "model_accuracy"}
    if sorted(set(model) - judged):
        problems.append(
            f"level {code}: model dtypes {sorted(set(model) - judged)} need a blocker accuracy criterion"
        )
    return problems


def program_spot_check_size(*, program: Program, level: str) -> int:
    """How many cases of a document the server recomputes at ingestion (the level's spot_check_size)."""
    entry = ((program.level(level) or {}).get("thresholds") or {}).get("spot_check_size") or {}
    value = entry.get("value", DEFAULT_SPOT_CHECK_SIZE)
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_SPOT_CHECK_SIZE


def program_runner_bars(*, program: Program | dict[str, Any], level: str) -> dict[str, Any]:
    """The bars the job spec hands the runner (apps/runs/specs.py): the level's TEST04 bound and clock
    cross-check bounds, or the frozen values for a program that states no thresholds (AIA 1.0/1.1).

    ``program`` is a Program row or its definition dict. Returns ``{"caching_threshold": float,
    "clock_ratio_min": float, "clock_ratio_max": float}``."""
    definition = program if isinstance(program, dict) else program.definition
    spec = next((lvl for lvl in definition.get("levels", []) if lvl.get("code") == level), None) or {}
    stated = spec.get("thresholds")
    if not isinstance(stated, dict):
        speedup, bounds = LEGACY_TEST04_MAX_SPEEDUP, LEGACY_CLOCK_RATIO_BOUNDS
    else:
        speedup = (stated.get("test04_max_speedup") or {}).get("value", LEGACY_TEST04_MAX_SPEEDUP)
        bounds = (stated.get("clock_ratio_bounds") or {}).get("value") or LEGACY_CLOCK_RATIO_BOUNDS
    return {
        "caching_threshold": float(speedup),
        "clock_ratio_min": float(bounds["min"]),
        "clock_ratio_max": float(bounds["max"]),
    }


@dataclass(frozen=True)
class RevealPolicy:
    """A level's reveal: how many committed outputs the platform asks the runner to reveal after
    storing its document, how it draws them, and the recomputation budget of one document's sample."""

    size: int
    rule: str
    budget_elements: int
    source: str


def program_reveal_policy(*, program: Program, level: str) -> RevealPolicy:
    entry = ((program.level(level) or {}).get("thresholds") or {}).get("reveal_sample")
    if not isinstance(entry, dict):
        return RevealPolicy(**LEGACY_REVEAL, source=LEGACY_REVEAL_SOURCE)
    value = entry.get("value") or {}
    return RevealPolicy(
        int(value["size"]), str(value["rule"]), int(value["budget_elements"]), str(entry.get("source") or "")
    )


def _reveal_check(code: str, thresholds: dict[str, Any]) -> list[str]:
    value = (thresholds.get("reveal_sample") or {}).get("value")
    if not isinstance(value, dict):
        return [f'level {code}: reveal_sample is {{"size": n, "rule": ...}}']
    size = value.get("size")
    problems = []
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= 1000:
        problems.append(f"level {code}: reveal_sample size must be a whole number from 0 to 1000")
    budget = value.get("budget_elements")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
        problems.append(f"level {code}: reveal_sample budget_elements must be a whole number")
    if value.get("rule") not in REVEAL_RULES:
        problems.append(f"level {code}: reveal_sample rule must be one of {sorted(REVEAL_RULES)}")
    return problems


def _canonical_sha256(definition: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(definition)).hexdigest()


def _legacy_sha256(definition: dict[str, Any]) -> str:
    """The digest of programs loaded before RFC 8785: the same definition still matches it."""
    return hashlib.sha256(legacy_canonical_text(definition).encode()).hexdigest()


def program_definition_check(definition: dict[str, Any]) -> None:
    """Refuse a definition that the platform could not run or evaluate."""
    problems = []
    effective = definition.get("effective")
    if effective is not None:
        try:
            date.fromisoformat(str(effective))
        except ValueError:
            problems.append(f"effective must be a date (YYYY-MM-DD), not {effective!r}")
    for key in ("code", "version", "title", "validity_days", "surveillance_days", "levels"):
        if key not in definition:
            problems.append(f"missing {key}")
    levels = definition.get("levels") or []
    if not levels:
        problems.append("a program has at least one level")
    ranks = [lvl.get("rank") for lvl in levels]
    if len(set(ranks)) != len(ranks):
        problems.append("level ranks must be distinct")
    for level in levels:
        code = level.get("code", "?")
        unknown_suites = set(level.get("suites", {})) - SUITE_NAMES
        if unknown_suites:
            problems.append(f"level {code}: unknown suites {sorted(unknown_suites)}")
        if "collectives" in level.get("suites", {}):
            problems += _collectives_plan_check(code, level["suites"]["collectives"])
        problems += _architectures_check(code, level)
        problems += _fp8_check(code, level)
        ids = [c.get("id") for c in level.get("criteria", [])]
        if len(set(ids)) != len(ids):
            problems.append(f"level {code}: criterion ids must be distinct")
        for criterion in level.get("criteria", []):
            if criterion.get("kind") not in CRITERION_KINDS:
                problems.append(
                    f"level {code}: criterion {criterion.get('id')} has unknown kind {criterion.get('kind')!r}"
                )
            if not isinstance(criterion.get("blocker"), bool):
                problems.append(
                    f"level {code}: criterion {criterion.get('id')} must say whether it is a blocker"
                )
        if "thresholds" in level:
            problems += _thresholds_check(code, level)
    if problems:
        raise ValidationError("; ".join(problems))


def _architectures_check(code: str, level: dict[str, Any]) -> list[str]:
    """A level's required model architectures (the model suite's ``required_architectures`` and the
    ``model_architectures`` criteria) are architectures the registry accepts, and a criterion that
    requires one has a model suite whose plan requires it too (else no campaign could satisfy it)."""
    known = set(Architecture.values)
    plan = (level.get("suites") or {}).get("model") or {}
    planned = plan.get("required_architectures", [])
    problems = [f"level {code}: unknown architecture {a!r}" for a in planned if a not in known]
    for criterion in level.get("criteria", []):
        if criterion.get("kind") != "model_architectures":
            continue
        params = criterion.get("params") or {}
        wanted = params.get("architectures") or []
        if not wanted or not params.get("dtypes"):
            problems.append(f"level {code}: criterion {criterion.get('id')} names no architecture or dtype")
        problems += [
            f"level {code}: criterion {criterion.get('id')} requires {a!r}, which the model suite does not"
            for a in wanted
            if a not in planned
        ]
    return problems


def _collectives_plan_check(code: str, plan: Any) -> list[str]:
    """A level's collectives plan names only what the level decides (ops, dtypes, sizes, warmup,
    iterations; the device count and interconnect are the target's) with values the runner accepts."""
    from apps.runs.specs import COLLECTIVES_PLAN_KEYS
    from runners.collectives_plan import CollectivesSpecInvalid, settings

    if not isinstance(plan, dict):
        return [f"level {code}: the collectives plan must be an object"]
    unknown = sorted(set(plan) - set(COLLECTIVES_PLAN_KEYS))
    if unknown:
        return [f"level {code}: the collectives plan may not set {unknown}"]
    try:
        settings({"options": {"collectives": plan}})
    except CollectivesSpecInvalid as exc:
        return [f"level {code}: collectives plan: {exc}"]
    return []


@transaction.atomic
def program_load(*, definition: dict[str, Any], actor: Any = None) -> tuple[Program, bool]:
    """Create or refresh a program from its definition. Returns (program, created).

    An active program's definition is frozen: loading different content under the same code and
    version is refused, because certificates already cite it. Publish a new version instead.
    The program keeps its own copy: a later change to the caller's dict cannot reach it.
    """
    definition = copy.deepcopy(definition)
    program_definition_check(definition)
    digest = _canonical_sha256(definition)
    existing = (
        Program.objects.select_for_update()
        .filter(code=definition["code"], version=definition["version"])
        .first()
    )
    if existing is not None:
        if existing.definition_sha256 in (digest, _legacy_sha256(definition)):
            return existing, False
        if existing.status != ProgramStatus.DRAFT:
            raise ValidationError(
                f"Program {existing} is {existing.status} and immutable; publish its changes as a new version."
            )
        existing.definition, existing.definition_sha256 = definition, digest
        existing.title = definition["title"]
        existing.save()
        audit_record(
            action="program.reloaded",
            obj=existing,
            actor=actor,
            payload={"code": existing.code, "version": existing.version, "definition_sha256": digest},
        )
        return existing, False
    program = Program.objects.create(
        code=definition["code"],
        version=definition["version"],
        title=definition["title"],
        status=definition.get("status", ProgramStatus.ACTIVE),
        definition=definition,
        definition_sha256=digest,
        validity_days=definition["validity_days"],
        surveillance_days=definition["surveillance_days"],
        required_approvals=definition.get("required_approvals", 1),
    )
    audit_record(
        action="program.loaded",
        obj=program,
        actor=actor,
        payload={
            "code": program.code,
            "version": program.version,
            "status": program.status,
            "definition_sha256": digest,
        },
    )
    return program, True


def program_files() -> list[Path]:
    return sorted(PROGRAMS_DIR.glob("*.json"))


def programs_load_all() -> list[tuple[Program, bool]]:
    return [program_load(definition=json.loads(path.read_text())) for path in program_files()]
