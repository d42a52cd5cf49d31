"""Texts the platform records in English and shows in the reader's language (issue 17).

Criterion explanations, the judge's details, a campaign's evaluation reason, a tender requirement's line
and the export-control explanation are written in English when they are judged, and kept as written
(the record, the audit trail and the API say what was decided, in the words it was decided in). The
portal shows them in the reader's language from this module, the one home of each message's format:

- `say(code, **params)` writes a message: the English text (a `Said`, a str that also carries its code
  and params, so a caller that stores them can record the structured form next to the text);
- `localize(text, code=..., params=...)` renders it in the active language: from the recorded code and
  params when there are some; else the catalogue's translation when the text is a msgid (a program's
  criterion title, a rule's notice: certification/data_msgids.py); else, for records written before (or
  a text that lost its code on the way), from the params the phrase's format reads back out of the
  English text; else, for texts joined by "; " (or a list's last item, with its full stop), each on
  its own; and the text itself otherwise.

Each format is a msgid of the catalogue (marked with gettext_noop so `makemessages` extracts it), with
`%(name)s` placeholders: the English text is the msgid filled in, the translation the msgstr filled in
with the same values. Values are formatted once, in English, when the text is written (numbers such as
"100.00%" or "15,830.4" read the same in Chinese).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import get_language, gettext, gettext_noop, pgettext

from certification.data_msgids import MSGIDS

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class Separator:
    """A list's separator that splits only where `starts` (a regex) begins the next item."""

    text: str
    starts: str

    def split(self, value: str) -> list[str]:
        return re.split(re.escape(self.text) + f"(?={self.starts})", value)


# The criteria of an evaluation's lists: each item starts with the criterion's id (B4, S12, A3).
CRITERIA = Separator("; ", r"[A-Z]+\d+ ")


@dataclass(frozen=True)
class Phrase:
    code: str
    msgid: str
    # A param's value that is itself a recorded text (a nested explanation) is localized too.
    nested: frozenset[str] = field(default_factory=frozenset)
    # A param holding recorded texts joined by a separator (name -> separator, or a Separator when an
    # item may hold the separator itself): each is localized.
    lists: dict[str, str | Separator] = field(default_factory=dict)
    # Regexes a param must match when a text is read back (default: any non-empty run, shortest first).
    patterns: dict[str, str] = field(default_factory=dict)
    # Among formats that read a text with as much literal text, the higher `narrower` wins: a format
    # whose patterns only a few texts fit (a tender requirement's line) over a general one of the same
    # words ("%(name)s: %(text)s").
    narrower: int = 0

    def english(self, params: dict[str, Any]) -> str:
        return self.msgid % {name: str(value) for name, value in params.items()}

    def matcher(self) -> re.Pattern[str]:
        parts, last = [], 0
        for match in PLACEHOLDER.finditer(self.msgid):
            parts.append(re.escape(self.msgid[last : match.start()]))
            name = match.group(1)
            parts.append(f"(?P<{name}>{self.patterns.get(name, '.+?')})")
            last = match.end()
        parts.append(re.escape(self.msgid[last:]))
        return re.compile("^" + "".join(parts) + "$", re.S)


class Said(str):
    """An English text written from a phrase: a str, plus the phrase's code and the params."""

    code: str
    params: dict[str, str]

    def __new__(cls, text: str, code: str, params: dict[str, str]) -> Said:
        said = super().__new__(cls, text)
        said.code, said.params = code, params
        return said

    def __reduce__(
        self,
    ) -> tuple[Any, ...]:  # pickle and deepcopy (a cache, a copied snapshot) keep all three
        return (Said, (str(self), self.code, self.params))


NUMBER = r"-?[\d,]+(?:\.\d+)?"
# A number as Python's :.4g writes it (12.5, 7, 1.53e+03).
SCI = r"-?\d+(?:\.\d+)?(?:e[+-]\d+)?"
TITLES_WITH_COLON = [re.escape(title) for title in sorted(MSGIDS, key=len, reverse=True) if ": " in title]
INT = r"\d+"

PHRASES: dict[str, Phrase] = {}


def _phrase(code: str, msgid: str, **options: Any) -> Phrase:
    phrase = Phrase(code, msgid, **options)
    assert code not in PHRASES, code
    PHRASES[code] = phrase
    return phrase


