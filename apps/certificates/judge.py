"""The one judge of every rule a certification decision uses.

The criteria, the certificate payload, the portal's evidence page and procurement call these
functions; none of them keeps a bar of its own. The bars are the thresholds of the program's level
(from AIA 1.2 each one has a `source`); the runner reports raw figures (cosine, agreement, TEST01
mismatch counts, TEST04 medians and confidence intervals, timings) and the judge decides.

Older program versions (AIA 1.0 / 1.1) keep their numbers in criterion params; `level_thresholds`
reads those and fills the bars they never stated with what the platform applied when they were
published, so their certificates stay verifiable and their documents judgeable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext_noop

from apps.runs.services.programs import (
    LEGACY_CLOCK_RATIO_BOUNDS,
    LEGACY_REVEAL_SOURCE,
    LEGACY_TEST04_MAX_SPEEDUP,
    program_runner_bars,
)
from certification.recorded_text import say
from runners.dtypes import peak_key
from runners.fingerprint_check import fingerprint_mismatches
from runners.serving_bound import ServerBound

# The performance kinds whose figure is FLOP/s, judged against the declared peak of their dtype.
COMPUTE_KINDS = ("gemm", "conv", "attention")
# The accuracy metrics the model suite reports (runners/model_suite/workloads.py).
COSINE_METRICS = ("cosine_min",)
AGREEMENT_METRICS = ("greedy_token_agreement", "top1_agreement")
# Runner flags that are the runner's own verdicts: the judge recomputes these, so they neither
# exclude a figure nor excuse one. Any other flag (e.g. "unavailable") excludes the figure.
# AIA 1.0 named no agreement bar: it used the one the runner wrote beside the value, which the runner
# of that program's time took from this table (runners/model_suite/workloads.py AGREEMENT_MIN at
# commit 8684b6e). Frozen here with the program so AIA 1.0 evidence is judged as it was published.
LEGACY_RUNNER_AGREEMENT = {"float32": 0.99, "bfloat16": 0.9, "float16": 0.95}
LEGACY_RUNNER_AGREEMENT_DEFAULT = 0.9
RUNNER_VERDICT_FLAGS = frozenset({"below_threshold", "below_claim", "exceeds_physical"})
# torch.utils.benchmark.Measurement.significant_figures keeps at most four.
MAX_SIGNIFICANT_FIGURES = 4
MIN_CONFIDENCE_INTERVAL_S = 25e-9  # torch.utils.benchmark's _MIN_CONFIDENCE_INTERVAL

# What the platform applied to programs that did not state these bars (AIA 1.0 and 1.1).
# A msgid as it stands: the portal shows it through certification.recorded_text.localize.
LEGACY_SOURCE = gettext_noop(
    "built into the platform when AIA 1.0/1.1 were published (not stated in the program)"
)
LEGACY_ABOVE_PEAK_RATIO = 1.10
LEGACY_SPOT_CHECK_SIZE = 5
# LEGACY_TEST04_MAX_SPEEDUP and LEGACY_CLOCK_RATIO_BOUNDS: apps/runs/services/programs.py, the one
# table the job specs (what the runner applied) and this judge both read.


@dataclass(frozen=True)
class Thresholds:
    """Every bar of one level, with the source of each (threshold name -> text)."""

    conformance_min_pass_rate: float | None
    # dtype -> unsupported cases tolerated; None: any number (a dtype with no supported case fails).
    unsupported_tolerated: dict[str, int] | None
    # dtype -> metric -> bar; the key "*" applies to a dtype without its own entry.
    accuracy: dict[str, dict[str, float | None]]
    claims_min_ratio: float | None
    above_peak_ratio: float
    test01_max_mismatches: int
    test01_tolerance: dict[str, dict[str, float]] | None
    test04_max_speedup: float
    max_unstable_fraction: float | None
    spot_check_size: int
    required_approvals: int
    # Device timing events / host clock: a measurement outside [min, max] has an untrustworthy figure.
    clock_ratio_min: float = LEGACY_CLOCK_RATIO_BOUNDS["min"]
    clock_ratio_max: float = LEGACY_CLOCK_RATIO_BOUNDS["max"]
    legacy: bool = False
    # Commit–reveal: committed outputs the platform asks the runner to reveal, and how it draws them
    # (AIA 1.2 `reveal_sample`; 0 / "none" for programs that predate it).
    reveal_sample_size: int = 0
    reveal_rule: str = "none"
    reveal_budget_elements: int = 0

    @property
    def reveal_sample(self) -> dict[str, Any]:
        """The level's `reveal_sample` threshold as the program states it."""
        return {
            "size": self.reveal_sample_size,
            "rule": self.reveal_rule,
            "budget_elements": self.reveal_budget_elements,
        }

    sources: dict[str, str] = field(default_factory=dict)
    # The level's serving settings (LoadGen scenarios, latency bounds); None: the level has no serving bar.
    serving: dict[str, Any] | None = None

    @property
    def fp8_accuracy(self) -> dict[str, float | None] | None:
        """The level's `fp8_accuracy` threshold as the program states it (None: the level has none)."""
        return self.accuracy.get(FP8_ACCURACY)

    @property
    def clock_ratio_bounds(self) -> dict[str, float]:
        """The level's clock cross-check bounds as the program states them (``min``, ``max``)."""
        return {"min": self.clock_ratio_min, "max": self.clock_ratio_max}

    # math-mode flag -> accepted values (runners/math_modes.py); None: the level does not judge them.
    accepted_math_modes: dict[str, list[Any]] | None = None
    # AIA 1.2 (issue 13): which conformance cases are semantic (zero failures per kernel family);
    # None where the level states no such rule.
    semantic_cases: dict[str, Any] | None = None  # as stated (judge.semantic_rule reads it)


