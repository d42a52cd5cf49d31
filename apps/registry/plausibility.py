"""Whether a declared peak is physically plausible: per mm² of die and per watt of TDP, against the
densest and most efficient silicon of the reference data (data/accelerators.csv, vendors' datasheets
with their sources).

A declaration above `PLAUSIBILITY_MARGIN` times the best known figure of its precision is refused at
registration (400 naming the field and the bound): no chip computes 900,000 bf16 TFLOP/s on 600 mm²
at 500 W, and a certificate's claims criterion is judged against what was declared, so an absurd
declaration would only ever be "far below its claim" or excuse a cheated timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.utils.translation import gettext as _

from apps.registry.reference_data import reference_chips

# How far past the best known silicon a declaration may go. Two process generations at roughly twice
# the density each, or a dense figure entered as the sparse one (datasheets quote 2:4 sparsity at
# twice the dense rate), stay within it; a declaration off by an order of magnitude does not.
PLAUSIBILITY_MARGIN = 4.0
PLAUSIBILITY_SOURCE = (
    "apps/registry/data/accelerators.csv (vendors' datasheets, dense figures; copied from the shared "
    "reference data) x a margin of 4: two process generations of about 2x density each, or a sparse "
    "(2x) figure entered as dense, stay within it"
)


@dataclass(frozen=True)
class BestKnown:
    """The best figure of one precision in the reference data, and the part that has it."""

    value: float  # TFLOP/s (int8: TOP/s) per mm² or per watt
    chip: str
    source: str


@cache
def best_known() -> dict[str, dict[str, BestKnown]]:
    """{"per_mm2" | "per_watt": {peak key: BestKnown}} over the reference rows that state the figure."""
    best: dict[str, dict[str, BestKnown]] = {"per_mm2": {}, "per_watt": {}}
    for row in reference_chips():
        for key, peak in row["declared_peak"].items():
            for basis, divisor in (("per_mm2", row["die_area_mm2"]), ("per_watt", row["tdp_w"])):
                if not divisor or divisor <= 0:
                    continue
                value = peak / divisor
                if key not in best[basis] or value > best[basis][key].value:
                    best[basis][key] = BestKnown(
                        value, f"{row['vendor_name']} {row['name']}", row["spec_source"]
                    )
    return best


def declared_peak_problems(
    *, declared_peak: dict[str, float], die_area_mm2: float | None, tdp_w: float | None
) -> list[str]:
    """One sentence per declared peak above the plausible bound, naming the precision and the bound."""
    problems = []
    best = best_known()
    for key, peak in sorted(declared_peak.items()):
        if peak is None:
            continue
        for basis, divisor, unit in (("per_mm2", die_area_mm2, "mm²"), ("per_watt", tdp_w, "W")):
            reference = best[basis].get(key)
            if reference is None or not divisor or divisor <= 0:
                continue
            bound = PLAUSIBILITY_MARGIN * reference.value
            if peak / divisor > bound:
                problems.append(
                    _(
                        "%(key)s: %(peak)s on %(divisor)s %(unit)s is %(density)s per %(unit)s, above the "
                        "plausible %(bound)s per %(unit)s (%(margin)s x %(best)s of %(chip)s, the best known "
                        "in the reference data): at most %(most)s for this chip."
                    )
                    % {
                        "key": key,
                        "peak": f"{peak:g}",
                        "divisor": f"{divisor:g}",
                        "unit": unit,
                        "density": f"{peak / divisor:.3g}",
                        "bound": f"{bound:.3g}",
                        "margin": f"{PLAUSIBILITY_MARGIN:g}",
                        "best": f"{reference.value:.3g}",
                        "chip": reference.chip,
                        "most": f"{bound * divisor:.4g}",
                    }
                )
    return problems