# Criterion explanations (apps/certificates/criteria.py) ---------------------------------------------
_phrase("criterion.no_pass_rate", gettext_noop("The level states no conformance pass rate."))
_phrase("criterion.no_claims_ratio", gettext_noop("The level states no claims ratio."))
_phrase("criterion.no_stability_bound", gettext_noop("The level states no bound on unstable measurements."))
_phrase("criterion.no_serving", gettext_noop("The level states no serving settings."))
_phrase("criterion.no_conformance", gettext_noop("No accepted conformance evidence."))
_phrase("criterion.no_evidence_at_all", gettext_noop("No accepted evidence."))
_phrase("conformance.none_supported", gettext_noop("No supported cases of %(dtypes)s."))
_phrase(
    "conformance.dtype_missing",
    gettext_noop(
        "%(passed)s of %(judged)s supported cases pass, but this level requires every dtype it names: %(problems)s."
    ),
    lists={"problems": "; "},
    patterns={"passed": INT, "judged": INT},
)
_phrase(
    "conformance.pass",
    gettext_noop("%(passed)s of %(judged)s cases pass (%(rate)s)."),
    patterns={"passed": INT, "judged": INT, "rate": NUMBER + "%"},
)
_phrase(
    "conformance.fail",
    gettext_noop("%(passed)s of %(judged)s cases pass (%(rate)s), below %(threshold)s."),
    patterns={"passed": INT, "judged": INT, "rate": NUMBER + "%", "threshold": NUMBER + "%"},
)
_phrase("model_accuracy.no_model", gettext_noop("The campaign ran no model."))
_phrase(
    "model_accuracy.no_evidence",
    gettext_noop("no %(dtype)s accuracy evidence (job %(state)s)"),
    nested=frozenset({"state"}),
    patterns={"dtype": r"\w+", "state": r"\w+"},
)
_phrase(
    "model_accuracy.below",
    gettext_noop("%(metric)s %(value)s below %(bar)s"),
    patterns={"metric": r"\S+", "value": r"\S+", "bar": r"\S+"},
)
_phrase(
    "model_accuracy.fp8_below",
    gettext_noop(
        "on the block-scaled FP8 path: %(metric)s %(value)s (FP8 bar %(bar)s), logit_cosine_mean "
        "%(cosine)s (FP8 bar %(cosine_bar)s)"
    ),
    patterns={"metric": r"\S+", "value": r"\S+", "bar": r"\S+", "cosine": r"\S+", "cosine_bar": r"\S+"},
)
# Why a required dtype fails the level (judge.conformance_dtype_problem).
_phrase(
    "conformance.dtype_none", gettext_noop("the device runs no case of %(dtype)s"), patterns={"dtype": r"\w+"}
)
_phrase(
    "conformance.dtype_unsupported",
    gettext_noop("%(unsupported)s %(dtype)s case(s) unsupported, %(tolerated)s tolerated"),
    patterns={"unsupported": INT, "dtype": r"\w+", "tolerated": INT},
)
_phrase(
    "conformance.dtype_rate",
    gettext_noop("%(dtype)s pass rate %(rate)s below %(bar)s"),
    patterns={"dtype": r"\w+", "rate": NUMBER + "%", "bar": NUMBER + "%|None"},
)
_phrase(
    "model_accuracy.any",
    gettext_noop("%(passing)s of %(total)s model(s) reach the %(dtype)s accuracy bar (any required)."),
    patterns={"passing": INT, "total": INT, "dtype": r"\w+"},
)
_phrase(
    "model_accuracy.all",
    gettext_noop("%(passing)s of %(total)s model(s) reach the %(dtype)s accuracy bar (all required)."),
    patterns={"passing": INT, "total": INT, "dtype": r"\w+"},
)
_phrase(
    "model_accuracy.any_failing",
    gettext_noop(
        "%(passing)s of %(total)s model(s) reach the %(dtype)s accuracy bar (any required). %(failing)s"
    ),
    lists={"failing": "; "},
    patterns={"passing": INT, "total": INT, "dtype": r"\w+"},
)
_phrase(
    "model_accuracy.all_failing",
    gettext_noop(
        "%(passing)s of %(total)s model(s) reach the %(dtype)s accuracy bar (all required). %(failing)s"
    ),
    lists={"failing": "; "},
    patterns={"passing": INT, "total": INT, "dtype": r"\w+"},
)
_phrase("architectures.none_named", gettext_noop("The criterion names no architecture or no dtype."))
_phrase(
    "architectures.not_run",
    gettext_noop("%(architecture)s: no model of this architecture was run"),
    patterns={"architecture": r"\S+"},
)
_phrase(
    "architectures.below",
    gettext_noop("%(dtype)s %(metric)s %(value)s below the level's bar"),
    patterns={"dtype": r"\w+", "metric": r"\S+", "value": r"\S+"},
)
_phrase(
    "architectures.fp8_below",
    gettext_noop(
        "%(dtype)s on the block-scaled FP8 path: %(metric)s %(value)s and logit_cosine_mean %(cosine)s "
        "do not both reach the level's FP8 bars"
    ),
    patterns={"dtype": r"\w+", "metric": r"\S+", "value": r"\S+", "cosine": r"\S+"},
)
_phrase(
    "architectures.not_fp8",
    gettext_noop(
        "not an FP8-path run (the registered file holds no FP8 weights or the plan asked for no FP8 computation)"
    ),
)
_phrase(
    "architectures.model_failed",
    gettext_noop("%(model)s (job %(job)s): %(failed)s"),
    lists={"failed": ", "},
    patterns={"model": r"\S+", "job": INT},
)
_phrase(
    "architectures.pass",
    gettext_noop(
        "%(met)s of %(required)s required architecture(s) (%(names)s) run to the level's accuracy bar in %(dtypes)s."
    ),
    patterns={"met": INT, "required": INT},
)
_phrase(
    "architectures.fail",
    gettext_noop(
        "%(met)s of %(required)s required architecture(s) (%(names)s) run to the level's accuracy bar in "
        "%(dtypes)s. Missing: %(missing)s."
    ),
    lists={"missing": "; "},
    patterns={"met": INT, "required": INT},
)
_phrase(
    "fingerprint.differs",
    gettext_noop("Fingerprint differs from the registered target: %(problems)s."),
    lists={"problems": "; "},
)
# A document's problem, named by its job (a fingerprint's, a math mode's, a server verdict's).
_phrase(
    "fingerprint.job_problem",
    gettext_noop("job %(job)s: %(problem)s"),
    nested=frozenset({"problem"}),
    patterns={"job": INT},
)
_phrase(
    "fingerprint.math_mode",
    gettext_noop("job %(job)s: math mode not accepted at this level: %(problem)s"),
    nested=frozenset({"problem"}),
    patterns={"job": INT},
)
# How a document's math modes depart from the level's (runners/math_modes.py: no Django there, read back).
_phrase("math_mode.none_recorded", gettext_noop("the document records no math-mode flags"))
_phrase("math_mode.not_recorded", gettext_noop("%(flag)s not recorded"), patterns={"flag": r"\w+"})
_phrase(
    "math_mode.departs",
    gettext_noop("%(flag)s was %(value)s, the level accepts %(accepted)s"),
    patterns={"flag": r"\w+", "value": r"[^,]+", "accepted": r"\[.*\]"},
)
_phrase(
    "fingerprint.several",
    gettext_noop("The documents of this campaign report different devices or software stacks."),
)
_phrase(
    "fingerprint.pass",
    gettext_noop("%(count)s document(s) accepted; each fingerprint matched the registered target."),
    patterns={"count": INT},
)
_phrase("integrity.unknown", gettext_noop("Unknown integrity check %(check)s."))
# The integrity checks' names as the explanations spell them.
CHECK_NAMES = (gettext_noop("output consistency"), gettext_noop("caching"))
_phrase("integrity.none", gettext_noop("No %(check)s result in the evidence."), nested=frozenset({"check"}))
_phrase(
    "integrity.pass",
    gettext_noop("All %(count)s %(check)s results pass."),
    nested=frozenset({"check"}),
    patterns={"count": INT},
)
_phrase(
    "integrity.fail",
    gettext_noop("%(failed)s of %(count)s %(check)s results fail: %(details)s."),
    nested=frozenset({"check"}),
    lists={"details": ", "},
    patterns={"failed": INT, "count": INT},
)
_phrase(
    "timing.not_applicable",
    gettext_noop(
        "No figure was timed by device events (the host clock timed them all): nothing to cross-check."
    ),
)
_phrase(
    "timing.pass",
    gettext_noop(
        "All %(count)s events-timed figures agree with the host clock (events / host clock within %(bounds)s)."
    ),
    patterns={"count": INT},
)
_phrase(
    "timing.fail",
    gettext_noop("%(failed)s of %(count)s events-timed figures disagree with the host clock: %(details)s."),
    patterns={"failed": INT, "count": INT},
)
_phrase(
    "reveal.fail",
    gettext_noop("Product integrity failure (commit and reveal): %(details)s."),
    lists={"details": "; "},
)
_phrase(
    "reveal.pass",
    gettext_noop(
        "%(revealed)s sampled output(s) of %(documents)s document(s) revealed; each matches its commitment "
        "and the platform's own verdict."
    ),
    patterns={"revealed": INT, "documents": INT},
)
_phrase(
    "claims.impossible",
    gettext_noop(
        "A figure above %(ratio)s of the declared peak or bandwidth (physically impossible: a wrong "
        "declaration or a cheated timing): %(figures)s."
    ),
)
_phrase(
    "claims.no_peak",
    gettext_noop("The chip declared no peak for the measured dtypes when the campaign was submitted."),
)
_phrase(
    "claims.above_peak",
    gettext_noop(
        "Best GEMM above %(ratio)s of the declared peak (declaration or timing not credible): %(figures)s."
    ),
)
_phrase("claims.not_measured", gettext_noop("No stable GEMM measurement for %(dtypes)s."))
_phrase("claims.low", gettext_noop("Best GEMM below %(ratio)s of the declared peak: %(figures)s."))
_phrase("claims.pass", gettext_noop("Best GEMM per dtype: %(figures)s."), lists={"figures": ", "})
_phrase(
    "claims.figure",
    gettext_noop("%(dtype)s %(ratio)s of declared"),
    patterns={"dtype": r"\w+", "ratio": INT + "%"},
)
_phrase("stability.none", gettext_noop("No timed measurement in the evidence."))
_phrase(
    "stability.result",
    gettext_noop("%(unstable)s of %(total)s timed measurements unstable (%(fraction)s; at most %(bound)s)."),
    patterns={"unstable": INT, "total": INT},
)
_phrase("serving.no_decoder", gettext_noop("No decoder LLM was submitted."))
_phrase("serving.no_job", gettext_noop("The campaign ran no serving job."))
_phrase(
    "collectives.one_device",
    gettext_noop("The target declares %(devices)s device: no collective to certify."),
    patterns={"devices": INT},
)
_phrase(
    "collectives.no_evidence",
    gettext_noop("The campaign has no accepted collectives evidence for its %(devices)s devices."),
    patterns={"devices": INT},
)
_phrase(
    "collectives.fail",
    gettext_noop(
        "%(passed)s of %(total)s collectives cases give the reference's answer on %(devices)s devices."
    ),
    patterns={"passed": INT, "total": INT, "devices": INT},
)
_phrase(
    "collectives.pass",
    gettext_noop(
        "All %(total)s collectives cases pass on %(devices)s devices; bus bandwidth at the largest size: "
        "%(figures)s."
    ),
    patterns={"total": INT, "devices": INT},
)
_phrase(
    "server_verdicts.fail",
    gettext_noop("The platform's own recomputation disagrees with the runner: %(problems)s."),
)
_phrase(
    "server_verdicts.pass",
    gettext_noop("%(count)s document(s); no server-side verdict disagrees with the runner."),
    patterns={"count": INT},
)
_phrase("semantic.no_rule", gettext_noop("The level states no rule for semantic cases."))
_phrase("semantic.none", gettext_noop("No semantic case of %(dtypes)s in the evidence."))
_phrase(
    "semantic.pass",
    gettext_noop("All %(total)s semantic cases pass in %(families)s kernel families."),
    patterns={"total": INT, "families": INT},
)
_phrase(
    "semantic.fail",
    gettext_noop(
        "Semantic cases fail in %(families)s kernel family(ies) (%(tolerated)s failure(s) tolerated per family): "
        "%(details)s."
    ),
    patterns={"families": INT, "tolerated": INT},
)
# The serving criterion's line per model (apps/certificates/criteria.py, judge.serving_*) ----------------
_phrase(
    "serving.lines",
    gettext_noop("%(lines)s."),
    lists={"lines": "; "},
    patterns={"lines": r"[^;:.]+: .+"},  # each line names its model first
)
# A named item and its recorded text (a model's serving line, an integrity check's failing figure).
_phrase(
    "named.item",
    gettext_noop("%(name)s: %(text)s"),
    nested=frozenset({"text"}),
    patterns={"text": r".*[^.]"},  # a sentence that ends with a full stop is a list of them (serving.lines)
)
_phrase("serving.no_evidence", gettext_noop("no accepted serving evidence"))
_phrase("serving.no_accuracy", gettext_noop("%(text)s; no accuracy-mode result"), nested=frozenset({"text"}))
_phrase(
    "serving.accuracy_below",
    gettext_noop("%(text)s; served %(metric)s %(value)s below %(bar)s"),
    nested=frozenset({"text"}),
    patterns={"metric": r"\S+", "value": NUMBER, "bar": r"\S+"},
)
# A part of a server-side recomputation whose own verdict is fail (judge.server_verdict_problems).
_phrase("server_verdicts.part_failed", gettext_noop("verdict fail"))
_phrase("serving.invalid", gettext_noop("LoadGen judged the run INVALID"))
_phrase("serving.no_value", gettext_noop("no value"))
# The Server rate's consistency checks (runners/serving_rate.py writes the runner's; the judge re-checks).
_phrase(
    "serving.rate_not_sustained",
    gettext_noop(
        "rate not sustained: LoadGen completed %(completed)s samples/s of %(scheduled)s scheduled "
        "(%(share)s; at least %(required)s required)"
    ),
    patterns={"completed": SCI, "scheduled": SCI, "share": INT + "%", "required": INT + "%"},
)
_phrase(
    "serving.rate_above_offline",
    gettext_noop(
        "Server rate %(rate)s QPS above the model's Offline throughput %(offline)s samples/s by more than "
        "%(tolerance)s"
    ),
    patterns={"rate": SCI, "offline": SCI, "tolerance": INT + "%"},
)
_phrase(
    "serving.no_server_summary",
    gettext_noop("no LoadGen Server summary matching the run's digest to check its sustained rate"),
)
_phrase(
    "serving.no_offline_summary",
    gettext_noop("no LoadGen Offline summary matching its digest to bound the Server rate"),
)
_phrase("serving.no_offline_rate", gettext_noop("no Offline samples per second to bound the Server rate"))
_phrase(
    "serving.no_rates",
    gettext_noop("the LoadGen summary states no scheduled and completed samples per second"),
)
_phrase(
    "serving.not_server_summary", gettext_noop("the LoadGen summary is not a Server run's (%(scenario)s)")
)
_phrase("serving.no_server_result", gettext_noop("no Server result"))
_phrase("serving.level_no_token_bound", gettext_noop("the level states no %(name)s bound"))
_phrase(
    "serving.not_token_bounded",
    gettext_noop("the Server run was not bounded by the level's %(name)s %(limit)s ms"),
    patterns={"name": "TTFT|TPOT", "limit": NUMBER},
)
_phrase("serving.level_no_scenario", gettext_noop("the level states no %(scenario)s serving settings"))
_phrase(
    "serving.min_duration_below",
    gettext_noop("minimum duration (ms) %(used)s below the level's %(bar)s"),
    patterns={"used": NUMBER + "|none", "bar": NUMBER},
)
_phrase(
    "serving.min_queries_below",
    gettext_noop("minimum query count %(used)s below the level's %(bar)s"),
    patterns={"used": NUMBER + "|none", "bar": NUMBER},
)
_phrase(
    "serving.percentile_below",
    gettext_noop("latency percentile %(used)s below the level's %(bar)s"),
    patterns={"used": NUMBER + "|None", "bar": NUMBER},
)
_phrase(
    "serving.bound_looser",
    gettext_noop("latency bound %(used)s s looser than the level's %(bar)s s"),
    patterns={"used": NUMBER + "|None", "bar": NUMBER},
)
_phrase(
    "serving.token_bound_looser",
    gettext_noop("%(name)s bound %(used)s s looser than the level's %(bar)s s"),
    patterns={"name": "TTFT|TPOT", "used": NUMBER, "bar": NUMBER},
)
# What LoadGen judged a Server run by (runners/serving_bound.py writes these; the judge re-checks).
_phrase(
    "serving.server_valid",
    gettext_noop("%(qps)s QPS VALID at p%(percentile)s <= %(bound)s ms"),
    patterns={"qps": SCI, "percentile": SCI, "bound": SCI},
)
_phrase(
    "serving.server_valid_tokens",
    gettext_noop(
        "%(qps)s QPS VALID at TTFT p%(percentile)s <= %(ttft)s ms and TPOT p%(percentile_tpot)s <= %(tpot)s ms"
    ),
    patterns={"qps": SCI, "percentile": SCI, "ttft": SCI, "percentile_tpot": SCI, "tpot": SCI},
)
_phrase(
    "serving.not_latency_bounded",
    gettext_noop(
        "the Server run was judged in LoadGen's token-latency mode (TTFT and TPOT), not by a query latency bound"
    ),
)
_phrase("serving.no_bound_summary", gettext_noop("no LoadGen Server summary states the run's latency bound"))
_phrase("serving.no_percentile", gettext_noop("the figure states no latency percentile"))
_phrase(
    "serving.token_bound_alone",
    gettext_noop("the LoadGen summary states a TTFT or TPOT bound without the other"),
)
_phrase("serving.summary_no_bound", gettext_noop("the LoadGen summary states no latency bound"))
_phrase(
    "serving.bound_disagrees",
    gettext_noop(
        "the figure's %(name)s bound %(stated)s ms is not the %(used)s ms LoadGen's summary records"
    ),
    patterns={"name": "TTFT|TPOT|latency", "stated": SCI, "used": SCI},
)
_phrase(
    "serving.summary_no_row",
    gettext_noop("the LoadGen summary prints no p%(percentile)s %(name)s to check the bound"),
    patterns={"percentile": SCI, "name": "TTFT|TPOT|latency"},
)
_phrase(
    "serving.bound_not_met",
    gettext_noop(
        "LoadGen's summary shows %(name)s p%(percentile)s %(measured)s ms above its bound %(bound)s ms"
    ),
    patterns={"name": "TTFT|TPOT|latency", "percentile": SCI, "measured": SCI, "bound": SCI},
)
_phrase("criterion.unknown_kind", gettext_noop("Unknown criterion kind %(kind)s."))
_phrase("criterion.error", gettext_noop("The criterion could not be evaluated: %(error)s"))