def _criterion_params(level: dict[str, Any], kind: str) -> dict[str, Any]:
    for criterion in level.get("criteria", []):
        if criterion.get("kind") == kind:
            return criterion.get("params") or {}
    return {}


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def level_thresholds(*, program, level: str) -> Thresholds:
    """The bars of `level` of `program` (a Program row or its definition dict)."""
    definition = program.definition if hasattr(program, "definition") else program
    program_approvals = getattr(program, "required_approvals", None) or definition.get(
        "required_approvals", 1
    )
    spec = next((lvl for lvl in definition.get("levels", []) if lvl.get("code") == level), None) or {}
    approvals = spec.get("required_approvals", program_approvals)
    stated = spec.get("thresholds")
    bars = program_runner_bars(program=definition, level=level)
    if isinstance(stated, dict):
        value = {name: (entry or {}).get("value") for name, entry in stated.items()}
        fp8_bars = value.get("fp8_accuracy")
        return Thresholds(
            clock_ratio_min=bars["clock_ratio_min"],
            clock_ratio_max=bars["clock_ratio_max"],
            conformance_min_pass_rate=_float(value.get("conformance_min_pass_rate")),
            unsupported_tolerated={
                str(k): int(v) for k, v in (value.get("unsupported_tolerated") or {}).items()
            },
            accuracy={
                **{str(d): dict(bars) for d, bars in (value.get("accuracy") or {}).items()},
                # AIA 1.3 draft: the FP8-path bars, a threshold of their own (``fp8_accuracy``).
                **({FP8_ACCURACY: dict(fp8_bars)} if isinstance(fp8_bars, dict) else {}),
            },
            claims_min_ratio=_float(value.get("claims_min_ratio")),
            above_peak_ratio=float(value["above_peak_ratio"]),
            test01_max_mismatches=int(value["test01_max_mismatches"]),
            test01_tolerance=value.get("test01_tolerance"),
            test04_max_speedup=float(value["test04_max_speedup"]),
            max_unstable_fraction=_float(value.get("max_unstable_fraction")),
            spot_check_size=int(value.get("spot_check_size") or LEGACY_SPOT_CHECK_SIZE),
            required_approvals=int(approvals),
            reveal_sample_size=int((value.get("reveal_sample") or {}).get("size") or 0),
            reveal_rule=str((value.get("reveal_sample") or {}).get("rule") or "none"),
            reveal_budget_elements=int((value.get("reveal_sample") or {}).get("budget_elements") or 0),
            sources={name: str((entry or {}).get("source", "")) for name, entry in stated.items()},
            serving=value.get("serving") if isinstance(value.get("serving"), dict) else None,
            accepted_math_modes=value.get("accepted_math_modes"),
            semantic_cases=value.get("semantic_cases")
            if isinstance(value.get("semantic_cases"), dict)
            else None,
        )
    conformance = _criterion_params(spec, "conformance_pass_rate")
    accuracy = _criterion_params(spec, "model_accuracy")
    agreement = _float(accuracy.get("min_agreement"))
    criterion_source = say(
        "source.criterion_params", code=definition.get("code"), version=definition.get("version"), level=level
    )
    return Thresholds(
        conformance_min_pass_rate=_float(conformance.get("min_pass_rate")),
        unsupported_tolerated=None,
        # The float32 criterion's bar, applied to every dtype; None: the runner's bar (AIA 1.0 agreement).
        accuracy={
            "*": {
                "cosine_min": _float(accuracy.get("min_cosine")),
                **{metric: agreement for metric in AGREEMENT_METRICS},
            }
        },
        claims_min_ratio=_float(_criterion_params(spec, "claims").get("min_ratio")),
        above_peak_ratio=LEGACY_ABOVE_PEAK_RATIO,
        test01_max_mismatches=0,
        test01_tolerance=None,
        test04_max_speedup=LEGACY_TEST04_MAX_SPEEDUP,
        max_unstable_fraction=_float(
            _criterion_params(spec, "performance_stability").get("max_unstable_fraction")
        ),
        spot_check_size=LEGACY_SPOT_CHECK_SIZE,
        required_approvals=int(approvals),
        clock_ratio_min=bars["clock_ratio_min"],
        clock_ratio_max=bars["clock_ratio_max"],
        legacy=True,
        sources={
            "conformance_min_pass_rate": criterion_source,
            "accuracy": criterion_source,
            "claims_min_ratio": criterion_source,
            "max_unstable_fraction": criterion_source,
            "above_peak_ratio": LEGACY_SOURCE,
            "test01_max_mismatches": LEGACY_SOURCE,
            "test04_max_speedup": LEGACY_SOURCE,
            "clock_ratio_bounds": LEGACY_SOURCE,
            "spot_check_size": LEGACY_SOURCE,
            "reveal_sample": LEGACY_REVEAL_SOURCE,
        },
    )


def campaign_thresholds(*, campaign) -> Thresholds:
    return level_thresholds(program=campaign.program, level=campaign.level)


def required_approvals(*, program, level: str) -> int:
    """Distinct approving reviewers a certificate of `level` needs (AIA 1.2: two at Standard and Advanced)."""
    return level_thresholds(program=program, level=level).required_approvals


# Accuracy ---------------------------------------------------------------------------------------


def accuracy_bar(
    *, thresholds: Thresholds, dtype: str, metric: str, runner_threshold: float | None = None
) -> float | None:
    """The program's bar for `metric` in `dtype`, or None when the program states none (then it fails).

    A legacy program that never stated an agreement bar (AIA 1.0 took it from the runner's document)
    gets the bars that runner of its time wrote (LEGACY_RUNNER_AGREEMENT), never the figure a document
    carries now: a runner no longer decides a bar, and a hostile one could write any."""
    bars = thresholds.accuracy.get(dtype) or thresholds.accuracy.get("*") or {}
    bar = _float(bars.get(metric))
    if bar is None and thresholds.legacy and metric not in COSINE_METRICS:
        return LEGACY_RUNNER_AGREEMENT.get(dtype, LEGACY_RUNNER_AGREEMENT_DEFAULT)
    return bar


# The metric a decoder's served accuracy (the serving suite's LoadGen accuracy mode) is judged by.
# AIA 1.3 states a bar for the teacher-forced agreement (runners/served_outputs.py TIE_RULE): one near
# tie in a reduced precision no longer flips the verdict on every token after it. A level that states
# none (AIA 1.0-1.2) judges the free-running greedy agreement, as it always did, which every serving
# document still reports; so their judgement of any document stays what it was.
# From issue 16 the AIA 1.3 draft states its bar for the agreement at the positions whose MoE routing is
# decided in the dtype (runners/served_outputs.py ROUTING_TIE_RULE; every position of a model that does
# not route), which a level stating it judges in preference to the teacher-forced agreement.
SERVING_DECIDED_ROUTING_METRIC = "decided_routing_token_agreement"
SERVING_TEACHER_FORCED_METRIC = "teacher_forced_token_agreement"
SERVING_FREE_RUNNING_METRIC = "greedy_token_agreement"


