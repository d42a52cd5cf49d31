"""Charts drawn on the server as inline SVG: no JavaScript and nothing loaded from the internet.

Every chart is also given to the page as a table (in a <details> beside it), so the figures are
readable by screen readers, by keyboard users and on paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# One colour per dtype, readable on white and distinguishable in grey print.
DTYPE_COLOURS = {
    "float32": "#0a4fa3",
    "tfloat32": "#6f42c1",
    "bfloat16": "#d4700a",
    "float16": "#1a7f37",
    "float8_e4m3fn": "#bf3989",
    "float8_e5m2": "#bf3989",
    "int8": "#57606a",
}
FALLBACK_COLOUR = "#24292f"


def dtype_colour(dtype: str) -> str:
    return DTYPE_COLOURS.get(dtype, FALLBACK_COLOUR)


def _fmt(value: float) -> str:
    """A compact number for axis ticks and labels (3 significant digits)."""
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.2g}"
    return f"{value:.3g}"


@dataclass(frozen=True)
class RooflinePoint:
    label: str
    dtype: str
    intensity: float  # FLOP per byte moved
    tflops: float
    anomalous: bool = False


@dataclass(frozen=True)
class Roof:
    dtype: str
    peak_tflops: float


def roofline_svg(
    *,
    points: list[RooflinePoint],
    roofs: list[Roof],
    bandwidth_gbs: float | None,
    width: int = 640,
    height: int = 360,
) -> SafeString:
    """A log-log roofline: measured TFLOP/s against arithmetic intensity, under the declared peak per
    dtype (flat roofs) and the declared memory bandwidth (the slanted roof), when declared."""
    if not points:
        return mark_safe("")
    margin_left, margin_right, margin_top, margin_bottom = 64, 16, 16, 44
    plot_w, plot_h = width - margin_left - margin_right, height - margin_top - margin_bottom
    xs = [p.intensity for p in points]
    ys = [p.tflops for p in points] + [r.peak_tflops for r in roofs]
    if bandwidth_gbs and roofs:
        xs += [r.peak_tflops * 1000 / bandwidth_gbs for r in roofs]  # ridge points
    x_lo, x_hi = _decades(min(xs), max(xs))
    y_lo, y_hi = _decades(min(ys), max(ys))

    def sx(x: float) -> float:
        return margin_left + (math.log10(x) - x_lo) / (x_hi - x_lo) * plot_w

    def sy(y: float) -> float:
        return margin_top + plot_h - (math.log10(max(y, 10**y_lo)) - y_lo) / (y_hi - y_lo) * plot_h

    parts = [
        f'<svg class="chart roofline" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'role="img" aria-labelledby="roofline-title">',
        '<title id="roofline-title">Roofline: measured throughput against arithmetic intensity, '
        "under the declared peaks</title>",
        f'<rect x="{margin_left}" y="{margin_top}" width="{plot_w}" height="{plot_h}" class="plot-area"/>',
    ]
    for exponent in range(x_lo, x_hi + 1):
        x = sx(10**exponent)
        parts.append(
            f'<line x1="{x:.1f}" y1="{margin_top}" x2="{x:.1f}" y2="{margin_top + plot_h}" class="grid"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{margin_top + plot_h + 16}" class="tick" text-anchor="middle">'
            f"{10.0**exponent:g}</text>"
        )
    for exponent in range(y_lo, y_hi + 1):
        y = sy(10**exponent)
        parts.append(
            f'<line x1="{margin_left}" y1="{y:.1f}" x2="{margin_left + plot_w}" y2="{y:.1f}" class="grid"/>'
        )
        parts.append(
            f'<text x="{margin_left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
            f"{10.0**exponent:g}</text>"
        )
    parts.append(
        f'<text x="{margin_left + plot_w / 2:.1f}" y="{height - 6}" class="axis-label" text-anchor="middle">'
        "Arithmetic intensity (FLOP/byte)</text>"
        f'<text x="14" y="{margin_top + plot_h / 2:.1f}" class="axis-label" text-anchor="middle" '
        f'transform="rotate(-90 14 {margin_top + plot_h / 2:.1f})">TFLOP/s</text>'
    )
    x_min, x_max = 10.0**x_lo, 10.0**x_hi
    for roof in roofs:
        colour = dtype_colour(roof.dtype)
        start = x_min
        if bandwidth_gbs:
            ridge = roof.peak_tflops * 1000 / bandwidth_gbs
            start = max(x_min, ridge)
            slope_start = max(x_min, ridge / 1e6)
            parts.append(
                f'<line x1="{sx(slope_start):.1f}" y1="{sy(slope_start * bandwidth_gbs / 1000):.1f}" '
                f'x2="{sx(ridge):.1f}" y2="{sy(roof.peak_tflops):.1f}" class="roof" stroke="{colour}"/>'
            )
        parts.append(
            f'<line x1="{sx(start):.1f}" y1="{sy(roof.peak_tflops):.1f}" x2="{sx(x_max):.1f}" '
            f'y2="{sy(roof.peak_tflops):.1f}" class="roof" stroke="{colour}"/>'
            f'<text x="{sx(x_max) - 4:.1f}" y="{sy(roof.peak_tflops) - 4:.1f}" class="roof-label" '
            f'text-anchor="end" fill="{colour}">'
            f"declared {escape(roof.dtype)} peak {_fmt(roof.peak_tflops)}</text>"
        )
    for point in points:
        colour = dtype_colour(point.dtype)
        css = "point anomaly" if point.anomalous else "point"
        parts.append(
            f'<circle cx="{sx(point.intensity):.1f}" cy="{sy(point.tflops):.1f}" r="5" '
            f'class="{css}" fill="{colour}">'
            f"<title>{escape(point.label)} ({escape(point.dtype)}): {_fmt(point.tflops)} TFLOP/s at "
            f"{_fmt(point.intensity)} FLOP/byte</title></circle>"
        )
    legend_y = margin_top + 14
    for index, dtype in enumerate(sorted({p.dtype for p in points} | {r.dtype for r in roofs})):
        x = margin_left + 10 + index * 110
        parts.append(
            f'<circle cx="{x}" cy="{legend_y - 4}" r="5" fill="{dtype_colour(dtype)}"/>'
            f'<text x="{x + 9}" y="{legend_y}" class="legend">{escape(dtype)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above


def _decades(lo: float, hi: float) -> tuple[int, int]:
    """Whole powers of ten that enclose [lo, hi], at least one decade apart."""
    lo, hi = max(lo, 1e-12), max(hi, 1e-12)
    low, high = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    return (low, high) if high > low else (low, low + 1)


@dataclass(frozen=True)
class LatencyRow:
    label: str
    dtype: str
    p50_ms: float
    p90_ms: float
    p99_ms: float
    cv: float | None
    unstable: bool


def latency_svg(rows: list[LatencyRow], *, width: int = 760) -> SafeString:
    """p50 / p90 / p99 bars per timed measurement. Each row has its own scale (its p99 spans the bar
    area) because timings differ by orders of magnitude; the spread of a row is what a reviewer reads."""
    if not rows:
        return mark_safe("")
    label_w, value_w, row_h, bar_h = 260, 240, 36, 8
    bar_area = width - label_w - value_w
    height = row_h * len(rows) + 24
    parts = [
        f'<svg class="chart latency" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'role="img" aria-labelledby="latency-title">',
        '<title id="latency-title">Latency distributions: p50, p90 and p99 per timed measurement</title>',
    ]
    legend = [("p50", "lat-p50"), ("p90", "lat-p90"), ("p99", "lat-p99")]
    for index, (name, css) in enumerate(legend):
        parts.append(
            f'<rect x="{label_w + index * 60}" y="4" width="12" height="8" class="{css}"/>'
            f'<text x="{label_w + index * 60 + 16}" y="12" class="legend">{name}</text>'
        )
    for index, row in enumerate(rows):
        top = 24 + index * row_h
        css = "row-label anomaly" if row.unstable else "row-label"
        parts.append(f'<text x="0" y="{top + 16}" class="{css}">{escape(row.label[:38])}</text>')
        scale = bar_area / row.p99_ms if row.p99_ms > 0 else 0
        for offset, (value, bar_css) in enumerate(
            ((row.p50_ms, "lat-p50"), (row.p90_ms, "lat-p90"), (row.p99_ms, "lat-p99"))
        ):
            parts.append(
                f'<rect x="{label_w}" y="{top + 4 + offset * (bar_h + 1)}" '
                f'width="{max(value * scale, 1):.1f}" '
                f'height="{bar_h}" class="{bar_css}"><title>{escape(row.label)}: '
                f"{_fmt(value)} ms</title></rect>"
            )
        note = " unstable" if row.unstable else ""
        parts.append(
            f'<text x="{label_w + bar_area + 8}" y="{top + 16}" class="row-value">'
            f"{_fmt(row.p50_ms)} / {_fmt(row.p90_ms)} / {_fmt(row.p99_ms)} ms{note}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above


# The conformance heatmap's colour bands: worst error as a fraction of the allowed tolerance.
HEAT_BANDS = [
    (0.01, "heat-0", "below 1% of tolerance"),
    (0.1, "heat-1", "1-10% of tolerance"),
    (0.5, "heat-2", "10-50% of tolerance"),
    (1.0, "heat-3", "50-100% of tolerance"),
]


def heat_class(ratio: float | None, *, failed: int, errors: int, total: int) -> str:
    if errors and errors == total:
        return "heat-error"
    if failed or errors:
        return "heat-fail"
    if ratio is None:
        return "heat-pass" if total else "heat-none"  # passed, without error figures to grade
    for bound, css, _ in HEAT_BANDS:
        if ratio <= bound:
            return css
    return "heat-fail"