# The judge's details (apps/certificates/judge.py, apps/portal/evidence.py) ----------------------------
_phrase(
    "test01.counts",
    gettext_noop("%(mismatches)s mismatch(es) in %(sampled)s sampled output(s)"),
    patterns={"mismatches": INT, "sampled": INT},
)
_phrase(
    "test01.looser",
    gettext_noop("%(detail)s, judged at %(key)s %(used)s, looser than the program's %(bar)s"),
    nested=frozenset({"detail"}),
    patterns={"key": "rtol|atol", "used": SCI, "bar": SCI},
)
_phrase(
    "test04.stale_buffers",
    gettext_noop(
        "%(stale)s of %(checked)s fresh call(s) returned another output than the device's own for their values "
        "(a result cache keyed on the buffers)"
    ),
    patterns={"stale": INT, "checked": r"\d+|\?"},
)
_phrase(
    "test04.wrong_reference",
    gettext_noop(
        "%(wrong)s of %(checked)s fresh output(s) checked against the float64 reference of their values are "
        "outside the tolerance (another input's result)"
    ),
    patterns={"wrong": INT, "checked": r"\d+|\?"},
)
# TEST04's probe calls in the judge's frames (judge.caching_verdict, runners/probe_frames.py); the label
# names the probed benchmark or model and its dtype.
_phrase(
    "test04.host_frames_outside",
    gettext_noop(
        "%(label)s: the device's reported time of its TEST04 probe calls over the judge's clock around them "
        "%(least)s to %(most)s (outside %(bounds)s): its TEST04 timings are refused"
    ),
    patterns={"label": r"[^:;]+", "least": NUMBER + r"|\?", "most": NUMBER + r"|\?"},
)
_phrase(
    "test04.host_frames_broken",
    gettext_noop(
        "%(label)s: the TEST04 probe's timings or fresh outputs are not the ones its calls reported in the "
        "judge's frames: its TEST04 timings are refused"
    ),
    patterns={"label": r"[^:;]+"},
)
# A timed figure's clock check (judge.timing_verdict); the label names the figure (benchmark and dtype).
_phrase(
    "timing.no_check",
    gettext_noop("%(label)s: timed by device events without the host-clock check"),
    patterns={"label": r"[^:;]+"},
)
_phrase(
    "timing.no_figures", gettext_noop("%(label)s: no usable raw clock figures"), patterns={"label": r"[^:;]+"}
)
_phrase(
    "timing.within",
    gettext_noop("%(label)s: events / host clock %(ratio)s (within %(bounds)s)"),
    patterns={"label": r"[^:;]+", "ratio": NUMBER},
)
_phrase(
    "timing.outside",
    gettext_noop("%(label)s: events / host clock %(ratio)s (outside %(bounds)s)"),
    patterns={"label": r"[^:;]+", "ratio": NUMBER},
)
# The runner's claimed best figure against its measurements (judge.claimed_best).
_phrase("claims.no_certifiable", gettext_noop("no certifiable measurement"))
_phrase("claims.no_claim", gettext_noop("the runner claims no certifiable figure"))
_phrase(
    "claims.claim_unshown",
    gettext_noop("the runner's %(key)s claim (%(name)s: %(value)s) is not a figure its measurements show"),
    patterns={"key": r"\w+"},
)
_phrase(
    "claims.claim_excluded",
    gettext_noop("the runner's %(key)s (%(name)s) is excluded: %(reason)s"),
    nested=frozenset({"reason"}),
    patterns={"key": r"\w+"},
)
_phrase(
    "claims.claim_not_best",
    gettext_noop("the runner's %(key)s (%(name)s) is not its best certifiable figure (%(best)s)"),
    patterns={"key": r"\w+"},
)
# Why a measured figure may not feed a headline (judge.measurement_exclusion).
_phrase("measurement.unstable", gettext_noop("unstable timing (high coefficient of variation)"))
_phrase("measurement.flagged", gettext_noop("flagged: %(flags)s"))
# Why a serving energy figure is not certified (judge.serving_energy_problem).
_phrase("energy.unit", gettext_noop("unit %(unit)s is not an energy per query or per token"))
_phrase(
    "energy.not_server", gettext_noop("energy is certified from the Server run at the level's bound only")
)
_phrase("energy.no_meter", gettext_noop("no meter measured it"))
_phrase("energy.no_meter_named", gettext_noop("no meter named for it"))
_phrase("energy.not_positive", gettext_noop("not a positive energy"))
_phrase("test01.no_counts", gettext_noop("no raw mismatch count in the document"))
_phrase("test01.none_sampled", gettext_noop("no output was sampled"))
_phrase(
    "integrity.runner_verdict_counts",
    gettext_noop("runner verdict %(verdict)s (no raw counts in the document)"),
)
_phrase(
    "integrity.runner_verdict_timings",
    gettext_noop("runner verdict %(verdict)s (no raw timings in the document)"),
)
_phrase("test04.no_timings", gettext_noop("no raw TEST04 timings in the document"))
_phrase(
    "test04.within",
    gettext_noop(
        "repeat-input speed-up %(speedup)s (fresh / repeated median), within the bound %(bound)s: no sign of "
        "a result cache"
    ),
    patterns={"speedup": NUMBER + "|inf", "bound": NUMBER},
)
_phrase(
    "test04.cache",
    gettext_noop(
        "repeat-input speed-up %(speedup)s (fresh / repeated median), above the bound %(bound)s and the "
        "timing intervals are separated: a result cache"
    ),
    patterns={"speedup": NUMBER + "|inf", "bound": NUMBER},
)
_phrase(
    "test04.noise",
    gettext_noop(
        "repeat-input speed-up %(speedup)s (fresh / repeated median), above the bound %(bound)s, but the "
        "fresh and repeated timing intervals overlap, so the speed-up is within the noise: not counted as "
        "caching"
    ),
    patterns={"speedup": NUMBER + "|inf", "bound": NUMBER},
)
_phrase("timing.row_not_applicable", gettext_noop("the host clock timed every figure"))
_phrase(
    "timing.runner_refused",
    gettext_noop("the runner refused figures whose events disagreed with the host clock"),
)
_phrase(
    "timing.raw_disagreement",
    gettext_noop("the runner's judge refused figures that disagree with the raw timings the device returned"),
)
_phrase(
    "timing.host_frames_outside",
    gettext_noop(
        "%(label)s: the device's reported time of its timed loops over the judge's clock around them "
        "%(least)s to %(most)s (outside %(bounds)s): its timed figures are refused"
    ),
    patterns={"label": r"[^:;]+", "least": NUMBER + r"|\?", "most": NUMBER + r"|\?"},
)
_phrase(
    "timing.row_pass",
    gettext_noop("%(count)s events-timed figure(s) within %(bounds)s of the host clock"),
    patterns={"count": INT},
)

