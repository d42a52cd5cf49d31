"""Export-control classification of a chip from its declared dense peaks, by a versioned rule file.

The thresholds live in JSON files under rules/ (one file per version of the rule); a change of the
regulation is a new file, never a code edit. The result is informational, not a legal classification.
Conditions are three-valued: with no die area the performance density (PD) is unknown, so a class
that depends on PD is "cannot be decided" rather than guessed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from django.conf import settings

from certification.recorded_text import say

RULES_DIR = Path(__file__).resolve().parent / "rules"
UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class Rule:
    """One version of the classification rule, as read from its file."""

    id: str
    title: str
    date: str
    effective: str
    source: str
    notice: str
    tpp_formula: str
    bit_length: dict[str, int]
    exclusions: list[dict]
    classes: list[dict]
    otherwise: dict

    def class_codes(self) -> list[str]:
        """Every code a classification under this rule can have, in the rule's order."""
        return [
            *(item["code"] for item in self.exclusions),
            *(item["code"] for item in self.classes),
            self.otherwise["code"],
            UNDETERMINED,
        ]


def rules_dir() -> Path:
    return Path(getattr(settings, "EXPORT_CONTROL_RULES_DIR", RULES_DIR))


def rule_load(*, path: Path) -> Rule:
    data = json.loads(Path(path).read_text())
    return Rule(
        id=data["id"],
        title=data["title"],
        date=data["date"],
        effective=data.get("effective", data["date"]),
        source=data.get("source", ""),
        notice=data.get("notice", "Informational only."),
        tpp_formula=data["tpp"]["formula"],
        bit_length={key: int(value) for key, value in data["tpp"]["bit_length"].items()},
        exclusions=list(data.get("exclusions", [])),
        classes=list(data["classes"]),
        otherwise=dict(data["otherwise"]),
    )


def rule_current(*, on: date | None = None) -> Rule:
    """The rule version in force on `on` (today): the latest effective date not after it."""
    on = on or date.today()
    rules = sorted((rule_load(path=path) for path in rules_dir().glob("*.json")), key=lambda r: r.effective)
    in_force = [rule for rule in rules if date.fromisoformat(rule.effective) <= on]
    if not rules:
        raise FileNotFoundError(f"No export-control rule file in {rules_dir()}")
    return (in_force or rules)[-1]


@dataclass
class Classification:
    code: str
    possible: list[str]
    tpp: float | None
    tpp_precision: str | None
    pd: float | None
    die_area_mm2: float | None
    data_center: bool
    explanation: list[str] = field(default_factory=list)
    rule_id: str = ""
    rule_date: str = ""
    notice: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _tri_all(values: list[bool | None]) -> bool | None:
    if any(value is False for value in values):
        return False
    return None if any(value is None for value in values) else True


def _tri_any(values: list[bool | None]) -> bool | None:
    if any(value is True for value in values):
        return True
    return None if any(value is None for value in values) else False


def _condition(cond: dict, *, tpp: float | None, pd: float | None, data_center: bool) -> bool | None:
    checks: list[bool | None] = []
    for key, bound in cond.items():
        if key == "data_center":
            checks.append(data_center == bound)
            continue
        figure = tpp if key.startswith("tpp") else pd
        if figure is None:
            checks.append(None)
        elif key.endswith("_min"):
            checks.append(figure >= bound)
        else:  # *_below
            checks.append(figure < bound)
    return _tri_all(checks)


def _verdict(value: bool | None) -> str:
    """The suffix of a phrase of certification.recorded_text (export.exclusion_*, export.class_*)."""
    return {True: "met", False: "not_met", None: "undecided"}[value]


def tpp_of(*, peaks: dict[str, float], rule: Rule) -> tuple[float | None, str | None]:
    """The maximum over precisions of 2 x MacTOPS x bit length (= dense peak x bit length)."""
    best: tuple[float | None, str | None] = (None, None)
    for dtype, peak in peaks.items():
        bits = rule.bit_length.get(dtype)
        if bits is None or peak is None:
            continue
        tpp = 2 * (peak / 2) * bits
        if best[0] is None or tpp > best[0]:
            best = (tpp, dtype)
    return best


def _ties(peaks: dict[str, float], rule: Rule, tpp: float, precision: str) -> str:
    """Other precisions that reach the same TPP (A100: tf32, bf16, fp16 and int8 all give 4992)."""
    same = [
        d
        for d, p in peaks.items()
        if d != precision
        and d in rule.bit_length
        and p is not None
        and abs(p * rule.bit_length[d] - tpp) <= 1e-9 * tpp
    ]
    return ", ".join(same)


def classify(
    *, peaks: dict[str, float], die_area_mm2: float | None, data_center: bool, rule: Rule
) -> Classification:
    """Classify declared dense peaks (dtype -> TOP/s) under `rule`; explain every step."""
    tpp, precision = tpp_of(peaks=peaks, rule=rule)
    pd = tpp / die_area_mm2 if tpp is not None and die_area_mm2 else None
    lines: list[str] = []
    if tpp is None:
        lines.append(say("export.tpp_unknown"))
    else:
        peak, bits = peaks[precision], rule.bit_length[precision]
        ties = _ties(peaks, rule, tpp, precision)
        lines.append(
            say(
                "export.tpp_ties" if ties else "export.tpp",
                peak=f"{peak:g}",
                bits=bits,
                tpp=f"{tpp:,.1f}",
                precision=precision,
                ties=ties,
            )
        )
    if pd is not None:
        lines.append(say("export.pd", tpp=f"{tpp:,.1f}", area=f"{die_area_mm2:g}", pd=f"{pd:.2f}"))
    elif tpp is not None:
        lines.append(say("export.pd_unknown"))
    result = Classification(
        code=UNDETERMINED,
        possible=[],
        tpp=tpp,
        tpp_precision=precision,
        pd=pd,
        die_area_mm2=die_area_mm2,
        data_center=data_center,
        rule_id=rule.id,
        rule_date=rule.date,
        notice=rule.notice,
    )
    for exclusion in rule.exclusions:
        excluded = _condition(exclusion["when"], tpp=tpp, pd=pd, data_center=data_center)
        lines.append(say(f"export.exclusion_{_verdict(excluded)}", title=exclusion["title"]))
        if excluded:
            result.code, result.possible, result.explanation = exclusion["code"], [exclusion["code"]], lines
            return result
        if excluded is None:
            result.possible.append(exclusion["code"])
    for klass in rule.classes:
        verdict = _tri_any(
            [_condition(cond, tpp=tpp, pd=pd, data_center=data_center) for cond in klass["any_of"]]
        )
        lines.append(say(f"export.class_{_verdict(verdict)}", code=klass["code"], title=klass["title"]))
        if verdict is True:
            result.possible.append(klass["code"])
            # An undecided earlier class keeps the answer undetermined; a decided one ends it.
            result.code = klass["code"] if len(result.possible) == 1 else UNDETERMINED
            result.explanation = lines
            return result
        if verdict is None:
            result.possible.append(klass["code"])
    result.possible.append(rule.otherwise["code"])
    result.code = rule.otherwise["code"] if len(result.possible) == 1 else UNDETERMINED
    if result.code == UNDETERMINED:
        lines.append(say("export.undetermined", codes=", ".join(result.possible)))
    result.explanation = lines
    return result
