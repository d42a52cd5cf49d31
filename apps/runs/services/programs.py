"""Loading certification programs from their data files; an active program never changes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.audit.services import audit_record
from apps.runs.models import Program, ProgramStatus

PROGRAMS_DIR = Path(__file__).resolve().parent.parent / "programs"
SUITE_NAMES = {"conformance", "performance", "model"}
CRITERION_KINDS = {"conformance_pass_rate", "model_accuracy", "integrity", "claims", "performance_stability"}
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
    "reveal_sample",
}
DEFAULT_SPOT_CHECK_SIZE = 5
# Commit–reveal (issue 13) came with AIA 1.2. A program that does not state `reveal_sample` (AIA 1.0
# and 1.1, frozen as published) draws no reveal: its documents are judged as they were then.
REVEAL_RULES = {"uniform"}
LEGACY_REVEAL = {"size": 0, "rule": "none", "budget_elements": 0}
LEGACY_REVEAL_SOURCE = "AIA 1.0/1.1 predate commit–reveal (AIA 1.2): no reveal is drawn (frozen default)"


def _thresholds_check(code: str, level: dict) -> list[str]:
    """A level with thresholds states every one, each with a source; it publishes no quick-policy figure."""
    thresholds = level["thresholds"]
    if not isinstance(thresholds, dict):
        return [f"level {code}: thresholds must be an object"]
    problems = []
    missing, unknown = sorted(THRESHOLD_NAMES - set(thresholds)), sorted(set(thresholds) - THRESHOLD_NAMES)
    if missing:
        problems.append(f"level {code}: missing thresholds {missing}")
    if unknown:
        problems.append(f"level {code}: unknown thresholds {unknown}")
    for name, entry in thresholds.items():
        if not isinstance(entry, dict) or "value" not in entry or not str(entry.get("source") or "").strip():
            problems.append(f"level {code}: threshold {name} needs a value and a source")
    if isinstance(thresholds.get("reveal_sample"), dict):
        problems += _reveal_check(code, thresholds)
    for suite in ("performance", "model"):
        if (level.get("suites", {}).get(suite) or {}).get("quick"):
            problems.append(
                f"level {code}: the {suite} suite publishes figures and cannot use the quick timing policy"
            )
    approvals = level.get("required_approvals", 1)
    if not isinstance(approvals, int) or isinstance(approvals, bool) or approvals < 1:
        problems.append(f"level {code}: required_approvals must be a whole number of at least 1")
    return problems


def program_spot_check_size(*, program: Program, level: str) -> int:
    """How many cases of a document the server recomputes at ingestion (the level's spot_check_size)."""
    entry = ((program.level(level) or {}).get("thresholds") or {}).get("spot_check_size") or {}
    value = entry.get("value", DEFAULT_SPOT_CHECK_SIZE)
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_SPOT_CHECK_SIZE


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


def _reveal_check(code: str, thresholds: dict) -> list[str]:
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


def _canonical_sha256(definition: dict) -> str:
    return hashlib.sha256(json.dumps(definition, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def program_definition_check(definition: dict) -> None:
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


@transaction.atomic
def program_load(*, definition: dict, actor=None) -> tuple[Program, bool]:
    """Create or refresh a program from its definition. Returns (program, created).

    An active program's definition is frozen: loading different content under the same code and
    version is refused, because certificates already cite it. Publish a new version instead.
    """
    program_definition_check(definition)
    digest = _canonical_sha256(definition)
    existing = (
        Program.objects.select_for_update()
        .filter(code=definition["code"], version=definition["version"])
        .first()
    )
    if existing is not None:
        if existing.definition_sha256 == digest:
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