# Commit and reveal (judge.reveal_problem, apps/runs/services/reveal.py) ---------------------------------
_phrase("reveal.not_drawn", gettext_noop("no reveal was drawn for this document"))
_phrase("reveal.pending", gettext_noop("the runner has not revealed the sampled outputs yet"))
_phrase("reveal.expired", gettext_noop("the runner did not reveal the sampled outputs in time"))
_phrase("reveal.mismatch", gettext_noop("reveal mismatch"))
_phrase(
    "reveal.contradicts",
    gettext_noop("the reveal contradicts the runner's commitment or verdicts: %(findings)s"),
    lists={"findings": "; "},
)
_phrase(
    "reveal.disagrees",
    gettext_noop("%(output)s: the platform judges it %(server)s, the runner said %(runner)s"),
    patterns={"output": r"\S+", "server": r"\w+", "runner": r"\w+"},
)
_phrase(
    "reveal.job_detail",
    gettext_noop("job %(job)s (%(suite)s): %(detail)s"),
    nested=frozenset({"detail"}),
    patterns={"job": INT, "suite": r"[\w-]+"},
)
_phrase("spot_check.not_conformance", gettext_noop("not a conformance document: no case to recompute"))
# The reveal's findings (apps/runs/services/reveal.py _judge, reveals_expire) and the job errors they make.
_phrase(
    "reveal.disagrees_because",
    gettext_noop("%(output)s: the platform judges it %(server)s, the runner said %(runner)s (%(detail)s)"),
    nested=frozenset({"detail"}),
    patterns={"output": r"\S+", "server": r"\w+", "runner": r"\w+"},
)
_phrase(
    "reveal.not_revealed",
    gettext_noop("%(output)s: not revealed, though committed"),
    patterns={"output": r"\S+"},
)
_phrase(
    "reveal.digest_mismatch",
    gettext_noop("%(output)s: the revealed output is not the one committed (digest %(digest)s…)"),
    patterns={"output": r"\S+", "digest": r"[0-9a-f]+"},
)
_phrase(
    "reveal.runner_error",
    gettext_noop("the runner could not reveal the sampled outputs: %(error)s"),
    nested=frozenset({"error"}),
)
_phrase(
    "reveal.unreadable", gettext_noop("the reveal cannot be read: %(error)s"), nested=frozenset({"error"})
)
# Why a reveal cannot be made or read (runners/commitment.py RevealError, runners/worker.py reveal_answer:
# no Django there, read back from the text; a runner's other words stay as it sent them).
_phrase("reveal_error.no_ids", gettext_noop("the request names no list of output ids"))
_phrase("reveal_error.bad_request", gettext_noop("bad request: %(error)s"))
_phrase(
    "reveal_error.too_large",
    gettext_noop("the requested outputs take %(bytes)s bytes, more than %(max)s"),
    patterns={"bytes": INT, "max": INT},
)
_phrase("reveal_error.no_outputs", gettext_noop("the answer carries no outputs"))
_phrase("reveal_error.answer_too_large", gettext_noop("the answer is larger than a reveal may be"))
_phrase("reveal_error.not_base64", gettext_noop("the outputs are not base64"))
_phrase("reveal_error.digest", gettext_noop("the outputs do not match their digest"))
_phrase(
    "reveal_error.not_safetensors",
    gettext_noop("the outputs are not a safetensors file: %(error)s"),
    patterns={"error": r"\w+"},
)
_phrase("reveal.not_judged", gettext_noop("not judged on the platform: %(error)s"))
_phrase(
    "reveal.none_by",
    gettext_noop("no reveal from the runner by %(deadline)s"),
    patterns={"deadline": r"\d{4}-\d{2}-\d{2}T\S+"},
)
_phrase(
    "reveal.timeout",
    gettext_noop("reveal timeout: the runner did not reveal the %(count)s sampled outputs by %(deadline)s"),
    patterns={"count": INT, "deadline": r"\d{4}-\d{2}-\d{2}T\S+"},
)
_phrase(
    "reveal.integrity_failure",
    gettext_noop("commit–reveal integrity failure: %(findings)s"),
    lists={"findings": "; "},
)
_phrase(
    "reveal.too_many_bytes",
    gettext_noop("%(bytes)s bytes, more than a reveal carries"),
    patterns={"bytes": INT},
)
_phrase(
    "reveal.over_budget",
    gettext_noop("its reference costs %(cost)s elements, more than the level's budget of %(budget)s"),
    patterns={"cost": INT, "budget": INT},
)
_phrase("reveal.precomputation_failed", gettext_noop("precomputation failed: %(error)s"))
# How a revealed output departs from the platform's reference (runners/revealed.py: no Django there,
# read back from its text).
_phrase(
    "revealed.case_shape",
    gettext_noop("revealed %(shape)s %(dtype)s, the case makes %(expected)s %(expected_dtype)s"),
    patterns={"shape": r"\([\d, ]*\)", "dtype": r"\S+", "expected": r"\([\d, ]*\)"},
)
_phrase(
    "revealed.reference_shape",
    gettext_noop("revealed %(shape)s %(dtype)s, the reference is %(expected)s %(expected_dtype)s"),
    patterns={"shape": r"\([\d, ]*\)", "dtype": r"\S+", "expected": r"\([\d, ]*\)"},
)
_phrase(
    "revealed.workload_shape",
    gettext_noop("revealed %(shape)s, the workload makes %(expected)s"),
    patterns={"shape": r"\([\d, ]*\)", "expected": r"\([\d, ]*\)"},
)
_phrase(
    "revealed.score",
    gettext_noop("the document reports %(metric)s %(claimed)s, the output gives %(value)s"),
    patterns={"metric": r"\S+", "claimed": r"\S+", "value": r"\S+"},
)
_phrase(
    "revealed.items",
    gettext_noop("revealed %(shape)s for %(count)s item(s)"),
    patterns={"shape": r"\([\d, ]*\)", "count": INT},
)
# A fingerprint problem as runners/fingerprint_check.py writes it (no Django there: read back from its text).
_phrase(
    "fingerprint.not_checkable",
    gettext_noop(
        "the target registers %(key)s %(wanted)s, but the %(backend)s backend cannot report %(key2)s on this "
        "host, so it is not checkable: clear the field on the target or install what reports it"
    ),
    patterns={"key": r"\w+", "backend": r"\S+", "key2": r"\w+"},
)
_phrase(
    "fingerprint.differs_value",
    gettext_noop("%(key)s is %(actual)s, the target registers %(wanted)s"),
    patterns={"key": r"\w+"},
)

# A campaign's reason when a reviewer decides, and a certificate's status reasons
# (apps/certificates/services/*.py): a reason a person typed is a param, shown as typed.
_phrase("campaign.rejected", gettext_noop("Rejected: %(reason)s"))
_phrase("campaign.certified", gettext_noop("Certified: %(serial)s."), patterns={"serial": r"\S+"})
_phrase("certificate.superseded", gettext_noop("Superseded by %(serial)s."), patterns={"serial": r"\S+"})
_phrase(
    "certificate.validity_ended",
    gettext_noop("Validity ended on %(date)s."),
    patterns={"date": r"\d{4}-\d{2}-\d{2}"},
)
_phrase(
    "certificate.key_compromised",
    gettext_noop("signing key %(key)s compromised: %(reason)s"),
    patterns={"key": r"\S+"},
)
_phrase(
    "certificate.retest_impossible",
    gettext_noop("Re-test required (%(reason)s), but no re-test could be submitted; see the audit log."),
)

# Why a stored certificate's signature is not trusted (apps/certificates/services/certificates.py
# certificate_check, and certification/verify.py verify_payload_text: no Django there, read back).
_phrase(
    "verify.key_compromised",
    gettext_noop("it was signed with key %(key)s, reported compromised on %(date)s"),
    patterns={"key": r"\S+", "date": r"\d{4}-\d{2}-\d{2}"},
)
_phrase("verify.serial_differs", gettext_noop("the signed certificate carries a different serial"))
_phrase("verify.not_json", gettext_noop("the certificate is not valid JSON: %(error)s"))
_phrase("verify.not_object", gettext_noop("the certificate is not a JSON object"))
_phrase("verify.not_canonicalizable", gettext_noop("the certificate cannot be canonicalized: %(error)s"))
_phrase("verify.not_canonical", gettext_noop("the certificate is not in canonical form (it was altered)"))
_phrase("verify.signature_not_string", gettext_noop("the signature is not a string"))
_phrase("verify.signature_not_base64", gettext_noop("the signature is not base64"))
_phrase(
    "verify.signature_not_canonical",
    gettext_noop("the signature is not a canonical base64 Ed25519 signature"),
)
_phrase(
    "verify.signature_mismatch",
    gettext_noop("the signature does not match the certificate (it was altered or forged)"),
)
_phrase("verify.other_issuer_key", gettext_noop("the certificate names a different issuer key"))

# Why surveillance suspended a certificate (apps/certificates/services/surveillance.py, reviews.py).
_phrase(
    "certificate.surveillance_failed",
    gettext_noop("Surveillance campaign %(campaign)s failed: %(failure)s"),
    nested=frozenset({"failure"}),
    patterns={"campaign": INT},
)
_phrase("surveillance.rejected", gettext_noop("rejected by the reviewer: %(reason)s"))
_phrase(
    "surveillance.ended_because",
    gettext_noop("the campaign ended %(state)s: %(reason)s"),
    nested=frozenset({"state", "reason"}),
    patterns={"state": r"\w+"},
)
_phrase("surveillance.ended", gettext_noop("the campaign ended %(state)s"), nested=frozenset({"state"}))

# Why a job failed, as the platform records it (apps/runs/services/sweeps.py) ---------------------------
_phrase("job.deadline_passed", gettext_noop("the job passed its deadline"))
_phrase("job.runner_silent", gettext_noop("runner %(runner)s stopped sending heartbeats"))
_phrase("job.awaiting_reveal", gettext_noop("awaiting the reveal of sampled outputs"))
_phrase("job.requeued_silent", gettext_noop("no progress from the runner; the job is requeued"))

# Why a runner could not run a job, as runners/worker.py reports it (no Django there, read back; the
# exception's own words after the colon stay as the runner wrote them unless a phrase knows them).
_phrase(
    "runner.unknown_device", gettext_noop("unknown device backend: %(error)s"), nested=frozenset({"error"})
)
_phrase(
    "runner.unknown_backend",
    gettext_noop("unknown backend %(name)s; known: %(known)s"),
    patterns={"name": r"'[^']*'"},
)
_phrase(
    "runner.device_not_started",
    gettext_noop("the device process did not start: %(error)s"),
    nested=frozenset({"error"}),
)
_phrase("runner.spec_invalid", gettext_noop("the job spec fails the runner's schema: %(error)s"))
_phrase("runner.revoked", gettext_noop("stopped: the platform revoked the job"))
_phrase("runner.soft_limit", gettext_noop("the suite passed its soft time limit"))
_phrase("runner.fingerprint", gettext_noop("fingerprint mismatch: %(problems)s"), lists={"problems": "; "})

# A runner's own progress labels (runners/progress.py: no Django there, read back from its text; the
# formats are the same, tests/portal/test_i18n_last_english.py checks it).
_phrase("progress.started", gettext_noop("started"))
_phrase("progress.done", gettext_noop("done"))
_phrase("progress.model_loading", gettext_noop("model %(model)s: loading"), patterns={"model": r"\S+"})
_phrase(
    "progress.model_dtype",
    gettext_noop("model %(model)s: %(dtype)s"),
    patterns={"model": r"\S+", "dtype": r"\w+"},
)
_phrase("progress.serving", gettext_noop("serving %(model)s"), patterns={"model": r"\S+"})
_phrase("progress.caching_after", gettext_noop("integrity: caching after the fact"))

# A campaign's reason when its jobs end without evidence (apps/runs/services/campaigns.py) --------------
_phrase(
    "campaign.failed",
    gettext_noop("No evidence to evaluate: %(jobs)s"),
    # An item starts at its job's label: a job's message that holds "; " itself (a list of problems) stays whole.
    lists={"jobs": Separator("; ", r"Job \d+ ")},
)
# A job's label in those reasons (apps/runs/services/campaigns.py job_label): its id and its suite (and
# model), the suite's name a msgid as the job records it.
SUITES = (
    gettext_noop("conformance"),
    gettext_noop("performance"),
    gettext_noop("model"),
    gettext_noop("serving"),
    gettext_noop("collectives"),
)
_phrase(
    "job.label",
    gettext_noop("Job %(id)s %(suite)s"),
    nested=frozenset({"suite"}),
    patterns={"id": INT, "suite": "|".join(SUITES)},
)
_phrase(
    "job.label_model",
    gettext_noop("Job %(id)s %(suite)s:%(model)s"),
    nested=frozenset({"suite"}),
    patterns={"id": INT, "suite": "|".join(SUITES), "model": r"\S+"},
)
_phrase(
    "campaign.failed_job",
    gettext_noop("%(job)s: %(error)s %(message)s"),
    nested=frozenset({"job", "error", "message"}),
    patterns={
        "job": r"Job \d+ \S+",
        "error": "Product failure|Infrastructure|Timeout|Rejected evidence|failed|cancelled",
        "message": ".*",
    },
)

