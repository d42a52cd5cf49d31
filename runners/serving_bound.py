"""What LoadGen judged a Server run by, read from the LoadGen summary the document digests.

LoadGen judges a Server run's latency in one of two ways (loadgen/results.cc, PerfConstraintsMet):

- by default, the run's target percentile of the query latency against ``target_latency``; its
  summary's "Test Parameters Used" prints ``target_latency (ns)``;
- in token-latency mode (``use_token_latencies``, which the serving suite uses for decoders), time
  to first token and time per output token, both at the same target percentile, against
  ``ttft_latency`` and ``tpot_latency``; the summary prints ``ttft_latency (ns)`` and
  ``tpot_latency (ns)`` and no ``target_latency``: the query latency is then not judged at all (LoadGen
  only counts queries over ``target_latency`` as "overlatency").

So a decoder's Server figure holds at "TTFT pXX <= a ms and TPOT pXX <= b ms", never at one latency
bound. The bound values come from the summary, LoadGen's own record of the settings it used (its
digest is in the document); the figure's stated bounds must agree with it, and the summary's own
percentile rows must meet the bound at the figure's percentile (LoadGen computes both from the same
sorted latencies, so they are its judged values). The target percentile itself is not printed in the
summary: the figure states it, and its row in the summary is what is checked.

No Django here: the runner and the platform import this module alike.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

_NS = r"(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_SETTING = {
    "latency": re.compile(rf"^target_latency \(ns\)\s*:\s*{_NS}\s*$", re.MULTILINE),
    "ttft": re.compile(rf"^ttft_latency \(ns\)\s*:\s*{_NS}\s*$", re.MULTILINE),
    "tpot": re.compile(rf"^tpot_latency \(ns\)\s*:\s*{_NS}\s*$", re.MULTILINE),
}
# The percentile rows of the summary's "Additional Stats" (DoubleToString(percentile * 100): "90.00").
_ROW = {
    "latency": r"percentile latency \(ns\)",
    "ttft": r"percentile first token latency \(ns\)",
    "tpot": r"percentile time to output token \(ns\)",
}
NAMES = {"latency": "latency", "ttft": "TTFT", "tpot": "TPOT"}
# The percentile a Server latency bound is read at where a buyer states none (a tender's serving
# requirement): MLPerf's own, so that "QPS at <= 100 ms" means what every published MLPerf Server result
# means by it, and a figure certified at a lower percentile (AIA Baseline's p90) does not meet it.
MLPERF_SERVER_PERCENTILE = 0.99
MLPERF_SERVER_PERCENTILE_SOURCE = (
    "MLPerf Inference LoadGen's mlperf.conf (built into mlcommons-loadgen 6.0.17): "
    "*.Server.target_latency_percentile = 99, for the query latency and, in token-latency mode, for TTFT "
    "and TPOT alike"
)


@dataclass(frozen=True)
class ServerBound:
    """The bound LoadGen judged a Server run by: one query latency bound, or (token-latency mode) a
    TTFT and a TPOT bound, all at ``percentile`` (a fraction); bounds in milliseconds."""

    percentile: float
    latency_ms: float | None = None
    ttft_ms: float | None = None
    tpot_ms: float | None = None

    @property
    def token_latencies(self) -> bool:
        return self.ttft_ms is not None

    @property
    def percentile_text(self) -> str:
        return f"{self.percentile * 100:g}"

    def bounds(self) -> dict[str, float]:
        """The judged bounds by name ("latency", or "ttft" and "tpot"), in ms."""
        if self.token_latencies:
            return {"ttft": float(self.ttft_ms or 0), "tpot": float(self.tpot_ms or 0)}
        return {"latency": float(self.latency_ms or 0)}

    def text(self) -> str:
        """What was judged, in the record's English: "p90 <= 100 ms", or "TTFT p90 <= 2000 ms and
        TPOT p90 <= 200 ms" (the portal has its own translated wording)."""
        p = self.percentile_text
        if self.token_latencies:
            return f"TTFT p{p} <= {self.ttft_ms:g} ms and TPOT p{p} <= {self.tpot_ms:g} ms"
        return f"p{p} <= {self.latency_ms:g} ms"

    def at_least_as_strict(self, name: str, limit_ms: float, percentile: float | None = None) -> bool:
        """Whether a figure judged by this bound holds at "``name`` p``percentile`` <= ``limit_ms``": the
        same kind of bound ("latency": a query latency bound; "tpot": TPOT in token-latency mode, where
        LoadGen judged no query latency), no looser, at a percentile no lower (p99 <= x implies
        p90 <= x, not the other way round). No ``percentile``: any percentile the run was judged at."""
        judged = self.bounds().get(name)
        if judged is None:
            return False
        if percentile is not None and self.percentile < percentile:
            return False
        return judged <= limit_ms

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ServerBound | None:
        """The bound a certified figure states as ``as_params`` wrote it, or None when it states none
        (the figure's bound was first read from its LoadGen summary, by ``server_bound``)."""
        percentile = _number(params.get("percentile"))
        if percentile is None or not 0 < percentile < 1:
            return None
        ms = {
            name: None if (value := _number(params.get(f"{name}_bound_s"))) is None else value * 1000
            for name in ("latency", "ttft", "tpot")
        }
        if params.get("token_latencies") is True:
            if ms["ttft"] is None or ms["tpot"] is None:
                return None
            return cls(percentile, ttft_ms=ms["ttft"], tpot_ms=ms["tpot"])
        if ms["latency"] is None:
            return None
        return cls(percentile, latency_ms=ms["latency"])

    def as_params(self) -> dict[str, Any]:
        """The bound as a certificate or a tender signs and reads it (seconds, as the runner's params)."""
        return {
            "percentile": self.percentile,
            "token_latencies": self.token_latencies,
            "latency_bound_s": None if self.latency_ms is None else self.latency_ms / 1000,
            "ttft_bound_s": None if self.ttft_ms is None else self.ttft_ms / 1000,
            "tpot_bound_s": None if self.tpot_ms is None else self.tpot_ms / 1000,
        }