def serving_decoder_metric(*, thresholds: Thresholds, dtype: str) -> str:
    """The serving accuracy metric of a decoder at this level and dtype (see above)."""
    bars = thresholds.accuracy.get(dtype) or thresholds.accuracy.get("*") or {}
    for metric in (SERVING_DECIDED_ROUTING_METRIC, SERVING_TEACHER_FORCED_METRIC):
        if _float(bars.get(metric)) is not None:
            return metric
    return SERVING_FREE_RUNNING_METRIC


def accuracy_passes(*, value: float | None, bar: float | None) -> bool:
    return value is not None and bar is not None and math.isfinite(value) and value >= bar


# An FP8-path run (AIA 1.3 draft, issue 16): the bfloat16 run of a DeepSeek-V3 FP8 checkpoint whose
# plan asked for FP8 computation (apps/runs/services/model_evidence.py fp8_path_dtype, decided from the
# registered file and the plan, never the runner's word) is judged by the level's FP8 bar, the accuracy
# thresholds' entry FP8_ACCURACY, in place of the bfloat16 bar: its agreement bar, and where the entry
# states one the bar of the mean logit cosine (FP8_COSINE_METRIC, the accuracy measurement's params). A
# level that states no FP8 bar fails such a run (no bar, no pass).
FP8_ACCURACY = "block_scaled_fp8"
FP8_COSINE_METRIC = "logit_cosine_mean"


def fp8_bars(*, thresholds: Thresholds, metric: str) -> tuple[float | None, float | None]:
    """The level's FP8 bars: (for ``metric``, for the mean logit cosine or None where none is stated)."""
    bars = thresholds.accuracy.get(FP8_ACCURACY) or {}
    return _float(bars.get(metric)), _float(bars.get(FP8_COSINE_METRIC))


def fp8_cosine_of(params: dict[str, Any] | None) -> float | None:
    """The mean logit cosine an accuracy measurement carries (ingested params: the runner's ``params``)."""
    stated: dict[str, Any] = params or {}
    inner = stated.get("params")
    nested: dict[str, Any] = inner if isinstance(inner, dict) else stated
    return _float(nested.get(FP8_COSINE_METRIC))


def fp8_accuracy_passes(
    *, thresholds: Thresholds, metric: str, value: float | None, params: dict[str, Any] | None
) -> bool:
    """An FP8-path run's accuracy against the level's FP8 bars (both, where the level states both)."""
    bar, cosine_bar = fp8_bars(thresholds=thresholds, metric=metric)
    if not accuracy_passes(value=value, bar=bar):
        return False
    return cosine_bar is None or accuracy_passes(value=fp8_cosine_of(params), bar=cosine_bar)


def runner_threshold_of(params: dict[str, Any] | None) -> float | None:
    """The bar a (legacy) runner reported beside an accuracy value, wherever the document put it."""
    params = params or {}
    given = params.get("params")
    nested: dict[str, Any] = given if isinstance(given, dict) else {}
    return _float(params.get("threshold", nested.get("threshold")))


# Fingerprint ------------------------------------------------------------------------------------


def math_mode_problems(*, fingerprint: dict[str, Any], thresholds: Thresholds) -> list[str]:
    """How the math modes a document ran under (its fingerprint's `math_modes`) depart from the ones
    the level accepts; none when the level states no accepted modes (AIA 1.0 / 1.1)."""
    from runners.math_modes import math_mode_departures

    if thresholds.accepted_math_modes is None:
        return []
    return math_mode_departures((fingerprint or {}).get("math_modes"), thresholds.accepted_math_modes)


def fingerprint_problems(*, fingerprint: dict[str, Any], target) -> list[str]:
    """How a document's fingerprint differs from the target's registered stack: the comparison that
    ingestion applies (runners/fingerprint_check.py), so a page never disagrees with ingestion."""
    from apps.runs.specs import expected_fingerprint

    return fingerprint_mismatches(fingerprint or {}, expected_fingerprint(target))


# Integrity (TEST01, TEST04) ---------------------------------------------------------------------

INTEGRITY_NAMES = {"output_consistency": ("output_consistency", "consistency"), "caching": ("caching",)}


@dataclass(frozen=True)
class IntegrityVerdict:
    check: str
    passed: bool
    detail: str
    item: dict[str, Any]


def integrity_items(integrity: dict[str, Any] | None, check: str) -> list[dict[str, Any]]:
    """The individual TEST01 / TEST04 results of a document (its per-item list when it has one)."""
    found: list[dict[str, Any]] = []
    for name in INTEGRITY_NAMES[check]:
        value = (integrity or {}).get(name)
        entries = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            items = entry.get("items")
            if isinstance(items, list) and items:
                found.extend(item for item in items if isinstance(item, dict))
            else:
                found.append(entry)
    return found


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def output_consistency_verdict(*, item: dict[str, Any], thresholds: Thresholds) -> IntegrityVerdict:
    """TEST01 from the raw counts: mismatches within the program's bound, judged at tolerances no
    looser than the program's. A runner's own "fail" is never turned into a pass."""
    mismatches, sampled = _int(item.get("mismatches")), _int(item.get("sampled"))
    if mismatches is None or sampled is None:
        if thresholds.legacy and item.get("verdict") in ("pass", "fail"):
            return IntegrityVerdict(
                "output_consistency",
                item["verdict"] == "pass",
                say("integrity.runner_verdict_counts", verdict=item["verdict"]),
                item,
            )
        return IntegrityVerdict("output_consistency", False, say("test01.no_counts"), item)
    detail = say("test01.counts", mismatches=mismatches, sampled=sampled)
    if sampled == 0:
        return IntegrityVerdict("output_consistency", False, say("test01.none_sampled"), item)
    tolerance = (thresholds.test01_tolerance or {}).get(str(item.get("dtype") or ""))
    if tolerance:
        for key in ("rtol", "atol"):
            used = _float(item.get(key))
            if used is not None and used > float(tolerance[key]):
                return IntegrityVerdict(
                    "output_consistency",
                    False,
                    say(
                        "test01.looser",
                        detail=detail,
                        key=key,
                        used=f"{used:g}",
                        bar=f"{float(tolerance[key]):g}",
                    ),
                    item,
                )
    passed = mismatches <= thresholds.test01_max_mismatches and item.get("verdict") != "fail"
    return IntegrityVerdict("output_consistency", passed, detail, item)