# Why ingestion refused a result (apps/runs/services/ingestion.py): the job's error and the rejection's
# reason, each problem of a list recorded as its own phrase (coverage, weights, commitment, spot check).
_phrase("ingest.not_envelope", gettext_noop("not a signed result envelope"))
_phrase("ingest.too_large", gettext_noop("document too large"))
_phrase("ingest.not_json", gettext_noop("document is not JSON"))
_phrase("ingest.not_object", gettext_noop("document is not a JSON object"))
_phrase("ingest.unknown_job", gettext_noop("the document names no known job"))
_phrase("ingest.digest", gettext_noop("the document does not match its digest (tampered in transit)"))
_phrase("ingest.unknown_key", gettext_noop("signed by a key that is not registered to any runner"))
_phrase("ingest.runner_disabled", gettext_noop("runner %(runner)s is disabled"), patterns={"runner": r"\S+"})
_phrase(
    "ingest.bad_signature", gettext_noop("the signature does not verify with the runner's registered key")
)
_phrase(
    "ingest.runner_not_bound",
    gettext_noop("runner %(runner)s is not bound to target %(target)s"),
    patterns={"runner": r"\S+", "target": r"\S+"},
)
_phrase(
    "ingest.stale_challenge",
    gettext_noop("the challenge is not this job's current one (old or replayed result)"),
)
_phrase(
    "ingest.schema_invalid",
    gettext_noop("schema-invalid document (%(count)s problem(s)): %(problems)s"),
    lists={"problems": "; "},
    patterns={"count": INT},
)
# A value as jsonschema's messages quote it (Python's repr of a JSON value).
VALUE = r"'[^']*'|\"[^\"]*\"|-?\d[\d.e+-]*|None|True|False|\[.*\]|\{.*\}"
# Each schema problem is a named.item: where in the document, and what jsonschema says of it.
_phrase(
    "schema.type",
    gettext_noop("%(value)s is not of type %(types)s"),
    patterns={"value": VALUE, "types": r"'\w+'(?:, '\w+')*"},
)
_phrase("schema.required", gettext_noop("%(name)s is a required property"), patterns={"name": r"'[^']*'"})
_phrase(
    "schema.enum",
    gettext_noop("%(value)s is not one of %(options)s"),
    patterns={"value": VALUE, "options": r"\[.*\]"},
)
_phrase(
    "schema.additional",
    gettext_noop("Additional properties are not allowed (%(names)s was unexpected)"),
)
_phrase(
    "schema.additional_many",
    gettext_noop("Additional properties are not allowed (%(names)s were unexpected)"),
)
_phrase(
    "schema.minimum",
    gettext_noop("%(value)s is less than the minimum of %(bound)s"),
    patterns={"value": VALUE},
)
_phrase(
    "schema.maximum",
    gettext_noop("%(value)s is greater than the maximum of %(bound)s"),
    patterns={"value": VALUE},
)
_phrase("schema.too_long", gettext_noop("%(value)s is too long"), patterns={"value": VALUE})
_phrase("schema.too_short", gettext_noop("%(value)s is too short"), patterns={"value": VALUE})
_phrase(
    "schema.pattern",
    gettext_noop("%(value)s does not match %(pattern)s"),
    patterns={"value": VALUE, "pattern": r"'[^']*'"},
)
_phrase(
    "schema.any_of",
    gettext_noop("%(value)s is not valid under any of the given schemas"),
    patterns={"value": VALUE},
)
_phrase("schema.not_canonical", gettext_noop("not canonical JSON: %(error)s"))
# The other validators' messages of every keyword the schemas use (runners/schema/*.json; jsonschema 4.x).
_phrase("schema.const", gettext_noop("%(value)s was expected"), patterns={"value": VALUE})
_phrase(
    "schema.exclusive_minimum",
    gettext_noop("%(value)s is less than or equal to the minimum of %(bound)s"),
    patterns={"value": VALUE},
)
_phrase(
    "schema.exclusive_maximum",
    gettext_noop("%(value)s is greater than or equal to the maximum of %(bound)s"),
    patterns={"value": VALUE},
)
_phrase("schema.non_empty", gettext_noop("%(value)s should be non-empty"), patterns={"value": VALUE})
_phrase("schema.empty", gettext_noop("%(value)s is expected to be empty"), patterns={"value": VALUE})
_phrase("schema.unique", gettext_noop("%(value)s has non-unique elements"), patterns={"value": VALUE})
_phrase(
    "schema.format",
    gettext_noop("%(value)s is not a %(format)s"),
    patterns={"value": VALUE, "format": r"'[\w-]+'"},
)
_phrase(
    "schema.one_of_many",
    gettext_noop("%(value)s is valid under each of %(schemas)s"),
    patterns={"value": VALUE},
)
_phrase(
    "schema.items_extra_one",
    gettext_noop("Expected at most %(count)s item but found %(extra)s extra: %(rest)s"),
    patterns={"count": INT, "extra": INT},
)
_phrase(
    "schema.items_extra",
    gettext_noop("Expected at most %(count)s items but found %(extra)s extra: %(rest)s"),
    patterns={"count": INT, "extra": INT},
)
_phrase(
    "schema.no_pattern",
    gettext_noop("%(names)s does not match any of the regexes: %(patterns)s"),
    patterns={"names": r"'[^']*'"},
)
_phrase(
    "schema.no_pattern_many",
    gettext_noop("%(names)s do not match any of the regexes: %(patterns)s"),
    patterns={"names": r"'[^']*'(?:, '[^']*')+"},
)
_phrase(
    "ingest.wrong_suite",
    gettext_noop("a %(document)s document for a %(job)s job"),
    patterns={"document": r"\S+", "job": r"\S+"},
)
_phrase(
    "ingest.fingerprint",
    gettext_noop("fingerprint does not match the target: %(problems)s"),
    lists={"problems": "; "},
)
_phrase(
    "ingest.weights",
    gettext_noop("the weights that ran are not the campaign's: %(problems)s"),
    lists={"problems": "; "},
)
_phrase(
    "ingest.fp8_path",
    gettext_noop("the FP8 path the runner claims is not the one the platform decides: %(problems)s"),
    lists={"problems": "; "},
)
_phrase(
    "ingest.plan",
    gettext_noop("the document does not cover the job's plan: %(problems)s"),
    lists={"problems": "; "},
)
_phrase(
    "ingest.commitment",
    gettext_noop("the commitment does not cover the outputs the document judged: %(problems)s"),
    lists={"problems": "; "},
)
_phrase(
    "ingest.spot_check",
    gettext_noop("server-side recomputation disagrees: %(failures)s"),
    lists={"failures": "; "},
)
_phrase("ingest.has_evidence", gettext_noop("the job already has accepted evidence"))
_phrase("ingest.job_state", gettext_noop("the job is %(state)s"), nested=frozenset({"state"}))
# The job states as the refusal above names them (apps/runs/models.py JobState values).
JOB_STATE_WORDS = (
    gettext_noop("queued"),
    gettext_noop("running"),
    gettext_noop("succeeded"),
    gettext_noop("failed"),
    gettext_noop("cancelled"),
)
# The weights a model document says ran (apps/runs/services/model_evidence.py).
_phrase("weights.no_record", gettext_noop("the document records no weights digests"))
_phrase("weights.not_object", gettext_noop("a models item is not an object"))
_phrase(
    "weights.no_digest", gettext_noop("%(name)s: loaded, but no digest recorded"), patterns={"name": r"\S+"}
)
_phrase(
    "weights.other",
    gettext_noop("%(name)s: the runner read weights with sha256 %(digest)s, not the registered artifact's"),
    patterns={"name": r"\S+", "digest": r"\S+"},
)
_phrase("weights.none_loaded", gettext_noop("results are reported, but no registered weights were loaded"))
# An FP8 checkpoint's path, as the registered file and the plan decide it (model_evidence.fp8_path_problems).
_phrase(
    "fp8.unreadable",
    gettext_noop("%(name)s: the registered weights file cannot be read to decide its FP8 path"),
    patterns={"name": r"\S+"},
)
_phrase(
    "fp8.not_fp8",
    gettext_noop(
        "%(name)s: the runner records the FP8 path %(claimed)s for a file that holds no FP8 weights"
    ),
    patterns={"name": r"\S+", "claimed": r"\S+"},
)
_phrase(
    "fp8.path",
    gettext_noop(
        "%(name)s: the runner records the FP8 path %(claimed)s where the registered file and the job's "
        "plan imply %(expected)s"
    ),
    patterns={"name": r"\S+", "claimed": r"\S+", "expected": r"\S+"},
)
_phrase(
    "fp8.count",
    gettext_noop(
        "%(name)s: the runner records %(claimed)s FP8 weights where the registered file holds %(count)s"
    ),
    patterns={"name": r"\S+", "claimed": r"\S+", "count": r"\d+"},
)
# How a document departs from its job's plan (apps/runs/services/coverage.py). A list's items are named
# as the document names them; one that holds ", " itself (a contradicted status) stays whole.
LISTED = Separator(", ", r"[^\s,]+(?:/|: |:\S)|\d+ more$")
_LISTED = {"lists": {"items": LISTED}}
_phrase("coverage.more", gettext_noop("%(count)s more"), patterns={"count": INT})
_phrase(
    "coverage.spec",
    gettext_noop("the document ran %(key)s=%(ran)s, the job's plan is %(planned)s"),
    patterns={"key": r"\w+"},
)
_phrase(
    "coverage.models_ran",
    gettext_noop("the document ran models %(ran)s other than the plan's %(planned)s (differing: %(keys)s)"),
    patterns={"ran": r"\[.*?\]", "planned": r"\[.*?\]"},
)
_phrase("coverage.models_count", gettext_noop("the count"))
_phrase(
    "coverage.missing",
    gettext_noop("%(count)s planned cases missing: %(items)s"),
    patterns={"count": INT},
    **_LISTED,
)
_phrase(
    "coverage.extra",
    gettext_noop("%(count)s cases outside the plan: %(items)s"),
    patterns={"count": INT},
    **_LISTED,
)
_phrase(
    "coverage.twice",
    gettext_noop("%(count)s cases recorded twice: %(items)s"),
    patterns={"count": INT},
    **_LISTED,
)
_phrase(
    "coverage.shapes",
    gettext_noop("%(count)s cases not run at the shape the job's challenge draws: %(items)s"),
    patterns={"count": INT},
    **_LISTED,
)
_phrase(
    "coverage.shape",
    gettext_noop("%(case)s ran %(ran)s, the challenge draws %(drawn)s"),
    patterns={"case": r"\S+", "ran": r"\{.*?\}|None", "drawn": r"\{.*?\}"},
)
_phrase(
    "coverage.statuses",
    gettext_noop("%(count)s case statuses the stats and the catalog's tolerance contradict: %(items)s"),
    patterns={"count": INT},
    **_LISTED,
)
_phrase(
    "coverage.status",
    gettext_noop("%(case)s says %(status)s, its stats make it %(recomputed)s"),
    patterns={"case": r"\S+", "status": r"\w+", "recomputed": r"\w+"},
)
_phrase(
    "coverage.status_why",
    gettext_noop("%(case)s says %(status)s, %(why)s"),
    nested=frozenset({"why"}),
    patterns={"case": r"\S+", "status": r"\w+"},
)
_phrase("coverage.no_stats", gettext_noop("no stats"))
_phrase(
    "coverage.tolerance",
    gettext_noop(
        "judged with atol=%(atol)s rtol=%(rtol)s, the catalog's tolerance is atol=%(catalog_atol)s rtol=%(catalog_rtol)s"
    ),
)
_phrase("coverage.no_mismatch_count", gettext_noop("stats without a mismatch count"))
_phrase("coverage.count_fraction", gettext_noop("mismatch count and fraction disagree"))
_phrase("coverage.ratio_above", gettext_noop("a tolerance ratio above 1 without a mismatch"))
_phrase(
    "coverage.models_recorded",
    gettext_noop("the document records models %(recorded)s, the plan has %(planned)s"),
)
_phrase("coverage.model_missing", gettext_noop("planned model results missing: %(items)s"), **_LISTED)
_phrase("coverage.model_outside", gettext_noop("results for models outside the plan: %(items)s"), **_LISTED)
_phrase("coverage.model_dtypes", gettext_noop("model cases in dtypes outside the plan: %(items)s"), **_LISTED)
_phrase(
    "coverage.performance_dtypes",
    gettext_noop("performance results in dtypes outside the plan: %(items)s"),
    **_LISTED,
)
_phrase("coverage.serving_missing", gettext_noop("planned serving results missing: %(items)s"), **_LISTED)
_phrase(
    "coverage.serving_outside",
    gettext_noop("serving results for models outside the plan: %(items)s"),
    **_LISTED,
)
_phrase("coverage.no_serving_record", gettext_noop("%(name)s: no serving record"), patterns={"name": r"\S+"})
_phrase(
    "coverage.offline_not_kept",
    gettext_noop("%(run)s reads Offline run %(used)s, not the kept Offline run %(kept)s"),
    patterns={"run": r"\S+"},
)
_phrase("coverage.no_log_digests", gettext_noop("%(run)s: LoadGen log digests"), patterns={"run": r"\S+"})
_phrase("coverage.no_loadgen_result", gettext_noop("%(run)s: LoadGen's Result is"), patterns={"run": r"\S+"})
_phrase("coverage.no_case", gettext_noop("%(run)s: case"), patterns={"run": r"\S+"})
_phrase("coverage.no_accuracy_run", gettext_noop("%(name)s: accuracy run"), patterns={"name": r"\S+"})
_phrase("coverage.no_collectives", gettext_noop("the document has no collectives section"))
_phrase(
    "coverage.collectives_plan", gettext_noop("the job's plan is not a valid collectives plan: %(error)s")
)
_phrase(
    "coverage.collectives_world",
    gettext_noop("the document ran on %(ran)s devices, the plan on %(planned)s"),
    patterns={"ran": r"\S+", "planned": r"\S+"},
)
_phrase(
    "coverage.collectives_one_device",
    gettext_noop("a one-device target's collectives document must be not applicable, with no cases"),
)
_phrase(
    "coverage.collectives_not_applied",
    gettext_noop("the collectives suite was not applied on %(devices)s devices: %(reason)s"),
    patterns={"devices": r"\S+"},
)
_phrase(
    "coverage.collectives_missing", gettext_noop("planned collectives cases missing: %(items)s"), **_LISTED
)
_phrase(
    "coverage.collectives_outside", gettext_noop("collectives cases outside the plan: %(items)s"), **_LISTED
)
_phrase("coverage.collectives_twice", gettext_noop("collectives cases recorded twice: %(items)s"), **_LISTED)
_phrase(
    "coverage.collectives_statuses",
    gettext_noop("collectives statuses that do not follow from their stats: %(items)s"),
    **_LISTED,
)
_phrase(
    "coverage.bandwidth",
    gettext_noop("bandwidth figures without a passing case or off nccl-tests' definitions: %(items)s"),
    **_LISTED,
)
_phrase(
    "coverage.no_served_sample",
    gettext_noop("%(name)s: no output-consistency sample of the timed serving runs (TEST01)"),
    patterns={"name": r"\S+"},
)
_phrase(
    "coverage.served_sample_runs",
    gettext_noop("%(name)s: the TEST01 sample does not cover every timed serving run"),
    patterns={"name": r"\S+"},
)
_phrase(
    "coverage.served_outputs_replayed",
    gettext_noop(
        "%(name)s: the served outputs kept in the timed runs are not the ones this job's challenge draws "
        "(%(runs)s): evidence of another run"
    ),
    patterns={"name": r"\S+"},
)
_phrase(
    "coverage.served_count",
    gettext_noop("%(name)s: the TEST01 count of served outputs disagrees with its runs"),
    patterns={"name": r"\S+"},
)
_phrase(
    "coverage.rounds_replayed",
    gettext_noop(
        "the output-consistency rounds are not the ones this job's challenge draws (%(items)s): evidence of "
        "another run"
    ),
)
_phrase("coverage.timing_malformed", gettext_noop("the job's plan has a malformed timing section"))
_phrase(
    "coverage.timing_unstated",
    gettext_noop("the document does not state the timing policy its figures were measured with"),
)
_phrase(
    "coverage.timing_other",
    gettext_noop(
        "the document was timed with another policy than the job's plan (stated/planned: %(differences)s)"
    ),
)
_phrase("coverage.summary", gettext_noop("the summary is not the one its cases make"))
# The commitment against the outputs the verdicts rest on (apps/runs/services/reveal.py).
_phrase("commitment.none", gettext_noop("the document commits to no output (no commitment section)"))
_phrase(
    "commitment.missing",
    gettext_noop("%(count)s judged outputs not committed: %(items)s"),
    patterns={"count": INT},
    **_LISTED,
)
_phrase(
    "commitment.extra",
    gettext_noop("%(count)s committed outputs no verdict rests on: %(items)s"),
    patterns={"count": INT},
    **_LISTED,
)
_phrase(
    "commitment.twice",
    gettext_noop("%(count)s outputs committed twice: %(items)s"),
    patterns={"count": INT},
    **_LISTED,
)
_phrase(
    "commitment.shapes",
    gettext_noop("%(count)s committed shapes differ from the case records: %(items)s"),
    patterns={"count": INT},
    **_LISTED,
)
_phrase(
    "commitment.dtypes",
    gettext_noop("%(count)s committed dtypes are not dtypes: %(items)s"),
    patterns={"count": INT},
    **_LISTED,
)
# The reveal's outputs that were not asked for (apps/runs/services/reveal.py _judge).
_phrase(
    "reveal.extra",
    gettext_noop("%(count)s outputs revealed that were not asked for: %(items)s"),
    patterns={"count": INT},
    **_LISTED,
)
# The platform's spot check of sampled cases (apps/runs/services/spot_check.py).
_phrase(
    "spot_check.code",
    gettext_noop("recorded as %(recorded)s, the declaration makes it %(expected)s"),
    patterns={"recorded": r"\S+", "expected": r"\S+"},
)
_phrase(
    "spot_check.no_declaration",
    gettext_noop("recorded unsupported, but the document carries no support declaration"),
)
_phrase(
    "spot_check.declared_supported",
    gettext_noop("recorded unsupported, but the backend declared it supported"),
)
_phrase("spot_check.unknown_case", gettext_noop("recorded unsupported, but the catalog has no such case"))
_phrase(
    "spot_check.cannot_recompute",
    gettext_noop("the platform cannot recompute it (%(error)s)"),
    patterns={"error": r"\w+"},
)
_phrase("spot_check.budget_spent", gettext_noop("not recomputed, spot-check time budget spent"))
_phrase(
    "spot_check.reference_rounding", gettext_noop("float64 reference differs in rounding from the runner's")
)
_phrase("spot_check.inputs_differ", gettext_noop("inputs differ from the challenge's"))