def summary_settings(text: str) -> dict[str, float | None]:
    """The latency bounds (ms) a Server summary's "Test Parameters Used" prints: latency, ttft, tpot."""
    out: dict[str, float | None] = {}
    for key, pattern in _SETTING.items():
        match = pattern.search(text or "")
        out[key] = float(match.group(1)) / 1e6 if match else None
    return out


def summary_percentile_ms(text: str, name: str, percentile: float) -> float | None:
    """The summary's row for ``name`` ("latency", "ttft", "tpot") at ``percentile``, in ms (None if absent)."""
    pattern = re.compile(rf"^{percentile * 100:.2f} {_ROW[name]}\s*:\s*{_NS}\s*$", re.MULTILINE)
    match = pattern.search(text or "")
    return float(match.group(1)) / 1e6 if match else None


def overlatency_judged(scenario: Any, summary: Any) -> bool:
    """Whether a serving run's count of queries over the latency bound (LoadGen's "overlatency", the
    serving case's mismatch fraction) is a verdict: only in a Server run LoadGen judged by the query
    latency, one whose summary prints ``target_latency`` and no TTFT or TPOT bound. In token-latency mode
    LoadGen judges TTFT and TPOT and still counts the queries over the nominal target latency it was
    given (a VALID decoder run may have every query over it), and no other scenario judges a bound per
    query. Derived from the scenario and LoadGen's own summary, never from what a document says of it
    (documents before session 26 recorded such counts as mismatch fractions)."""
    if scenario != "Server" or not isinstance(summary, str):
        return False
    used = summary_settings(summary)
    return used["latency"] is not None and used["ttft"] is None and used["tpot"] is None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _same(stated_s: float, used_ms: float) -> bool:
    return math.isclose(stated_s * 1000, used_ms, rel_tol=1e-9, abs_tol=1e-6)


def server_bound(params: dict[str, Any]) -> tuple[ServerBound | None, str | None]:
    """(bound, None): what LoadGen judged the Server run of a figure's ``params`` by, from its summary
    (``loadgen_summary``; the caller checks it against the document's digest); or (None, why) when the
    summary states no bound, the figure states another, or the summary's row at the figure's percentile
    does not meet it. A query latency bound a token-latency run's figure states (documents before
    session 25 carried the level's Server bound there) is not what LoadGen judged and is ignored."""
    text = params.get("loadgen_summary")
    if not isinstance(text, str):
        return None, "no LoadGen Server summary states the run's latency bound"
    percentile = _number(params.get("percentile"))
    if percentile is None or not 0 < percentile < 1:
        return None, "the figure states no latency percentile"
    used = summary_settings(text)
    if used["ttft"] is not None or used["tpot"] is not None:
        if used["ttft"] is None or used["tpot"] is None:
            return None, "the LoadGen summary states a TTFT or TPOT bound without the other"
        bound = ServerBound(percentile, ttft_ms=used["ttft"], tpot_ms=used["tpot"])
    elif used["latency"] is not None:
        bound = ServerBound(percentile, latency_ms=used["latency"])
    else:
        return None, "the LoadGen summary states no latency bound"
    for name, limit in bound.bounds().items():
        stated = _number(params.get(f"{name}_bound_s"))
        if stated is not None and not _same(stated, limit):
            return None, (
                f"the figure's {NAMES[name]} bound {stated * 1000:g} ms is not the {limit:g} ms "
                "LoadGen's summary records"
            )
        measured = summary_percentile_ms(text, name, percentile)
        if measured is None:
            return (
                None,
                f"the LoadGen summary prints no p{bound.percentile_text} {NAMES[name]} to check the bound",
            )
        if measured > limit:
            return None, (
                f"LoadGen's summary shows {NAMES[name]} p{bound.percentile_text} {measured:.4g} ms above "
                f"its bound {limit:g} ms"
            )
    return bound, None
