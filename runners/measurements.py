"""Items of the result document's ``measurements`` list, built the same way by every suite."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from runners.timing import TimingPolicy, TimingStats

T = TypeVar("T")


def best_gemm_per_dtype(
    items: Iterable[T], *, dtype: Callable[[T], str], value: Callable[[T], float | None]
) -> dict[str, T]:
    """The best GEMM figure of each dtype: the highest value, the first of equal ones.

    One rule for the runner's claims, the judge's claims criterion, the certificate's headline and
    procurement's figures; each passes only the GEMM items it counts (the eligible ones)."""
    best: dict[str, tuple[float, T]] = {}
    for item in items:
        key, figure = dtype(item), value(item)
        if figure is not None and (key not in best or figure > best[key][0]):  # no value, no figure
            best[key] = (figure, item)
    return {key: item for key, (_, item) in best.items()}


CLOCK_DISAGREEMENT = "clock_disagreement"
# Flags that keep a measurement out of every headline figure.
REFUSING_FLAGS = frozenset({CLOCK_DISAGREEMENT, "unavailable"})

KINDS = (
    "gemm",
    "collective",
    "bandwidth",
    "attention",
    "conv",
    "model_latency",
    "model_throughput",
    "ttft",
    "decode",
    "accuracy",
    "memory",
    "power",
    "energy",
    "serving_accuracy",
    "serving_latency",
    "serving_qps",
    "serving_throughput",
    "serving_tokens",
    "serving_ttft",
    "serving_tpot",
)


def measurement(
    *,
    name: str,
    kind: str,
    unit: str,
    value: float | None,
    dtype: str | None = None,
    params: dict[str, Any] | None = None,
    stats: TimingStats | None = None,
    efficiency: float | None = None,
    flags: Iterable[str] = (),
) -> dict[str, Any]:
    """One measurement; ``value`` is None (with the flag ``unavailable``) where the device cannot tell.

    ``stats`` are always the per-call *time* statistics in seconds, whatever ``unit`` the
    value has (a throughput is derived from the median time). Where the device's timing
    events disagree with the host clock (``stats.clock``), the figure is refused: ``value``
    and ``efficiency`` are None, the flag is ``clock_disagreement`` and the raw event-based
    value stays in ``params.event_value`` for the record. ``significant_digits`` is how many
    digits of the value its confidence interval supports; the platform publishes that many.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown measurement kind {kind!r}")
    flags = list(flags)
    params = dict(params or {})
    if stats is not None and stats.clock_disagrees:
        flags.append(CLOCK_DISAGREEMENT)
        params["event_value"] = value
        value = efficiency = None
    elif value is None and "unavailable" not in flags:
        flags.append("unavailable")
    return {
        "name": name,
        "kind": kind,
        "dtype": dtype,
        "params": params,
        "unit": unit,
        "value": value,
        "stats": stats.to_dict() if stats is not None else None,
        "unstable": bool(stats.unstable) if stats is not None else False,
        "efficiency": efficiency,
        "flags": flags,
        "significant_digits": stats.significant_digits if stats is not None else None,
        "timing_method": stats.method if stats is not None else None,
        "clock": stats.clock.to_dict() if stats is not None and stats.clock is not None else None,
    }


def headline_eligible(item: dict[str, Any]) -> bool:
    """Whether a measurement may feed a headline figure: a stable value nobody flagged as refused."""
    return (
        item.get("value") is not None
        and not item.get("unstable")
        and not (set(item.get("flags") or ()) & REFUSING_FLAGS)
    )


def case_record(
    kernel: str,
    dtype: str,
    case: str,
    status: str,
    *,
    error_class: str | None = None,
    message: str | None = None,
    stats: dict[str, Any] | None = None,
    flops: int | None = None,
    bytes_moved: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``cases`` item in the result schema's shape (see runners/schema/result.schema.json).

    ``error_class`` is one of product_failure, infrastructure, unsupported, bad_spec; it is
    required for error and unsupported cases and must be None for passing ones.
    """
    return {
        "kernel": kernel,
        "dtype": dtype,
        "case": case,
        "edge": None,
        "status": status,
        "error_class": error_class,
        "message": message,
        "stats": stats,
        "output_digest": None,
        "shape": None,
        "flops": flops,
        "bytes": bytes_moved,
        **extra,
    }


def timing_section(items: list[dict[str, Any]], policy: TimingPolicy) -> dict[str, Any]:
    """The clock cross-check over every events-timed measurement (the ``integrity.timing`` item).

    ``not_applicable`` where nothing was timed by device events (host clock only); ``not_judged``
    where the job spec gave no bounds (the raw ratios are still reported; the platform judges).
    """
    checked = [i for i in items if i.get("clock")]
    disagreeing = [i for i in checked if i["clock"]["agrees"] is False]
    ratios = [i["clock"]["ratio"] for i in checked if i["clock"]["ratio"] is not None]
    bounds = policy.clock_bounds
    if not checked:
        verdict = "not_applicable"
    elif bounds is None:
        verdict = "not_judged"
    else:
        verdict = "fail" if disagreeing else "pass"
    return {
        "verdict": verdict,
        "checked": len(checked),
        "disagreements": len(disagreeing),
        "min_ratio": min(ratios, default=None),
        "max_ratio": max(ratios, default=None),
        "bounds": list(bounds) if bounds is not None else None,
        "refused": [f"{i['name']}:{i['dtype']}" for i in disagreeing][:50],
    }