# A campaign's reason when it is evaluated (apps/certificates/services/evaluation.py) -----------------
_phrase("evaluation.ready", gettext_noop("Every blocker criterion passes; awaiting review."))
_phrase(
    "evaluation.ready_with_notes",
    gettext_noop(
        "Every blocker criterion passes; awaiting review. Failed non-blocker(s), noted on the certificate: %(notes)s"
    ),
    lists={"notes": CRITERIA},
)
_phrase(
    "evaluation.blocked",
    gettext_noop("Cannot reach the level; failed blocker(s): %(failures)s"),
    lists={"failures": CRITERIA},
)
_phrase(
    "evaluation.blocked_with_notes",
    gettext_noop(
        "Cannot reach the level; failed blocker(s): %(failures)s Failed non-blocker(s), noted on the "
        "certificate: %(notes)s"
    ),
    lists={"failures": CRITERIA, "notes": CRITERIA},
)
# An item of those lists: a criterion's id (and title) and its explanation. An item starts at a
# criterion's id, so an explanation that holds "; " itself (a serving line, a semantic family) stays whole.
_phrase(
    "evaluation.note",
    gettext_noop("%(id)s %(explanation)s"),
    nested=frozenset({"explanation"}),
    patterns={"id": r"[A-Z]+\d+"},
)
_phrase(
    "evaluation.failure",
    gettext_noop("%(id)s %(title)s: %(explanation)s"),
    nested=frozenset({"title", "explanation"}),
    # A program's title that holds ": " itself is read back whole (the longest first), not cut at it.
    patterns={"id": r"[A-Z]+\d+", "title": "|".join([*TITLES_WITH_COLON, ".+?"])},
)