def caching_verdict(*, item: dict[str, Any], thresholds: Thresholds) -> IntegrityVerdict:
    """TEST04 from the raw medians: fresh / repeated above 1 + bound, with separated confidence
    intervals (so timing noise alone cannot fail an honest device), means a result cache; so does
    a fresh call whose output differs from the device's own for those values (the probe refills
    the timed buffers in place, and a cache keyed on the buffers answers with the old result), and a
    fresh output outside the float64 reference of its values (a cache keyed on shapes alone). Where the
    runner's judge timed the probe's calls in its own frames (``host_frames``), timings that do not fit
    them are refused first (``probe_frames_verdict``): no speed-up is read from them."""
    refused = probe_frames_verdict(item=item, thresholds=thresholds)
    if refused is not None:
        return refused
    stale = _int(item.get("fresh_output_mismatches"))
    if stale:
        checked = _int(item.get("fresh_outputs_checked"))
        return IntegrityVerdict(
            "caching",
            False,
            say("test04.stale_buffers", stale=stale, checked=checked if checked is not None else "?"),
            item,
        )
    wrong = _int(item.get("fresh_reference_failures"))
    if wrong:
        checked = _int(item.get("fresh_reference_checked"))
        return IntegrityVerdict(
            "caching",
            False,
            say("test04.wrong_reference", wrong=wrong, checked=checked if checked is not None else "?"),
            item,
        )
    fresh, repeated = _float(item.get("fresh_median_s")), _float(item.get("repeated_median_s"))
    if fresh is None or repeated is None:
        if thresholds.legacy and item.get("verdict") in ("pass", "fail"):
            return IntegrityVerdict(
                "caching",
                item["verdict"] == "pass",
                say("integrity.runner_verdict_timings", verdict=item["verdict"]),
                item,
            )
        return IntegrityVerdict("caching", False, say("test04.no_timings"), item)
    speedup = fresh / repeated if repeated > 0 else math.inf
    bound = 1.0 + thresholds.test04_max_speedup
    fresh_ci, repeated_ci = item.get("fresh_ci_s"), item.get("repeated_ci_s")
    separated = True  # without intervals nothing excuses a speed-up
    if (
        isinstance(fresh_ci, list)
        and isinstance(repeated_ci, list)
        and len(fresh_ci) == 2 == len(repeated_ci)
    ):
        low, high = _float(fresh_ci[0]), _float(repeated_ci[1])
        if low is not None and high is not None:
            separated = high < low
    failed = speedup > bound and separated
    reading = "test04.within" if speedup <= bound else "test04.cache" if separated else "test04.noise"
    detail = say(reading, speedup=f"{speedup:.3f}", bound=f"{bound:.2f}")
    return IntegrityVerdict("caching", not failed and item.get("verdict") != "fail", detail, item)


def probe_frames_verdict(*, item: dict[str, Any], thresholds: Thresholds) -> IntegrityVerdict | None:
    """A TEST04 failure where the probe's calls do not fit the judge's clock around their frames
    (runners/probe_frames.py): each side's reported total over its frames' host time (``fresh_ratio``,
    ``repeated_ratio``) recomputed against this level's clock bounds, no call beyond the upper bound of its
    own frame (``max_call_ratio``); without those ratios the runner's judge found evidence that is not what
    the frames saw (refused whatever the bounds). None where the item has no frames, where they fit, and where the job's spec gave the
    runner no bounds (as ``host_frames_verdict``)."""
    frames = item.get("host_frames")
    if not isinstance(frames, dict) or frames.get("bounds") is None:
        return None
    label = " ".join(str(item.get(k)) for k in ("benchmark", "model", "dtype") if item.get(k)).strip() or "?"
    low, high = thresholds.clock_ratio_min, thresholds.clock_ratio_max
    # A side none of whose frames lasted the policy's block_min_s is not judged on the lower bound
    # (runners/probe_frames.py): its ratio is absent and the section says no frame of it was judged.
    sides = [
        _float(frames.get(f"{side}_ratio"))
        for side in ("fresh", "repeated")
        if frames.get(f"{side}_ratio") is not None or frames.get(f"{side}_frames_judged") != 0
    ]
    call = _float(frames.get("max_call_ratio"))
    if call is None or any(ratio is None for ratio in sides):
        return IntegrityVerdict("caching", False, say("test04.host_frames_broken", label=label), item)
    ratios = [ratio for ratio in sides if ratio is not None]
    least, most = min(ratios, default=call), max([*ratios, call])
    if all(low <= ratio <= high for ratio in ratios) and call <= high:
        return None
    detail = say(
        "test04.host_frames_outside",
        label=label,
        least=f"{least:.3f}",
        most=f"{most:.3f}",
        bounds=f"{low:g}-{high:g}",
    )
    return IntegrityVerdict("caching", False, detail, item)


def reveal_problem(*, state: str | None, findings: list[Any], sample_size: int) -> str | None:
    """Why a document's commit–reveal round fails the integrity blocker, or None when it passes: it must
    have been drawn (where the level samples any output), answered, and contradicted nothing."""
    if state is None:
        return say("reveal.not_drawn") if sample_size > 0 else None
    if state == "verified":
        return None
    if state == "pending":
        return say("reveal.pending")
    if state == "expired":
        return say("reveal.expired")
    shown = "; ".join(str(f) for f in findings[:3])
    return say("reveal.contradicts", findings=shown) if shown else say("reveal.mismatch")


def integrity_verdicts(
    *, integrity: dict[str, Any] | None, check: str, thresholds: Thresholds
) -> list[IntegrityVerdict]:
    judge = output_consistency_verdict if check == "output_consistency" else caching_verdict
    return [judge(item=item, thresholds=thresholds) for item in integrity_items(integrity, check)]


# Clock cross-check (device timing events against the host clock) -------------------------------