def integrity_section(
    consistency: list[dict[str, Any]],
    caching: list[dict[str, Any]],
    timing: list[dict[str, Any]] | dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The document's ``integrity``: overall verdicts first, each check's items after.

    The caching figures at the top are those of the item with the largest speedup, the one
    closest to failing (or failing). ``timing`` is the clock cross-check (``timing_section``),
    one per suite run or a list of them.
    """
    section: dict[str, Any] = {}
    timings = [timing] if isinstance(timing, dict) else list(timing or [])
    if timings:
        worst = [t for t in timings if t["verdict"] == "fail"] or timings
        section["timing"] = {
            "verdict": _overall(timings),
            "checked": sum(t["checked"] for t in timings),
            "disagreements": sum(t["disagreements"] for t in timings),
            "min_ratio": min((t["min_ratio"] for t in timings if t["min_ratio"] is not None), default=None),
            "max_ratio": max((t["max_ratio"] for t in timings if t["max_ratio"] is not None), default=None),
            "bounds": worst[0]["bounds"],
            "items": timings,
        }
    if consistency:
        section["output_consistency"] = {
            "verdict": "fail" if any(c["verdict"] == "fail" for c in consistency) else "pass",
            "sampled": sum(c["sampled"] for c in consistency),
            "mismatches": sum(c["mismatches"] for c in consistency),
            "items": consistency,
        }
    if caching:
        timed: list[dict[str, Any]] = [c for c in caching if "speedup_ratio" in c] or [
            {"fresh_median_s": 0.0, "repeated_median_s": 0.0, "speedup_ratio": 0.0, "threshold": 0.0}
        ]
        slowest = max(timed, key=lambda c: float(c["speedup_ratio"] or 0.0))
        section["caching"] = {
            "verdict": _overall(caching),
            **{k: slowest[k] for k in ("fresh_median_s", "repeated_median_s", "speedup_ratio", "threshold")},
            "items": caching,
        }
    return section


def _overall(items: list[dict[str, Any]]) -> str:
    """fail if any item fails; not_judged if any was not judged (no bar in the spec); pass if any
    passed; not_applicable otherwise."""
    verdicts = {item["verdict"] for item in items}
    for verdict in ("fail", "not_judged", "pass"):
        if verdict in verdicts:
            return verdict
    return "not_applicable"


def measurement_table(document: dict[str, Any]) -> str:
    """Measurements, claim flags and integrity verdicts as a plain-text table for the CLI."""
    rows = [f"{'measurement':44s} {'dtype':9s} {'value':>12s} {'unit':10s} {'eff':>6s} {'n':>5s}  flags"]
    for item in document.get("measurements") or []:
        value = "n/a" if item["value"] is None else f"{item['value']:.4g}"
        eff = "" if item["efficiency"] is None else f"{item['efficiency']:.0%}"
        n = str(item["stats"]["n"]) if item["stats"] else ""
        flags = item["flags"] + (["unstable"] if item["unstable"] else [])
        rows.append(
            f"{item['name'][:44]:44s} {str(item['dtype']):9s} {value:>12s} {item['unit'][:10]:10s} "
            f"{eff:>6s} {n:>5s}  {','.join(flags)}"
        )
    for dtype, verdict in ((document.get("claims") or {}).get("dtypes") or {}).items():
        if verdict.get("declared_peak_tflops") is None:
            rows.append(f"claims {dtype}: no declared peak to check")
        else:
            rows.append(f"claims {dtype}: {', '.join(verdict['flags']) or 'consistent with the declaration'}")
    for check, verdict in (document.get("integrity") or {}).items():
        rows.append(f"integrity {check}: {verdict['verdict']}")
    return "\n".join(rows)


def rebuild_integrity(
    document: dict[str, Any],
    *,
    consistency: list[dict[str, Any]] | None = None,
    caching: list[dict[str, Any]] | None = None,
    timing: list[dict[str, Any]] | None = None,
) -> None:
    """The document's ``integrity`` with the judge's TEST01, TEST04 or clock items in place of the
    device's."""
    from runners.document import json_safe

    integrity = document.get("integrity") or {}
    if consistency is None:
        consistency = (integrity.get("output_consistency") or {}).get("items") or []
    if caching is None:
        caching = (integrity.get("caching") or {}).get("items") or []
    if timing is None:
        timing = (integrity.get("timing") or {}).get("items") or []
    document["integrity"] = json_safe(integrity_section(consistency, caching, timing))