# A tender requirement's line (apps/procurement/requirements.py) --------------------------------------
# A line's last param never holds ": " (backends, dtypes, country and class codes): an ineligible row's
# reason (matrix.reason) is the line, ": " and the failing cell's value, and reads back as such.
NO_COLON = r"[^:]+"
_phrase("requirement.backend", gettext_noop("Backend in %(backends)s"), patterns={"backends": NO_COLON})
_phrase(
    "requirement.certificate_level",
    gettext_noop("Active %(program)s certificate at level %(level)s or above"),
)
_phrase(
    "requirement.conformance_dtype",
    gettext_noop("Conformance passed for %(dtype)s"),
    patterns={"dtype": r"\w+"},
)
_phrase(
    "requirement.measured_tflops",
    gettext_noop("Certified %(dtype)s GEMM >= %(min)s TFLOP/s"),
    patterns={"dtype": r"\w+", "min": SCI},
)
# The origin fields as the requirement line spells them.
ORIGIN_FIELDS = (gettext_noop("Fab"), gettext_noop("Assembly"), gettext_noop("Both"), gettext_noop("Either"))
_phrase(
    "requirement.origin_in",
    gettext_noop("%(field)s country in %(countries)s"),
    nested=frozenset({"field"}),
    patterns={"field": "Fab|Assembly|Both|Either", "countries": NO_COLON},
)
# The requirement lines apps/procurement/requirements.py requirement_describe writes for model,
# serving, energy and quantity requirements (a model name is MODEL_NAME: no spaces).
MODEL = r"[A-Za-z0-9][A-Za-z0-9._\-]*"
# A model requirement's metric (apps/procurement/requirements.py MODEL_METRICS), a msgid as it stands.
MODEL_METRIC_NAMES = (gettext_noop("throughput"), gettext_noop("latency"))
_phrase(
    "requirement.model_metric",
    gettext_noop("%(model)s %(metric)s at %(dtype)s %(op)s %(bound)s %(unit)s"),
    nested=frozenset({"metric"}),
    patterns={
        "model": MODEL,
        "metric": "throughput|latency",
        "dtype": r"\w+",
        "op": ">=|<=",
        "bound": SCI,
        "unit": r"\S+",
    },
)
_phrase(
    "requirement.serving_qps",
    gettext_noop("%(model)s Server at %(dtype)s >= %(min)s QPS within %(bound)s ms (MLPerf LoadGen, VALID)"),
    patterns={"model": MODEL, "dtype": r"\w+", "min": SCI, "bound": SCI},
)
_phrase(
    "requirement.serving_tokens",
    gettext_noop(
        "%(model)s Server at %(dtype)s >= %(min)s tokens/s with TPOT within %(bound)s ms (MLPerf LoadGen, VALID)"
    ),
    patterns={"model": MODEL, "dtype": r"\w+", "min": SCI, "bound": SCI},
)
# Since session 27 a serving requirement states the percentile its bound holds at; "_default": the
# tender stated none and it is MLPerf's Server percentile (apps/procurement/requirements.py).
PERCENTILE = r"\d+(?:\.\d+)?"
_phrase(
    "requirement.serving_qps_at",
    gettext_noop(
        "%(model)s Server at %(dtype)s >= %(min)s QPS with latency p%(percentile)s within %(bound)s ms "
        "(MLPerf LoadGen, VALID)"
    ),
    patterns={"model": MODEL, "dtype": r"\w+", "percentile": PERCENTILE},
)
_phrase(
    "requirement.serving_qps_at_default",
    gettext_noop(
        "%(model)s Server at %(dtype)s >= %(min)s QPS with latency p%(percentile)s within %(bound)s ms "
        "(MLPerf LoadGen, VALID; the percentile is MLPerf's Server percentile, as the tender states none)"
    ),
    patterns={"model": MODEL, "dtype": r"\w+", "percentile": PERCENTILE},
)
_phrase(
    "requirement.serving_tokens_at",
    gettext_noop(
        "%(model)s Server at %(dtype)s >= %(min)s tokens/s with TPOT p%(percentile)s within %(bound)s ms "
        "(MLPerf LoadGen, VALID)"
    ),
    patterns={"model": MODEL, "dtype": r"\w+", "percentile": PERCENTILE},
)
_phrase(
    "requirement.serving_tokens_at_default",
    gettext_noop(
        "%(model)s Server at %(dtype)s >= %(min)s tokens/s with TPOT p%(percentile)s within %(bound)s ms "
        "(MLPerf LoadGen, VALID; the percentile is MLPerf's Server percentile, as the tender states none)"
    ),
    patterns={"model": MODEL, "dtype": r"\w+", "percentile": PERCENTILE},
)
_phrase(
    "requirement.serving_energy",
    gettext_noop(
        "%(model)s Server energy at %(dtype)s %(op)s %(bound)s %(unit)s (measured by a meter, certified at "
        "the level's settings)"
    ),
    patterns={"model": MODEL, "dtype": r"\w+", "op": ">=|<=", "bound": SCI, "unit": r"\S+"},
)
_phrase(
    "requirement.memory_gib",
    gettext_noop("Memory %(op)s %(value)s %(unit)s"),
    patterns={"op": ">=|<=", "value": SCI, "unit": "GiB"},
)
_phrase(
    "requirement.tdp_w",
    gettext_noop("TDP %(op)s %(value)s %(unit)s"),
    patterns={"op": ">=|<=", "value": SCI, "unit": "W"},
)
_phrase(
    "requirement.domestic_content_pct",
    gettext_noop("Domestic content %(op)s %(value)s %(unit)s"),
    patterns={"op": ">=|<=", "value": SCI, "unit": "%"},
)
_phrase(
    "requirement.export_in",
    gettext_noop("Export-control class in %(classes)s"),
    patterns={"classes": NO_COLON},
)
_phrase(
    "requirement.export_not_in",
    gettext_noop("Export-control class not in %(classes)s"),
    patterns={"classes": NO_COLON},
)

# Why a ranking term has no serving figure (apps/procurement/scoring.py): the bound a weight compares at.
_phrase(
    "ranking.serving_no_bound",
    gettext_noop("the weight states no %(name)s bound, and no requirement of the tender on %(model)s does"),
)
_phrase(
    "ranking.serving_other_kind",
    gettext_noop("certified at %(judged)s: not judged by a %(name)s bound"),
)
_phrase("ranking.serving_looser", gettext_noop("certified at %(judged)s, looser than %(wanted)s"))
_phrase(
    "ranking.serving_unbounded", gettext_noop("the certified figure states no bound LoadGen judged it by")
)
# Why a tender's ranking counts a candidate's figure as missing (apps/procurement/scoring.py metric_value).
_phrase(
    "scoring.no_serving",
    gettext_noop("no certified %(metric)s of %(model)s at %(dtype)s"),
    patterns={"metric": r"\w+", "model": r"\S+", "dtype": r"\w+"},
)
_phrase(
    "scoring.no_throughput", gettext_noop("no certified throughput of %(model)s"), patterns={"model": r"\S+"}
)
_phrase("scoring.no_memory", gettext_noop("memory not stated"))
_phrase("scoring.no_gemm", gettext_noop("no certified GEMM measurement"))
_phrase(
    "scoring.no_gemm_dtype",
    gettext_noop("no certified %(dtype)s GEMM measurement"),
    patterns={"dtype": r"\w+"},
)
_phrase("scoring.no_tdp", gettext_noop("no TDP"))
_phrase("scoring.no_memory_figure", gettext_noop("no memory figure"))
_phrase("scoring.no_price", gettext_noop("no list price in %(currency)s"), patterns={"currency": r"[A-Z]{3}"})

