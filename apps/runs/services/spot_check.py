"""Server-side recomputation of a random sample of a conformance document's cases.

The platform regenerates each sampled case's inputs from the job's challenge and recomputes the
float64 reference with the runners' own catalog, on this server's CPU. The inputs digest must be
the runner's exactly (it proves the runner computed on the challenge's data, not on data of its
choosing); the reference digest normally is too, but two hosts' float64 BLAS may differ in a last
bit before rounding, so a reference difference is noted for the reviewer rather than rejected.
"""

from __future__ import annotations

import random
import time

SPOT_CHECK_BUDGET_S = 20.0


def spot_check_cases(document: dict, *, sample_size: int, rng: random.Random) -> dict:
    """Recompute up to `sample_size` randomly chosen cases; disagreements that reject go in `failures`."""
    if document.get("suite") != "conformance":
        return {"sampled": [], "failures": [], "notes": [], "skipped": "not a conformance document"}
    from runners.conformance import recompute_case

    challenge = (document.get("spec") or {}).get("challenge", "")
    candidates = [c for c in document.get("cases") or [] if c.get("input_digest") and c.get("status") in {"pass", "fail"}]
    sample = rng.sample(candidates, min(sample_size, len(candidates)))
    report: dict = {"sampled": [], "failures": [], "notes": []}
    started = time.monotonic()
    for case in sample:
        label = f"{case['kernel']}/{case['dtype']}/{case['case']}"
        if time.monotonic() - started > SPOT_CHECK_BUDGET_S:
            report["notes"].append(f"{label}: not recomputed, spot-check time budget spent")
            continue
        try:
            ours = recompute_case(case["kernel"], case["dtype"], case["case"], challenge)
        except Exception as exc:  # an unknown kernel/case name in a signed document is itself a finding
            report["failures"].append(f"{label}: the platform cannot recompute it ({type(exc).__name__})")
            continue
        report["sampled"].append(label)
        if ours.get("input_digest") != case.get("input_digest"):
            report["failures"].append(f"{label}: inputs differ from the challenge's")
        elif ours.get("reference_digest") != case.get("reference_digest"):
            report["notes"].append(f"{label}: float64 reference differs in rounding from the runner's")
    return report