def clock_verdict(*, item: dict[str, Any], thresholds: Thresholds) -> IntegrityVerdict | None:
    """One measurement's timing events against the host clock, recomputed from its raw sums
    (``clock.event_s`` / ``clock.host_s``) with the level's bounds; None for a figure the host clock
    timed (nothing to cross-check). The runner's own ``agrees`` is not read: it never turns a ratio
    outside the program's bounds into a pass."""
    clock, method = item.get("clock"), item.get("timing_method")
    label = f"{item.get('name')} {item.get('dtype') or ''}".strip()
    if clock is None and method != "device_events":
        return None
    if not isinstance(clock, dict):
        return IntegrityVerdict("timing", False, say("timing.no_check", label=label), item)
    event_s, host_s, rounds = (
        _float(clock.get("event_s")),
        _float(clock.get("host_s")),
        _int(clock.get("rounds")),
    )
    if event_s is None or host_s is None or host_s <= 0 or event_s < 0 or not rounds:
        return IntegrityVerdict("timing", False, say("timing.no_figures", label=label), item)
    ratio = event_s / host_s
    low, high = thresholds.clock_ratio_min, thresholds.clock_ratio_max
    passed = low <= ratio <= high
    detail = say(
        "timing.within" if passed else "timing.outside",
        label=label,
        ratio=f"{ratio:.3f}",
        bounds=f"{low:g}-{high:g}",
    )
    return IntegrityVerdict("timing", passed, detail, item)


def timing_verdicts(
    *, measurements: Iterable[dict[str, Any]], integrity: dict[str, Any] | None, thresholds: Thresholds
) -> list[IntegrityVerdict]:
    """The clock cross-check of one document: a verdict per events-timed measurement, and a failure
    wherever the runner itself already refused a figure (its ``integrity.timing`` verdict): for events
    that disagreed with the host clock, or (model suite, issue 13) for published figures that disagree
    with the raw timings the device process returned (an item's ``raw_timings.disagreements``)."""
    verdicts = [v for item in measurements if (v := clock_verdict(item=item, thresholds=thresholds))]
    runner = (integrity or {}).get("timing")
    if not isinstance(runner, dict):
        return verdicts
    items = [i for i in runner.get("items") or [] if isinstance(i, dict)]
    frames = [v for item in items if (v := host_frames_verdict(item=item, thresholds=thresholds))]
    if runner.get("verdict") == "fail":
        raw = any(
            (_int((i.get("raw_timings") or {}).get("disagreements")) or 0) > 0
            for i in items
            if isinstance(i.get("raw_timings"), dict)
        )
        if not (raw or frames) or (_int(runner.get("disagreements")) or 0) > 0:
            verdicts.append(IntegrityVerdict("timing", False, say("timing.runner_refused"), runner))
        if raw:
            verdicts.append(IntegrityVerdict("timing", False, say("timing.raw_disagreement"), runner))
    return verdicts + frames


def host_frames_verdict(*, item: dict[str, Any], thresholds: Thresholds) -> IntegrityVerdict | None:
    """A failure where a model and dtype's timed loops do not fit the judge's clock around their frames
    (``host_frames``, runners/model_suite/frames.py): the device's reported total over the frame's
    host time, recomputed against this level's clock bounds from the ratios the runner's judge recorded,
    or any figure that judge refused. None where the item has no frames or they fit, and where the
    job's spec gave the runner no bounds (``bounds`` null: a library run; every platform job's spec
    carries its level's bounds, apps/runs/specs.py runner_bar_options)."""
    frames = item.get("host_frames")
    if not isinstance(frames, dict) or not _int(frames.get("checked")) or frames.get("bounds") is None:
        return None
    label = f"{item.get('model') or ''} {item.get('dtype') or ''}".strip()
    low, high = thresholds.clock_ratio_min, thresholds.clock_ratio_max
    least, most = _float(frames.get("min_ratio")), _float(frames.get("max_ratio"))
    inside = least is not None and most is not None and low <= least and most <= high
    if inside and not _int(frames.get("refused")):
        return None
    detail = say(
        "timing.host_frames_outside",
        label=label,
        least="?" if least is None else f"{least:.3f}",
        most="?" if most is None else f"{most:.3f}",
        bounds=f"{low:g}-{high:g}",
    )
    return IntegrityVerdict("timing", False, detail, item)


# Declared peaks and figures ---------------------------------------------------------------------


def declared_peaks_of_specs(specs: Iterable[dict[str, Any]]) -> dict[str, float]:
    """The declared peaks frozen into a campaign's job specs at submission (the first spec that has them)."""
    for spec in specs:
        peaks = ((spec or {}).get("declared") or {}).get("peak_tflops")
        if isinstance(peaks, dict) and peaks:
            return {str(k): float(v) for k, v in peaks.items() if _float(v) is not None}
    return {}


def declared_bandwidth_of_specs(specs: Iterable[dict[str, Any]]) -> float | None:
    """The declared memory bandwidth (GB/s) frozen into a campaign's job specs at submission."""
    for spec in specs:
        value = _float(((spec or {}).get("declared") or {}).get("memory_bandwidth_gbs"))
        if value:
            return value
    return None


def campaign_declared_peaks(*, campaign) -> dict[str, float]:
    """The chip's declared peaks as they were when the campaign was submitted: every evaluation,
    certificate and page reads these, never the live registry row (which the vendor may edit)."""
    from apps.runs.models import Job

    return declared_peaks_of_specs(
        Job.objects.filter(campaign=campaign).order_by("id").values_list("spec", flat=True)
    )


def peak_for(peaks: dict[str, float], dtype: str) -> float | None:
    return peaks.get(peak_key(dtype))


def peak_ratio(*, value: float | None, peak: float | None) -> float | None:
    """Achieved / declared, recomputed here (a runner's own `efficiency` is not trusted)."""
    if value is None or not peak or not math.isfinite(value):
        return None
    return value / peak


def above_peak(*, ratio: float | None, thresholds: Thresholds) -> bool:
    """A figure above the declared peak by more than the level's ratio is not credible."""
    return ratio is not None and ratio > thresholds.above_peak_ratio


def measurement_exclusion(*, value: float | None, unstable: bool, flags: Iterable[str] | None) -> str | None:
    """Why a measured figure may not feed a headline, a claims criterion or a tender, or None."""
    if value is None or not math.isfinite(value):
        return say("serving.no_value")
    if unstable:
        return say("measurement.unstable")
    other = sorted({str(f) for f in flags or []} - RUNNER_VERDICT_FLAGS)
    if other:
        return say("measurement.flagged", flags=", ".join(other))
    return None