# A cell of a tender's evaluation matrix (apps/procurement/eligibility.py): its value and its source, and
# an ineligible row's reasons. Stored in the evaluation's snapshot in English (the API and OCDS read it
# so); the portal reads each back out of its text, old snapshots included (the English is unchanged).
_phrase("matrix.certificate", gettext_noop("certificate %(serial)s"), patterns={"serial": r"\S+"})
_phrase(
    "matrix.declared_signed",
    gettext_noop("vendor declaration, not measured, as signed in %(source)s"),
    nested=frozenset({"source"}),
)
_phrase(
    "matrix.declared_registry",
    gettext_noop("vendor declaration, not measured, from the registry (%(source)s predates signing it)"),
    nested=frozenset({"source"}),
)
_phrase(
    "matrix.measurement",
    gettext_noop("measurement %(measurement)s (document %(document)s, %(source)s)"),
    nested=frozenset({"source"}),
    patterns={"measurement": INT, "document": r"\w+"},
)
_phrase(
    "matrix.level",
    gettext_noop("%(program)s %(version)s level %(level)s"),
    patterns={"program": r"\S+", "version": r"\S+", "level": r"\S+"},
)
# A certificate's program and level, as matrix.level writes them.
LEVEL_VALUE = r"\S+ \S+ level \S+"
_phrase(
    "matrix.another_program",
    gettext_noop("%(value)s (another program)"),
    nested=frozenset({"value"}),
    patterns={"value": LEVEL_VALUE},
)
_phrase(
    "matrix.level_undefined",
    gettext_noop("%(value)s; level %(level)s is not defined in this version"),
    nested=frozenset({"value"}),
    patterns={"value": LEVEL_VALUE, "level": r"\S+"},
)
_phrase("matrix.in_scope", gettext_noop("in certified scope (%(scope)s)"))
_phrase("matrix.not_in_scope", gettext_noop("not in certified scope (%(scope)s)"))
_phrase("matrix.not_in_scope_none", gettext_noop("not in certified scope (none)"))
_phrase(
    "matrix.no_throughput",
    gettext_noop("no certified throughput measurement of %(model)s at %(dtype)s"),
    patterns={"model": MODEL, "dtype": r"\w+"},
)
_phrase(
    "matrix.no_latency",
    gettext_noop("no certified latency measurement of %(model)s at %(dtype)s"),
    patterns={"model": MODEL, "dtype": r"\w+"},
)
_phrase(
    "matrix.out_of_model_scope",
    gettext_noop("%(value)s, but %(model)s is not in the certified model scope"),
    patterns={"value": SCI + r" \S+", "model": MODEL},
)
_phrase(
    "matrix.no_serving_qps",
    gettext_noop("no certified Server QPS of %(model)s at %(dtype)s"),
    patterns={"model": MODEL, "dtype": r"\w+"},
)
_phrase(
    "matrix.no_serving_tokens",
    gettext_noop("no certified Server tokens/s of %(model)s at %(dtype)s"),
    patterns={"model": MODEL, "dtype": r"\w+"},
)
# What LoadGen judged a certified Server figure by (apps/certificates/serving.py judged_bound_text).
_phrase(
    "judged.token_latencies",
    gettext_noop("TTFT %(at)s <= %(ttft)s ms and TPOT %(at_tpot)s <= %(tpot)s ms"),
    patterns={"at": r"p" + SCI, "ttft": SCI, "at_tpot": r"p" + SCI, "tpot": SCI},
)
_phrase(
    "matrix.qps_no_bound",
    gettext_noop("%(value)s QPS, at no latency bound"),
    patterns={"value": SCI},
)
_phrase(
    "matrix.qps_no_bound_judged",
    gettext_noop("%(value)s QPS, at no latency bound (LoadGen judged %(judged)s)"),
    nested=frozenset({"judged"}),
    patterns={"value": SCI},
)
_phrase(
    "matrix.tokens_no_bound",
    gettext_noop("%(value)s tokens/s, at no TPOT bound"),
    patterns={"value": SCI},
)
_phrase(
    "matrix.tokens_no_bound_judged",
    gettext_noop("%(value)s tokens/s, at no TPOT bound (LoadGen judged %(judged)s)"),
    nested=frozenset({"judged"}),
    patterns={"value": SCI},
)
_phrase(
    "matrix.serving_at",
    gettext_noop("%(value)s %(unit)s at %(judged)s"),
    nested=frozenset({"judged"}),
    patterns={"value": SCI, "unit": "QPS|tokens/s"},
)
_phrase(
    "matrix.serving_at_latency",
    gettext_noop("%(value)s %(unit)s at latency %(judged)s"),
    nested=frozenset({"judged"}),
    patterns={"value": SCI, "unit": "QPS|tokens/s"},
)
_phrase(
    "matrix.no_energy",
    gettext_noop("no certified %(unit)s of %(model)s at %(dtype)s (no meter, or not certified)"),
    patterns={"unit": "J/query|J/token", "model": MODEL, "dtype": r"\w+"},
)
_phrase(
    "matrix.energy_judged",
    gettext_noop("%(value)s %(unit)s (Server at %(judged)s)"),
    nested=frozenset({"judged"}),
    patterns={"value": SCI, "unit": r"\S+"},
)
_phrase(
    "matrix.energy_source",
    gettext_noop("signed headline of %(source)s, meter %(meter)s"),
    nested=frozenset({"source"}),
)
_phrase(
    "matrix.energy_source_unnamed",
    gettext_noop("signed headline of %(source)s, meter named in the document"),
    nested=frozenset({"source"}),
)
# The quantity's name is a msgid of apps/procurement/requirements.py QUANTITY_NAMES.
_phrase(
    "matrix.not_stated",
    gettext_noop("%(name)s not stated in the certificate"),
    nested=frozenset({"name"}),
    patterns={"name": "memory|TDP"},
)
_phrase(
    "matrix.origin",
    gettext_noop("fab %(fab)s, assembly %(assembly)s"),
    patterns={"fab": r"[^,]*", "assembly": r".*"},
)
# The export-control classes an undetermined chip may be in, joined by " or " (one phrase a pair, the
# first param itself read again while it holds more than one; only class codes: no spaces).
CLASS_CODE = r"[\w.-]+"
_phrase(
    "matrix.classes_or",
    gettext_noop("%(classes)s or %(last)s"),
    nested=frozenset({"classes"}),
    patterns={"classes": CLASS_CODE + "(?: or " + CLASS_CODE + ")*", "last": CLASS_CODE},
)
_phrase("matrix.undetermined", gettext_noop("undetermined (%(classes)s)"), nested=frozenset({"classes"}))
_phrase(
    "matrix.export_source",
    gettext_noop("rule %(rule)s on the declared peaks of %(source)s"),
    nested=frozenset({"source"}),
    patterns={"rule": r"\S+"},
)


def _alternatives(prefix: str) -> str:
    """A regex that matches the English text of any phrase whose code starts with `prefix`."""
    return "|".join(
        "(?:" + re.sub(r"\(\?P<\w+>", "(?:", phrase.matcher().pattern[1:-1]) + ")"
        for code, phrase in PHRASES.items()
        if code.startswith(prefix)
    )


# An ineligible row's reason: the requirement's line, and the value of its failing cell.
_phrase(
    "matrix.reason",
    gettext_noop("%(requirement)s: %(value)s"),
    nested=frozenset({"requirement", "value"}),
    patterns={"requirement": _alternatives("requirement.")},
    narrower=1,  # named.item has the same words
)

# The export-control classification (apps/procurement/export_control.py) ------------------------------
_phrase(
    "export.tpp_unknown", gettext_noop("TPP unknown: no declared dense peak in a precision the rule counts.")
)
_phrase(
    "export.tpp",
    gettext_noop(
        "TPP = 2 x (%(peak)s / 2) x %(bits)s = %(tpp)s (%(precision)s, the maximum over the declared precisions)."
    ),
    patterns={"precision": r"\w+"},
)
_phrase(
    "export.tpp_ties",
    gettext_noop(
        "TPP = 2 x (%(peak)s / 2) x %(bits)s = %(tpp)s (%(precision)s, the maximum over the declared "
        "precisions; %(ties)s give the same)."
    ),
    patterns={"precision": r"\w+"},
)
_phrase("export.pd", gettext_noop("PD = %(tpp)s / %(area)s mm2 = %(pd)s."))
_phrase(
    "export.pd_unknown",
    gettext_noop("PD unknown: no single die area is declared; classified on what TPP alone decides."),
)
_phrase("export.exclusion_met", gettext_noop("Exclusion '%(title)s': met."), nested=frozenset({"title"}))
_phrase(
    "export.exclusion_not_met", gettext_noop("Exclusion '%(title)s': not met."), nested=frozenset({"title"})
)
_phrase(
    "export.exclusion_undecided",
    gettext_noop("Exclusion '%(title)s': cannot be decided (performance density unknown)."),
    nested=frozenset({"title"}),
)
_phrase("export.class_met", gettext_noop("%(code)s (%(title)s): met."), nested=frozenset({"title"}))
_phrase("export.class_not_met", gettext_noop("%(code)s (%(title)s): not met."), nested=frozenset({"title"}))
_phrase(
    "export.class_undecided",
    gettext_noop("%(code)s (%(title)s): cannot be decided (performance density unknown)."),
    nested=frozenset({"title"}),
)
_phrase("export.undetermined", gettext_noop("Undetermined: one of %(codes)s."))

# The thresholds' sources of a program that states none (apps/certificates/judge.py) -----------------
_phrase(
    "source.criterion_params",
    gettext_noop("%(code)s %(version)s %(level)s criterion params"),
    patterns={"code": r"\S+", "version": r"\S+", "level": r"\S+"},
)

# The beat schedules' names (rows of django_celery_beat's table, written by migrations and
# apps/*/schedules): a name is a msgid as it stands.
SCHEDULE_NAMES = (
    gettext_noop("audit: sign a checkpoint of the chain head"),
    gettext_noop("certificates: expire past validity"),
    gettext_noop("certificates: submit due surveillance runs"),
    gettext_noop("certificates: suspend on failed surveillance"),
    gettext_noop("notifications: expiring certificates and due webhook retries"),
    gettext_noop("notifications: re-queue webhook deliveries stuck in sending"),
    gettext_noop("runs: runner health (stale heartbeat -> offline, jobs requeued)"),
    gettext_noop("runs: stuck jobs (deadline passed, silent runner)"),
)

_MATCHERS = [(phrase, phrase.matcher()) for phrase in PHRASES.values()]
# The formats a text can be read by, by its first character: a format that starts with literal text fits
# only a text that starts with the same character; one that starts with a param may fit any (a matrix
# of a hundred candidates reads thousands of texts: each is tried on a quarter of the formats, in order).
_OPEN = [pair for pair in _MATCHERS if pair[0].msgid.startswith("%(")]
_BY_FIRST: dict[str, list[tuple[Phrase, re.Pattern[str]]]] = {}
for _pair in _MATCHERS:
    if not _pair[0].msgid.startswith("%("):
        _BY_FIRST.setdefault(_pair[0].msgid[0], [])
for _first in _BY_FIRST:
    _BY_FIRST[_first] = [pair for pair in _MATCHERS if pair in _OPEN or pair[0].msgid[0] == _first]


def say(code: str, /, **params: Any) -> Said:
    """The English text of the phrase `code` with `params` (each formatted as str)."""
    values = {name: str(value) for name, value in params.items()}
    return Said(PHRASES[code].english(values), code, values)


def parse(text: str) -> tuple[str, dict[str, str]] | None:
    """The phrase and params an English text was written from, or None for a text no phrase knows.
    A text more than one format reads (a param that itself holds the rest of another format) is given
    to the format with the most literal text: the most specific (then the narrower: Phrase.narrower)."""
    found = [
        (phrase, m) for phrase, matcher in _BY_FIRST.get(text[:1], _OPEN) if (m := matcher.fullmatch(text))
    ]
    if not found:
        return None
    phrase, match = max(found, key=lambda pair: (len(PLACEHOLDER.sub("", pair[0].msgid)), pair[0].narrower))
    return phrase.code, match.groupdict()


def localize(text: str, *, code: str | None = None, params: dict[str, Any] | None = None) -> str:
    """`text` (recorded in English) in the active language; English readers get it as recorded."""
    if not isinstance(text, str) or not text:
        return text
    if (get_language() or "en").split("-")[0] == "en":
        return text
    if isinstance(text, Said) and code is None:
        code, params = text.code, text.params
    if code not in PHRASES or not isinstance(params, dict):
        translated = gettext(text)
        if translated != text:  # a catalogue msgid (program or rule data) as it stands
            return translated
        parsed = parse(text)
        if parsed is None and text.endswith(".") and len(text) > 1:
            # The last item cut from a list of sentences keeps the list's full stop: read it without.
            shown = localize(text[:-1])
            return text if shown == text[:-1] else shown + pgettext("the full stop that ends a sentence", ".")
        if parsed is None and "; " in text:
            # Recorded texts joined by "; " (a serving figure's shortfalls): each in the reader's language.
            return "; ".join(localize(item) for item in text.split("; "))
        if parsed is None:
            return text
        code, params = parsed
    phrase = PHRASES[code]
    values = {name: _localize_param(phrase, name, str(value)) for name, value in params.items()}
    try:
        return gettext(phrase.msgid) % values
    except (KeyError, TypeError, ValueError):  # params recorded for another format version: keep the record
        return text


def _localize_param(phrase: Phrase, name: str, value: str) -> str:
    if name in phrase.lists:
        separator = phrase.lists[name]
        if isinstance(separator, Separator):
            return separator.text.join(localize(item) for item in separator.split(value))
        return separator.join(localize(item) for item in value.split(separator))
    return localize(value) if name in phrase.nested else value


def recorded_fields(text: str) -> dict[str, Any]:
    """The structured form to store next to a recorded text (empty for a text of no phrase)."""
    if isinstance(text, Said):
        return {"explanation_code": text.code, "explanation_params": text.params}
    return {}
