"""Charts drawn on the server as inline SVG: no JavaScript and nothing loaded from the internet.

Every chart is also given to the page as a table (in a <details> beside it), so the figures are
readable by screen readers, by keyboard users and on paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from certification.numbers import nice_ticks, plain_number

# One colour per dtype, readable on white and distinguishable in grey print.
DTYPE_COLOURS = {
    "float32": "#0a4fa3",
    "tfloat32": "#6f42c1",
    "bfloat16": "#d4700a",
    "float16": "#1a7f37",
    "float8_e4m3fn": "#bf3989",
    "float8_e5m2": "#953800",
    "int8": "#57606a",
}
FALLBACK_COLOUR = "#24292f"


def dtype_colour(dtype: str) -> str:
    return DTYPE_COLOURS.get(dtype, FALLBACK_COLOUR)


def _fmt(value: float) -> str:
    """A number for axis ticks and labels: 3 significant digits, never in scientific notation."""
    return plain_number(value)


@dataclass(frozen=True)
class RooflinePoint:
    label: str
    dtype: str
    intensity: float  # FLOP per byte moved
    tflops: float
    anomalous: bool = False  # above the credible fraction of its declared peak (the judge's rule)
    unstable: bool = False  # its repetitions vary more than the level allows


@dataclass(frozen=True)
class Roof:
    dtype: str
    peak_tflops: float


def _legend_rows(items: list[str], *, x0: int, width: int, item_w: int) -> list[tuple[int, int]]:
    """(x, row) of each legend item, wrapped to the chart's width so none is cut off."""
    per_row = max(1, (width - x0) // item_w)
    return [(x0 + (index % per_row) * item_w, index // per_row) for index in range(len(items))]


def roofline_svg(
    *,
    points: list[RooflinePoint],
    roofs: list[Roof],
    bandwidth_gbs: float | None,
    width: int = 640,
    height: int = 360,
) -> SafeString:
    """A log-log roofline: measured TFLOP/s against arithmetic intensity, under the declared peak per
    dtype (flat roofs) and the declared memory bandwidth (the slanted roof), when declared. The legend,
    below the plot, names every mark: each dtype's colour, the roofs, and the rings of suspect points."""
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

    dtypes = sorted({p.dtype for p in points} | {r.dtype for r in roofs})
    key_roof = _("declared peak (flat roof)")
    key_bandwidth = _("declared memory bandwidth %(gbs)s GB/s")
    key_above = _("red ring: above the credible share of its peak")
    key_unstable = _("dashed ring: unstable repetitions")
    x_label = _("Arithmetic intensity (FLOP/byte, log scale)")
    y_label = _("TFLOP/s (log scale)")
    legend: list[str] = []
    for dtype in dtypes:
        legend.append(
            f'<circle cx="0" cy="-4" r="5" fill="{dtype_colour(dtype)}"/>'
            f'<text x="9" y="0" class="legend">{escape(dtype)}</text>'
        )
    legend.append(
        '<line x1="-6" y1="-4" x2="14" y2="-4" class="roof key" stroke="#57606a"/>'
        f'<text x="18" y="0" class="legend">{escape(key_roof)}</text>'
    )
    if bandwidth_gbs:
        legend.append(
            '<line x1="-6" y1="2" x2="14" y2="-10" class="roof key" stroke="#57606a"/>'
            f'<text x="18" y="0" class="legend">'
            f"{escape(key_bandwidth % {'gbs': _fmt(bandwidth_gbs)})}</text>"
        )
    if any(p.anomalous for p in points):
        legend.append(
            '<circle cx="0" cy="-4" r="5" class="point anomaly" fill="#fff"/>'
            f'<text x="9" y="0" class="legend">{escape(key_above)}</text>'
        )
    if any(p.unstable for p in points):
        legend.append(
            '<circle cx="0" cy="-4" r="5" class="point unstable" fill="#fff"/>'
            f'<text x="9" y="0" class="legend">{escape(key_unstable)}</text>'
        )
    places = _legend_rows(legend, x0=margin_left + 6, width=width, item_w=285)
    legend_h = (max(row for _, row in places) + 1) * 18 + 6
    total_h = height + legend_h
    title = _("Roofline: measured throughput against arithmetic intensity, under the declared peaks")
    parts = [
        f'<svg class="chart roofline" viewBox="0 0 {width} {total_h}" width="{width}" height="{total_h}" '
        'role="img" aria-labelledby="roofline-title">',
        f'<title id="roofline-title">{escape(title)}</title>',
        f'<rect x="{margin_left}" y="{margin_top}" width="{plot_w}" height="{plot_h}" class="plot-area"/>',
    ]
    for exponent in range(x_lo, x_hi + 1):
        x = sx(10**exponent)
        parts.append(
            f'<line x1="{x:.1f}" y1="{margin_top}" x2="{x:.1f}" y2="{margin_top + plot_h}" class="grid"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{margin_top + plot_h + 16}" class="tick" text-anchor="middle">'
            f"{_fmt(10.0**exponent)}</text>"
        )
    for exponent in range(y_lo, y_hi + 1):
        y = sy(10**exponent)
        parts.append(
            f'<line x1="{margin_left}" y1="{y:.1f}" x2="{margin_left + plot_w}" y2="{y:.1f}" class="grid"/>'
        )
        parts.append(
            f'<text x="{margin_left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
            f"{_fmt(10.0**exponent)}</text>"
        )
    parts.append(
        f'<text x="{margin_left + plot_w / 2:.1f}" y="{height - 6}" class="axis-label" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text x="14" y="{margin_top + plot_h / 2:.1f}" class="axis-label" text-anchor="middle" '
        f'transform="rotate(-90 14 {margin_top + plot_h / 2:.1f})">{escape(y_label)}</text>'
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
        label = _("declared %(dtype)s peak %(value)s TFLOP/s") % {
            "dtype": roof.dtype,
            "value": _fmt(roof.peak_tflops),
        }
        parts.append(
            f'<line x1="{sx(start):.1f}" y1="{sy(roof.peak_tflops):.1f}" x2="{sx(x_max):.1f}" '
            f'y2="{sy(roof.peak_tflops):.1f}" class="roof" stroke="{colour}"/>'
            f'<text x="{sx(x_max) - 4:.1f}" y="{max(sy(roof.peak_tflops) - 4, margin_top + 11):.1f}" '
            f'class="roof-label" text-anchor="end" fill="{colour}">{escape(label)}</text>'
        )
    for point in points:
        colour = dtype_colour(point.dtype)
        css = "point anomaly" if point.anomalous else "point unstable" if point.unstable else "point"
        parts.append(
            f'<circle cx="{sx(point.intensity):.1f}" cy="{sy(point.tflops):.1f}" r="5" '
            f'class="{css}" fill="{colour}">'
            f"<title>{escape(point.label)} ({escape(point.dtype)}): {_fmt(point.tflops)} TFLOP/s at "
            f"{_fmt(point.intensity)} FLOP/byte</title></circle>"
        )
    for (x, row), item in zip(places, legend, strict=True):
        parts.append(f'<g class="legend-item" transform="translate({x} {height + 14 + row * 18})">{item}</g>')
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


def _wrap(text: str, width: int, lines: int = 2) -> list[str]:
    """The label in at most `lines` lines of `width` characters, broken at spaces where it can be; a
    label longer still ends in an ellipsis (the whole of it is in the row's <title> and the table)."""
    out: list[str] = []
    rest = text
    while rest and len(out) < lines:
        if len(rest) <= width:
            out.append(rest)
            rest = ""
            break
        cut = rest.rfind(" ", 0, width + 1)
        cut = cut if cut > width // 2 else width
        out.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        out[-1] = out[-1][: width - 1] + "…"
    return out


def latency_svg(rows: list[LatencyRow], *, width: int = 760) -> SafeString:
    """p50, p90 and p99 of each timed measurement on ONE logarithmic axis shared by every row, so rows
    compare (a 4 ms matmul sits left of a 100 ms copy); the line from p50 to p99 is the row's spread.
    Marks differ in shape as well as colour; unstable rows are marked in words, not by colour alone."""
    if not rows:
        return mark_safe("")
    label_w, value_w, row_h, top_h, axis_h = 230, 190, 34, 30, 34
    plot_x, plot_w = label_w, width - label_w - value_w
    values = [v for row in rows for v in (row.p50_ms, row.p90_ms, row.p99_ms) if v > 0]
    lo, hi = _decades(min(values, default=1.0), max(values, default=10.0))
    height = top_h + row_h * len(rows) + axis_h

    def sx(value: float) -> float:
        value = max(value, 10.0**lo)
        return plot_x + (math.log10(value) - lo) / (hi - lo) * plot_w

    title = _("Latency per timed measurement: p50, p90 and p99 in milliseconds, one scale for every row")
    parts = [
        f'<svg class="chart latency" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'role="img" aria-labelledby="latency-title">',
        f'<title id="latency-title">{escape(title)}</title>',
    ]
    legend = [
        ('<circle cx="6" cy="8" r="5" class="lat-p50"/>', _("p50 (median)")),
        ('<rect x="4" y="2" width="4" height="12" class="lat-p90"/>', _("p90")),
        ('<path d="M1 2 L11 8 L1 14 Z" class="lat-p99"/>', _("p99")),
        ('<line x1="0" y1="8" x2="14" y2="8" class="lat-spread"/>', _("spread p50 to p99")),
    ]
    for index, (mark, text) in enumerate(legend):
        x = index * 150
        parts.append(
            f'<g transform="translate({x} 0)">{mark}<text x="18" y="13" class="legend">{escape(text)}</text></g>'
        )
    bottom = top_h + row_h * len(rows)
    axis_label = _("milliseconds (log scale)")
    unstable = _("unstable")
    for exponent in range(lo, hi + 1):
        tick_x = sx(10.0**exponent)
        parts.append(
            f'<line x1="{tick_x:.1f}" y1="{top_h - 4}" x2="{tick_x:.1f}" y2="{bottom}" class="grid"/>'
            f'<text x="{tick_x:.1f}" y="{bottom + 14}" class="tick" text-anchor="middle">{_fmt(10.0**exponent)}</text>'
        )
    parts.append(
        f'<text x="{plot_x + plot_w / 2:.1f}" y="{bottom + 30}" class="axis-label" text-anchor="middle">'
        f"{escape(axis_label)}</text>"
    )
    for index, row in enumerate(rows):
        top = top_h + index * row_h
        mid = top + row_h / 2
        css = "row-label anomaly" if row.unstable else "row-label"
        lines = _wrap(row.label, 34)
        first = mid + 4 - (len(lines) - 1) * 7
        parts.append(f'<text x="0" y="{first:.1f}" class="{css}"><title>{escape(row.label)}</title>')
        for number, line in enumerate(lines):
            parts.append(f'<tspan x="0" dy="{0 if number == 0 else 14}">{escape(line)}</tspan>')
        parts.append("</text>")
        p50, p90, p99 = sx(row.p50_ms), sx(row.p90_ms), sx(row.p99_ms)
        summary = (
            f"{row.label}: p50 {_fmt(row.p50_ms)} ms, p90 {_fmt(row.p90_ms)} ms, p99 {_fmt(row.p99_ms)} ms"
        )
        parts.append(
            f'<g class="lat-row"><title>{escape(summary)}</title>'
            f'<line x1="{p50:.1f}" y1="{mid:.1f}" x2="{p99:.1f}" y2="{mid:.1f}" class="lat-spread"/>'
            f'<circle cx="{p50:.1f}" cy="{mid:.1f}" r="5" class="lat-p50"/>'
            f'<rect x="{p90 - 2:.1f}" y="{mid - 6:.1f}" width="4" height="12" class="lat-p90"/>'
            f'<path d="M{p99 - 5:.1f} {mid - 6:.1f} L{p99 + 5:.1f} {mid:.1f} L{p99 - 5:.1f} {mid + 6:.1f} Z" '
            'class="lat-p99"/></g>'
        )
        note = f' <tspan class="anomaly">{escape(unstable)}</tspan>' if row.unstable else ""
        parts.append(
            f'<text x="{plot_x + plot_w + 10}" y="{mid + 4:.1f}" class="row-value">'
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
    for bound, css, _label in HEAT_BANDS:
        if ratio <= bound:
            return css
    return "heat-fail"


# One colour per compared certificate (at most 4), told apart in grey print by their order and labels.
SERIES_COLOURS = ["#0a4fa3", "#d4700a", "#1a7f37", "#6f42c1"]


def compare_svg(
    *, series: list[str], groups: list[tuple[str, list[float | None]]], width: int = 640
) -> SafeString:
    """Measured best GEMM TFLOP/s per dtype (a group) and certificate (a bar), every bar on ONE linear
    scale from zero so certificates and dtypes compare; each bar carries its value, a missing one says
    so; the legend names each certificate's colour. The compare table beside it holds the same figures."""
    values = [v for _, row in groups for v in row if v is not None]
    if not groups or not values:
        return mark_safe("")
    ticks = nice_ticks(max(values))
    top = ticks[-1]
    label_w, value_w, bar_h, gap = 110, 110, 14, 12
    plot_w = width - label_w - value_w
    legend_rows = (len(series) + 1) // 2
    y0 = 10 + legend_rows * 18 + 8
    group_h = len(series) * bar_h + gap
    height = y0 + len(groups) * group_h + 40
    title = _("Measured best GEMM per dtype, TFLOP/s, one scale from zero for every certificate")
    missing = _("not measured")
    parts = [
        f'<svg class="chart compare" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'role="img" aria-labelledby="compare-title">',
        f'<title id="compare-title">{escape(title)}</title>',
    ]
    for index, serial in enumerate(series):
        x, y = label_w + (index % 2) * 240, 10 + (index // 2) * 18
        parts.append(
            f'<rect x="{x}" y="{y}" width="12" height="12" fill="{SERIES_COLOURS[index % 4]}"/>'
            f'<text x="{x + 16}" y="{y + 10}" class="legend">{escape(serial)}</text>'
        )
    bottom = y0 + len(groups) * group_h
    for tick in ticks:
        tick_x = label_w + plot_w * tick / top
        parts.append(
            f'<line x1="{tick_x:.1f}" y1="{y0 - 4}" x2="{tick_x:.1f}" y2="{bottom}" class="grid"/>'
            f'<text x="{tick_x:.1f}" y="{bottom + 14}" class="tick" text-anchor="middle">{_fmt(tick)}</text>'
        )
    parts.append(
        f'<text x="{label_w + plot_w / 2:.1f}" y="{bottom + 32}" class="axis-label" text-anchor="middle">'
        "TFLOP/s</text>"
    )
    for number, (dtype, row) in enumerate(groups):
        top_y = y0 + number * group_h
        parts.append(f'<text x="0" y="{top_y + bar_h}" class="row-label">{escape(dtype)}</text>')
        for index, value in enumerate(row):
            y = top_y + index * bar_h
            length = 0.0 if value is None else max(1.0, plot_w * value / top)
            text = missing if value is None else f"{_fmt(value)} TFLOP/s"
            parts.append(
                f'<rect x="{label_w}" y="{y}" width="{length:.1f}" height="{bar_h - 3}" '
                f'fill="{SERIES_COLOURS[index % 4]}"><title>{escape(series[index])} {escape(dtype)}: '
                f"{escape(text)}</title></rect>"
                f'<text x="{label_w + plot_w + 6}" y="{y + bar_h - 4}" class="row-value">{escape(text)}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above
