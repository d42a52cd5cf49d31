"""The server-side charts and the heatmap's measure: worst error as a fraction of the tolerance."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from apps.portal.charts import LatencyRow, Roof, RooflinePoint, heat_class, latency_svg, roofline_svg
from apps.portal.evidence import case_ratio


def case(**fields):
    base = {"max_abs": None, "max_rel": None, "tolerance_ratio": None, "atol": None, "rtol": None}
    return SimpleNamespace(**{**base, **fields})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_abs": 1e-4, "max_rel": 0.0, "atol": 1e-4, "rtol": 0.0}, 1.0),  # exactly on atol
        ({"max_abs": 1e-5, "max_rel": 1e-5, "atol": 0.0, "rtol": 1e-3}, 0.01),  # |ref| = 1, budget rtol
        ({"max_abs": 2e-4, "max_rel": 2e-4, "atol": 1e-4, "rtol": 1e-4}, 1.0),  # budget 1e-4 + 1e-4 * 1
        ({"max_abs": None, "atol": 1e-4}, None),
        ({"max_abs": 1.0, "max_rel": 0.0, "atol": 0.0, "rtol": 0.0}, None),
        # The runner's per-element ratio wins over the estimate from max_abs and max_rel.
        ({"max_abs": 2e-4, "max_rel": 0.5, "tolerance_ratio": 0.4, "atol": 1e-4, "rtol": 1e-4}, 0.4),
    ],
)
def test_case_ratio_is_the_worst_error_over_the_allclose_budget(fields, expected):
    ratio = case_ratio(case(**fields))
    assert ratio == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("ratio", "failed", "errors", "total", "css"),
    [
        (0.001, 0, 0, 5, "heat-0"),
        (0.05, 0, 0, 5, "heat-1"),
        (0.3, 0, 0, 5, "heat-2"),
        (0.9, 0, 0, 5, "heat-3"),
        (1.5, 0, 0, 5, "heat-fail"),
        (0.001, 1, 0, 5, "heat-fail"),
        (None, 0, 5, 5, "heat-error"),
        (None, 0, 0, 5, "heat-pass"),
        (None, 0, 0, 0, "heat-none"),
    ],
)
def test_heat_bands(ratio, failed, errors, total, css):
    assert heat_class(ratio, failed=failed, errors=errors, total=total) == css


def test_the_roofline_draws_roofs_points_and_escapes_labels():
    svg = roofline_svg(
        points=[
            RooflinePoint("<script>alert(1)</script>", "float32", 100.0, 50.0),
            RooflinePoint("matmul", "bfloat16", 500.0, 900.0, anomalous=True),
        ],
        roofs=[Roof("float32", 67.0), Roof("bfloat16", 989.4)],
        bandwidth_gbs=3350.0,
    )
    assert svg.startswith("<svg") and svg.count('class="roof"') == 4  # flat and slanted roof per dtype
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'class="point anomaly"' in svg and "declared bfloat16 peak 989" in svg
    assert roofline_svg(points=[], roofs=[], bandwidth_gbs=None) == ""


def test_latency_bars_scale_per_row_and_mark_unstable_rows():
    svg = latency_svg(
        [
            LatencyRow("matmul", "float32", 1.0, 2.0, 4.0, 0.3, True),
            LatencyRow("copy", "float32", 100.0, 100.0, 100.0, 0.0, False),
        ]
    )
    assert svg.count("<rect") == 6 + 3  # three bars per row, three legend swatches
    assert "unstable" in svg and "1 / 2 / 4 ms" in svg
