"""A tender reads only the figures the judge lets through: no unstable, flagged or above-peak
measurement feeds a candidate's GEMM figure, and measured/declared is recomputed against the
peaks the certificate signed (not the runner's own efficiency)."""

from __future__ import annotations

import pytest

from apps.procurement.selectors import certified_candidates
from apps.runs.models import Measurement


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"value": 60.0, "unstable": True}, "unstable"),
        ({"value": 60.0, "flags": ["unavailable", "clock_throttled"]}, "flagged"),
        ({"value": 67 * 1.2}, "above the declared peak by more than the level allows"),
    ],
)
def test_a_non_certifiable_gemm_never_becomes_the_tender_figure(certified, extra, why):
    certificate = certified(gemm={"float32": (50.0, 0.9)}, peak_fp32_tflops=67)
    performance = certificate.campaign.jobs.get(suite="performance").document
    Measurement.objects.create(
        document=performance, kind="gemm", name="matmul noisy", dtype="float32", unit="TFLOP/s", **extra
    )
    (candidate,) = certified_candidates()
    figure = candidate.gemm["float32"]
    assert figure["value"] == 50.0, why
    # The runner said 0.9; the judge recomputes 50 / 67 against the signed declared peak.
    assert figure["efficiency"] == pytest.approx(50.0 / 67)
