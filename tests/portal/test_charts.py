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


def _x(svg: str, css: str) -> list[float]:
    """The x position of each mark of class `css` (circles' cx, rects' x + half their width)."""
    import re

    found = []
    for tag in re.findall(rf"<(?:circle|rect)[^>]*class=\"{css}\"[^>]*>", svg):
        if tag.startswith("<circle"):
            found.append(float(re.search(r'cx="([\d.]+)"', tag).group(1)))
        else:
            x, w = re.search(r' x="([\d.]+)"[^>]*width="([\d.]+)"', tag).groups()
            found.append(float(x) + float(w) / 2)
    return found


def test_latency_rows_share_one_scale_so_they_compare_and_unstable_rows_are_marked_in_words():
    svg = latency_svg(
        [
            LatencyRow("matmul", "float32", 1.0, 2.0, 4.0, 0.3, True),
            LatencyRow("copy", "float32", 100.0, 100.0, 100.0, 0.0, False),
            LatencyRow("same as matmul p50", "float32", 4.0, 4.0, 4.0, 0.0, False),
        ]
    )
    legend, *p50 = _x(svg, "lat-p50")
    matmul, copy, same = p50
    assert matmul < same < copy  # 1 ms left of 4 ms left of 100 ms: one axis for every row
    _, *p90 = _x(svg, "lat-p90")
    assert p90[0] > matmul and p90[2] == pytest.approx(same)  # 4 ms sits at the same x in both rows
    assert "unstable" in svg and "1 / 2 / 4 ms" in svg and "100 / 100 / 100 ms" in svg
    assert "milliseconds (log scale)" in svg and "p50 (median)" in svg and "p99" in svg


def test_no_chart_prints_scientific_notation():
    slow = latency_svg([LatencyRow("prefill", "bfloat16", 1234.5, 2000.0, 0.004, None, False)])
    assert "e+" not in slow and "e-" not in slow.replace("lat-", "").replace("line", "").replace("title", "")
    assert "1,234" in slow and "0.004" in slow
    roof = roofline_svg(
        points=[RooflinePoint("gemm", "float32", 1000.0, 2000.0)],
        roofs=[Roof("float32", 5000.0)],
        bandwidth_gbs=None,
    )
    assert "1e+" not in roof and ">1,000<" in roof and "5,000 TFLOP/s" in roof


def test_the_roofline_legend_explains_every_mark_it_draws():
    svg = roofline_svg(
        points=[
            RooflinePoint("a", "float32", 10.0, 1.0),
            RooflinePoint("b", "float8_e4m3fn", 10.0, 80.0, anomalous=True),
            RooflinePoint("c", "float8_e5m2", 10.0, 2.0, unstable=True),
        ],
        roofs=[Roof("float32", 67.0)],
        bandwidth_gbs=3350.0,
    )
    for text in (
        "float32",
        "float8_e4m3fn",
        "float8_e5m2",
        "declared peak",
        "memory bandwidth",
        "red ring",
        "dashed ring",
    ):
        assert f">{text}" in svg or text in svg, text
    assert 'class="point unstable"' in svg and 'class="point anomaly"' in svg
    from apps.portal.charts import dtype_colour

    assert dtype_colour("float8_e4m3fn") != dtype_colour("float8_e5m2")  # no two legend entries alike


def test_the_compare_chart_puts_every_certificate_on_one_scale_with_a_legend_and_its_values():
    import re

    from apps.portal.charts import compare_svg

    svg = compare_svg(
        series=["AIA-2026-000001", "AIA-2026-000002"],
        groups=[("bfloat16", [1200.0, 600.0]), ("float32", [60.0, None])],
    )
    widths = [float(w) for w in re.findall(r'<rect x="\d+" y="[\d.]+" width="([\d.]+)" height="11"', svg)]
    assert len(widths) == 4
    assert widths[0] == pytest.approx(2 * widths[1])  # 1,200 is twice 600 on the shared scale
    assert widths[2] == pytest.approx(widths[0] * 60 / 1200)  # and float32 on the same scale
    assert widths[3] == 0  # not measured: no bar, and said in words
    assert "not measured" in svg and "1,200 TFLOP/s" in svg and "e+" not in svg
    assert svg.count(">AIA-2026-000001<") == 1 and svg.count(">AIA-2026-000002<") == 1  # the legend
    assert compare_svg(series=["A", "B"], groups=[]) == ""