def significant_figures(
    *,
    center: float | None,
    ci_low: float | None = None,
    ci_high: float | None = None,
    cv: float | None = None,
) -> int:
    """Digits a timed figure's confidence interval supports, as torch.utils.benchmark's
    Measurement.significant_figures: floor(log10(center / half-width)), between 1 and 4, the
    half-width at least torch's 25 ns (_MIN_CONFIDENCE_INTERVAL; statistics are in seconds).

    Without an interval the coefficient of variation stands in for the half-width (wider, so fewer
    digits); without either, two digits."""
    if center is None or not math.isfinite(center) or center <= 0:
        return 1
    half = None
    if ci_low is not None and ci_high is not None and ci_high >= ci_low:
        half = max((ci_high - ci_low) / 2, MIN_CONFIDENCE_INTERVAL_S)
    elif cv is not None and cv >= 0:
        half = cv * center
    if half is None:
        return 2
    if half <= 0:
        return MAX_SIGNIFICANT_FIGURES
    # The epsilon keeps a ratio of exactly 10^k (0.01 on 1.0) from losing a digit to float rounding.
    return min(max(math.floor(math.log10(center / half) + 1e-9), 1), MAX_SIGNIFICANT_FIGURES)


def round_significant(value: float, digits: int) -> float:
    """`value` to `digits` significant figures (torch.utils.benchmark's trim_sigfig)."""
    if value == 0 or not math.isfinite(value):
        return value
    magnitude = math.ceil(math.log10(abs(value)))
    return round(value, digits - magnitude)


def published_digits(*, stats: dict[str, Any] | None, runner_digits: Any = None) -> int:
    """The one rule for how many digits of a timed figure may be published: what its confidence
    interval supports (significant_figures, recomputed here from the raw statistics), and never more
    than the runner's own ``significant_digits`` says (a runner may know its clock is coarser; it
    can never buy digits its interval does not support)."""
    stats = stats or {}
    digits = significant_figures(
        center=_float(stats.get("median")),
        ci_low=_float(stats.get("ci_low")),
        ci_high=_float(stats.get("ci_high")),
        cv=_float(stats.get("cv")),
    )
    claimed = _int(runner_digits)
    if claimed is not None and 1 <= claimed < digits:
        return claimed
    return digits


def published_figure(*, value: float, stats: dict[str, Any] | None, runner_digits: Any = None) -> float:
    """A timed figure as it may be published: rounded to ``published_digits``."""
    return round_significant(value, published_digits(stats=stats, runner_digits=runner_digits))


def claimed_best(
    *,
    claim: dict[str, Any] | None,
    key: str,
    value_key: str,
    candidates: list[tuple[dict[str, Any], str | None]],
) -> tuple[dict[str, Any] | None, str | None]:
    """The figure a runner's claim names as its best (``claim[key]`` = a measurement name,
    ``claim[value_key]`` = its value), checked against the document's own measurements.

    ``candidates`` are (measurement, why the judge excludes it or None) of one dtype of one
    document, each measurement a dict with ``name`` and ``value``. Returns (the claimed measurement,
    None), or (None, why no figure may be published from this claim): the claim names a figure the
    measurements do not show, or one the judge excludes, or one that is not the best certifiable
    figure. Without a claim (documents of a runner before issue 11) the best certifiable candidate
    stands in."""
    eligible = [m for m, reason in candidates if reason is None]
    best = max(eligible, key=lambda m: m["value"], default=None)
    if not isinstance(claim, dict) or key not in claim:
        return best, None if best is not None else say("claims.no_certifiable")
    name, value = claim.get(key), _float(claim.get(value_key))
    if name is None or value is None:
        return None, say("claims.no_claim")
    named = [(m, reason) for m, reason in candidates if m["name"] == name]
    if len(named) != 1 or _float(named[0][0]["value"]) != value:
        return None, say("claims.claim_unshown", key=key, name=name, value=value)
    measurement, reason = named[0]
    if reason is not None:
        return None, say("claims.claim_excluded", key=key, name=name, reason=reason)
    if best is not None and best["value"] > measurement["value"]:
        return None, say("claims.claim_not_best", key=key, name=name, best=best["name"])
    return measurement, None


def published_accuracy(value: float) -> float:
    """An accuracy figure for a headline: six decimals, rounded down so it never overstates."""
    return math.floor(value * 1e6) / 1e6 if math.isfinite(value) else value


# Conformance ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DtypeConformance:
    dtype: str
    passed: int
    judged: int  # cases other than unsupported
    unsupported: int

    @property
    def rate(self) -> float | None:
        return self.passed / self.judged if self.judged else None


def conformance_dtype_problem(
    *, counts: DtypeConformance, thresholds: Thresholds, with_rate: bool = True
) -> str | None:
    """Why a required dtype fails the level: no supported case, more unsupported cases than the level
    tolerates, or (with_rate) its own pass rate below the level's bar."""
    if counts.judged == 0:
        return say("conformance.dtype_none", dtype=counts.dtype)
    tolerated = (
        (thresholds.unsupported_tolerated or {}).get(counts.dtype)
        if thresholds.unsupported_tolerated is not None
        else None
    )
    if thresholds.unsupported_tolerated is not None and counts.unsupported > (tolerated or 0):
        return say(
            "conformance.dtype_unsupported",
            unsupported=counts.unsupported,
            dtype=counts.dtype,
            tolerated=tolerated or 0,
        )
    bar = thresholds.conformance_min_pass_rate
    if with_rate and (bar is None or counts.rate < bar):
        return say(
            "conformance.dtype_rate",
            dtype=counts.dtype,
            rate=f"{counts.rate:.2%}",
            bar=bar if bar is None else f"{bar:.2%}",
        )
    return None


# Serving (MLPerf LoadGen) -------------------------------------------------------------------------

SERVING_INVALID_FLAG = "loadgen_invalid"
SERVING_FIGURE_KINDS = (
    "serving_latency",
    "serving_qps",
    "serving_throughput",
    "serving_tokens",
    "serving_ttft",
    "serving_tpot",
)


def serving_params(item: dict[str, Any]) -> dict[str, Any]:
    """The runner's params of a serving measurement (a document item, or a stored row's params)."""
    given = item.get("params")
    params: dict[str, Any] = given if isinstance(given, dict) else {}
    inner = params.get("params")
    return inner if isinstance(inner, dict) else params


