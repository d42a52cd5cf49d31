"""Server-side checks of a random sample of a document's cases, unsupported ones included.

Conformance cases that ran: the platform regenerates each sampled case's inputs from the job's
challenge and recomputes the float64 reference with the runners' own catalog, on this server's CPU.
The inputs digest must be the runner's exactly (it proves the runner computed on the challenge's
data, not on data of its choosing); the reference digest normally is too, but two hosts' float64
BLAS may differ in a last bit before rounding, so a reference difference is noted for the reviewer
rather than rejected.

Unsupported cases (any suite): "unsupported" is decided before running from what the backend
declared (the document's ``support`` section, runners/errors.py). Every unsupported case must be
covered by that declaration with the matching code, and a sampled one must also name a case the
catalog has: a device cannot drop a case it failed by calling it unsupported.
"""

from __future__ import annotations

import random
import time
from typing import Any

from certification.recorded_text import say

SPOT_CHECK_BUDGET_S = 20.0


def _label(case: dict[str, Any]) -> str:
    return f"{case.get('kernel')}/{case.get('dtype')}/{case.get('case')}"


def _unsupported_problem(case: dict[str, Any], declaration: dict[str, Any] | None) -> str | None:
    """Why an unsupported case is not what the backend declared, or None when it is."""
    from runners.errors import declared_unsupported

    if not isinstance(declaration, dict):
        return say("spot_check.no_declaration")
    expected = declared_unsupported(declaration, str(case.get("kernel")), str(case.get("dtype")))
    if expected is None:
        return say("spot_check.declared_supported")
    if case.get("code") != expected.code:
        return say("spot_check.code", recorded=case.get("code"), expected=expected.code)
    return None


def _catalog_has(case: dict[str, Any]) -> bool:
    from runners.catalog import get_kernel

    try:
        kernel = get_kernel(str(case.get("kernel")))
        kernel.case(str(case.get("case")))
    except Exception:
        return False
    return case.get("dtype") in kernel.dtypes


def _inputs_only(case: dict[str, Any], challenge: str) -> dict[str, Any]:
    """The input digest of a case from the challenge alone (no reference, no kernel run)."""
    from runners.catalog import case_generator, get_kernel
    from runners.conformance import inputs_digest

    kernel = get_kernel(str(case["kernel"]))
    planned = kernel.case(str(case["case"])).draw(challenge, kernel.name)
    dtype = str(case["dtype"])
    raw = kernel.generate(planned, dtype, case_generator(challenge, kernel.name, planned.name, dtype))
    return {"input_digest": inputs_digest(raw)}


def spot_check_cases(
    document: dict[str, Any], *, sample_size: int, rng: random.Random, inputs_only: bool = False
) -> dict[str, Any]:
    """Check every unsupported case against the declaration and recompute up to `sample_size`
    randomly chosen cases (ran or unsupported); disagreements that reject go in `failures`.

    `inputs_only`: where the level draws a commit–reveal sample (services/reveal.py), the platform
    recomputes references and judges outputs there, so the spot check only regenerates the inputs."""
    cases = [c for c in document.get("cases") or [] if isinstance(c, dict)]
    declaration = document.get("support")
    report: dict[str, Any] = {"sampled": [], "failures": [], "notes": [], "unsupported_checked": 0}
    if inputs_only:
        report["inputs_only"] = True
    for case in cases:
        if case.get("status") == "unsupported":
            report["unsupported_checked"] += 1
            problem = _unsupported_problem(case, declaration)
            if problem:
                report["failures"].append(say("named.item", name=_label(case), text=problem))
    if document.get("suite") != "conformance":
        report["skipped"] = say("spot_check.not_conformance")
        return report
    from runners.conformance import recompute_case

    challenge = (document.get("spec") or {}).get("challenge", "")
    candidates = [
        c
        for c in cases
        if (c.get("input_digest") and c.get("status") in {"pass", "fail"}) or c.get("status") == "unsupported"
    ]
    sample = rng.sample(candidates, min(sample_size, len(candidates)))
    started = time.monotonic()
    for case in sample:
        label = _label(case)
        if case.get("status") == "unsupported":
            report["sampled"].append(label)
            if not _catalog_has(case):
                report["failures"].append(say("named.item", name=label, text=say("spot_check.unknown_case")))
            continue
        if time.monotonic() - started > SPOT_CHECK_BUDGET_S:
            report["notes"].append(say("named.item", name=label, text=say("spot_check.budget_spent")))
            continue
        try:
            ours = (
                _inputs_only(case, challenge)
                if inputs_only
                else recompute_case(case["kernel"], case["dtype"], case["case"], challenge)
            )
        except Exception as exc:  # an unknown kernel/case name in a signed document is itself a finding
            report["failures"].append(
                say(
                    "named.item",
                    name=label,
                    text=say("spot_check.cannot_recompute", error=type(exc).__name__),
                )
            )
            continue
        report["sampled"].append(label)
        if ours.get("input_digest") != case.get("input_digest"):
            report["failures"].append(say("named.item", name=label, text=say("spot_check.inputs_differ")))
        elif not inputs_only and ours.get("reference_digest") != case.get("reference_digest"):
            report["notes"].append(say("named.item", name=label, text=say("spot_check.reference_rounding")))
    return report