def serving_settings_problems(*, params: dict[str, Any], scenario: str, thresholds: Thresholds) -> list[str]:
    """How the settings LoadGen reports it used for a figure fall short of the level's: a shorter
    minimum duration, fewer queries, a lower percentile or a looser latency bound than the program's."""
    level = ((thresholds.serving or {}).get("scenarios") or {}).get(scenario)
    if not isinstance(level, dict):
        return [say("serving.level_no_scenario", scenario=scenario)]
    problems: list[str] = []
    for key, code in (
        ("min_duration_ms", "serving.min_duration_below"),
        ("min_query_count", "serving.min_queries_below"),
    ):
        used, bar = _float(params.get(key)), _float(level.get(key))
        if bar is not None and (used is None or used < bar):
            problems.append(say(code, used="none" if used is None else f"{used:g}", bar=f"{bar:g}"))
    percentile, bar = _float(params.get("percentile")), _float(level.get("percentile"))
    if bar is not None and (percentile is None or percentile < bar):
        problems.append(say("serving.percentile_below", used=percentile, bar=f"{bar:g}"))
    llm = (thresholds.serving or {}).get("llm") or {}
    if scenario == "Server":
        # What LoadGen judged the run by, from its digested summary (runners/serving_bound.py): one
        # latency bound against the level's Server bound, or (token-latency mode) TTFT and TPOT
        # against the level's LLM bounds.
        bound, problem = serving_bound(params)
        if bound is None:
            return [*problems, problem or say("serving.no_server_summary")]
        if bound.token_latencies:
            for key, name in (("ttft", "TTFT"), ("tpot", "TPOT")):
                used, limit = bound.bounds()[key] / 1000, _float(llm.get(f"{key}_ms"))
                if limit is not None and used > limit / 1000:
                    problems.append(
                        say(
                            "serving.token_bound_looser", name=name, used=f"{used:g}", bar=f"{limit / 1000:g}"
                        )
                    )
        else:
            used, limit = bound.bounds()["latency"] / 1000, _float(level.get("latency_bound_ms"))
            if limit is not None and used > limit / 1000:
                problems.append(say("serving.bound_looser", used=f"{used:g}", bar=f"{limit / 1000:g}"))
        return problems
    for key, name in (("ttft", "TTFT"), ("tpot", "TPOT")):
        used = _float(params.get(f"{key}_bound_s"))
        limit = _float(llm.get(f"{key}_ms"))
        if used is not None and limit is not None and used > limit / 1000:
            problems.append(say("serving.token_bound_looser", name=name, used=used, bar=f"{limit / 1000:g}"))
    return problems


def serving_bound(params: dict[str, Any]) -> tuple[ServerBound | None, str | None]:
    """(ServerBound, None): what LoadGen judged a Server figure's run by (one latency bound, or TTFT and
    TPOT in token-latency mode), read from the LoadGen summary the figure carries, which must be the one
    the document digests; or (None, why). The one source of a Server figure's bound for the criteria,
    the certificate, procurement and the portal (runners/serving_bound.py)."""
    from runners.serving_bound import server_bound
    from runners.serving_rate import summary_matches

    if not summary_matches(params.get("loadgen_summary"), params.get("summary_sha256")):
        return None, say("serving.no_server_summary")
    return server_bound(params)


def serving_figure_problem(
    *, value: float | None, flags: Iterable[str] | None, params: dict[str, Any], thresholds: Thresholds
) -> str | None:
    """Why a serving figure may not be certified, or None: LoadGen did not judge its run VALID, a
    Server run did not sustain its rate or states a rate above the model's Offline throughput
    (serving_rate_problem), or the run used weaker settings than the level's. An INVALID run never
    yields a certified figure."""
    rate = serving_rate_problem(params) if params.get("scenario") == "Server" else None
    if rate and params.get("result_valid") is True:
        return rate  # LoadGen said VALID; the rate it scheduled was not sustained (or is not credible)
    if SERVING_INVALID_FLAG in set(flags or ()) or params.get("result_valid") is not True:
        return say("serving.invalid")
    if rate:
        return rate
    if value is None or not math.isfinite(value):
        return say("serving.no_value")
    problems = serving_settings_problems(
        params=params, scenario=str(params.get("scenario") or ""), thresholds=thresholds
    )
    return "; ".join(problems) or None


def serving_rate_problem(params: dict[str, Any]) -> str | None:
    """Why a Server figure's run states a rate the device did not show, or None, re-checked from the
    LoadGen summaries the figure carries (each must be the one the document digests): the completed
    rate must reach the scheduled rate within the tolerance, and the Server rate must not exceed the
    same model's Offline samples/s beyond it (runners/serving_rate.py, which the runner's search
    applies too). These are consistency checks, under every program version."""
    from runners.serving_rate import above_offline_problem, summary_matches, unsustained_problem

    server, offline = params.get("loadgen_summary"), params.get("offline_summary")
    if not summary_matches(server, params.get("summary_sha256")):
        return say("serving.no_server_summary")
    if not summary_matches(offline, params.get("offline_summary_sha256")):
        return say("serving.no_offline_summary")
    return unsustained_problem(str(server)) or above_offline_problem(str(server), str(offline))


SERVING_ENERGY_UNITS = ("J/query", "J/token")


def serving_energy_problem(
    *,
    value: float | None,
    unit: str,
    flags: Iterable[str] | None,
    params: dict[str, Any],
    thresholds: Thresholds,
) -> str | None:
    """Why a serving energy figure may not be certified, or None: it must come from a Server run that
    yields a certified figure (serving_figure_problem: VALID, the level's settings) and from a meter
    that measured it (a named meter, never `unavailable`)."""
    if unit not in SERVING_ENERGY_UNITS:
        return say("energy.unit", unit=repr(unit))
    if params.get("scenario") != "Server":
        return say("energy.not_server")
    if "unavailable" in set(flags or ()):
        return say("energy.no_meter")
    energy = given if isinstance(given := params.get("energy"), dict) else {}
    if not energy.get("meter") or energy.get("available") is False:
        return say("energy.no_meter_named")
    if value is not None and value <= 0:
        return say("energy.not_positive")
    return serving_figure_problem(value=value, flags=flags, params=params, thresholds=thresholds)


def serving_server_verdict(
    *, qps: dict[str, Any] | None, decoder: bool, thresholds: Thresholds
) -> tuple[bool, str]:
    """One model's Server result at the level's bound: a VALID run with the level's settings (and, for
    a decoder, token-latency bounds no looser than the level's TTFT and TPOT)."""
    if qps is None:
        return False, say("serving.no_server_result")
    params = serving_params(qps)
    problem = serving_figure_problem(
        value=_float(qps.get("value")), flags=qps.get("flags"), params=params, thresholds=thresholds
    )
    if problem:
        return False, problem
    bound, problem = serving_bound(params)
    if bound is None:
        return False, problem or say("serving.no_server_summary")
    llm = (thresholds.serving or {}).get("llm") or {}
    if decoder:
        # A decoder is judged in LoadGen's token-latency mode, by TTFT and TPOT (never one latency bound).
        for key, name in (("ttft", "TTFT"), ("tpot", "TPOT")):
            limit = _float(llm.get(f"{key}_ms"))
            if limit is None:
                return False, say("serving.level_no_token_bound", name=name)
            if not bound.token_latencies or bound.bounds()[key] > limit:
                return False, say("serving.not_token_bounded", name=name, limit=f"{limit:g}")
        return True, say(
            "serving.server_valid_tokens",
            qps=f"{qps['value']:.4g}",
            percentile=bound.percentile_text,
            ttft=f"{bound.ttft_ms:g}",
            percentile_tpot=bound.percentile_text,
            tpot=f"{bound.tpot_ms:g}",
        )
    if bound.token_latencies:  # a query latency bound was not judged
        return False, say("serving.not_latency_bounded")
    return True, say(
        "serving.server_valid",
        qps=f"{qps['value']:.4g}",
        percentile=bound.percentile_text,
        bound=f"{bound.latency_ms:g}",
    )


# AIA 1.2: programs without loopholes (issue 13) -------------------------------------------------


@dataclass(frozen=True)
class SemanticRule:
    """Which conformance cases say what an op means rather than how precisely it computes: those with
    one of `edges` (the catalog's edge tags: NaN/Inf propagation, fully masked rows, overflow) or one of
    `options` set (causal, mask). More than `max_failures` failures in one kernel family fails it."""

    edges: frozenset[str]
    options: frozenset[str]
    max_failures: int


def semantic_rule(value: Any) -> SemanticRule | None:
    if not isinstance(value, dict):
        return None
    return SemanticRule(
        edges=frozenset(str(e) for e in value.get("edges") or ()),
        options=frozenset(str(o) for o in value.get("options") or ()),
        max_failures=int(value.get("max_failures_per_family", 0)),
    )


def semantic_tags(*, kernel: str, case: str, rule: SemanticRule) -> tuple[str, ...]:
    """The semantic properties a conformance case tests, read from the platform's own copy of the
    catalog (never from the document): its edge tag and its causal / mask options."""
    from runners.catalog import KERNELS

    spec = KERNELS.get(kernel)
    found = next((c for c in getattr(spec, "cases", ()) if c.name == case), None)
    if found is None:
        return ()
    tags = [found.edge] if found.edge in rule.edges else []
    tags += [option for option in sorted(rule.options) if found.options.get(option)]
    return tuple(tags)


def kernel_family(kernel: str) -> str:
    """The catalog family a kernel belongs to (attention, normalization, ...); a kernel the catalog
    does not know is a family of its own."""
    from runners.catalog import kernel_family as catalog_family

    return catalog_family(kernel) or kernel


def server_verdict_problems(report: dict[str, Any] | None) -> list[str]:
    """Where the platform's own recomputation of a document (the ingestion spot check, and any later
    server round stored beside it) disagrees with the runner: every listed failure, disagreement or
    mismatch, and any part whose verdict is "fail"."""
    problems: list[str] = []

    def visit(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        for key in ("failures", "disagreements", "mismatches"):
            entries = node.get(key)
            if isinstance(entries, list):
                problems.extend(f"{path}{entry}" for entry in entries)
        if node.get("verdict") == "fail":
            problems.append(f"{path}{say('server_verdicts.part_failed')}")
        for key, child in node.items():
            if isinstance(child, dict):
                visit(child, f"{path}{key}: ")

    visit(report or {}, "")
    return problems


def measured_declared_dtypes(peaks: dict[str, float]) -> tuple[list[str], list[str]]:
    """The dtypes whose GEMM measures each declared peak, and the declared peak keys no benchmark
    measures (tf32)."""
    from apps.registry.models import PEAK_MEASURED_DTYPE

    measured = [PEAK_MEASURED_DTYPE[key] for key in PEAK_MEASURED_DTYPE if peaks.get(key) is not None]
    unmeasured = sorted(key for key in peaks if key not in PEAK_MEASURED_DTYPE)
    return measured, unmeasured


# Collectives (issue 16) ---------------------------------------------------------------------------

COLLECTIVE_KIND = "collective"


@dataclass(frozen=True)
class CollectiveFigure:
    """One collective's bandwidth as nccl-tests prints it (doc/PERFORMANCE.md): the operation, dtype,
    message size S in bytes and ranks n, the time t of one call, algbw = S / t and busbw = algbw times
    the op's bus factor, in GB/s (1e9 bytes per second). busbw is the measurement's value; None where
    the runner refused the figure (its clocks disagreed)."""

    op: str
    case: str  # the runner's case name (the size asked for: all_to_all rounds S to whole rows)
    dtype: str
    size_bytes: int
    world_size: int
    time_us: float | None
    algbw_gbps: float | None
    busbw_gbps: float | None
    unstable: bool


def _number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def collective_figures(rows: Iterable[Any]) -> list[CollectiveFigure]:
    """The `collective` measurement rows (stored rows keep the runner's params nested under "params";
    hand-made rows may hold them flat) as figures, ordered by op, dtype and message size."""
    figures = []
    for row in rows:
        if getattr(row, "kind", None) != COLLECTIVE_KIND:
            continue
        params = serving_params({"params": row.params})
        time_s = _number_or_none(params.get("time_s"))
        figures.append(
            CollectiveFigure(
                op=str(params.get("op") or row.name.split("/")[0]),
                case=str(params.get("case") or ""),
                dtype=str(row.dtype or params.get("dtype") or ""),
                size_bytes=int(_number_or_none(params.get("bytes")) or 0),
                world_size=int(_number_or_none(params.get("world_size")) or 0),
                time_us=None if time_s is None else time_s * 1e6,
                algbw_gbps=_number_or_none(params.get("algbw_gbps")) if row.value is not None else None,
                busbw_gbps=_number_or_none(row.value),
                unstable=bool(getattr(row, "unstable", False)),
            )
        )
    return sorted(figures, key=lambda f: (f.op, f.dtype, f.size_bytes, f.case))
