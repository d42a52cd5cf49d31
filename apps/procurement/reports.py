"""Reports of a saved evaluation, all read from its snapshot (never from live records), so the CSV,
the printable page and the charts show the same matrix as the decision that was audited.

Charts are SVG written here on the server: no script, no font or asset from the internet.
"""

from __future__ import annotations

import io
from html import escape
from typing import Any

from django.http import HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from apps.procurement.templatetags.export_class import class_label
from certification.numbers import nice_ticks, plain_number
from certification.recorded_text import localize
from certification.spreadsheet import csv_writer

UTF8_BOM = "\ufeff"
CHART_LIMIT = 15  # the best-ranked eligible chips; a chart of hundreds of bars says nothing


def row_label(row: dict) -> str:
    return f"{row['chip']['vendor']} {row['chip']['sku']} ({row['target']})"


def cell_text(cell: dict) -> str:
    """A matrix cell in the reader's language: its verdict, value and source (recorded phrases)."""
    verdict = (
        pgettext("a matrix cell's verdict", "PASS")
        if cell["ok"]
        else pgettext("a matrix cell's verdict", "FAIL")
    )
    return f"{verdict}: {localize(cell['value'])} [{localize(cell['source'])}]"


def evaluation_csv_response(evaluation) -> HttpResponse:
    """The CSV download of a saved evaluation, the same for the portal page and the API."""
    # With a UTF-8 byte-order mark first: without it Excel reads the file in the system's code page
    # and Chinese titles and chip names open garbled.
    response = HttpResponse(
        UTF8_BOM + evaluation_csv(snapshot=evaluation.snapshot), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = (
        f'attachment; filename="evaluation-{evaluation.pk}-'
        f'{evaluation.tender.reference.replace("/", "-")}.csv"'
    )
    return response


def evaluation_csv(*, snapshot: dict) -> str:
    """One line per candidate, one column per requirement (pass/fail, value, source), as in the matrix,
    in the reader's language: the headers translated, the recorded texts (requirement lines, cells,
    sources, reasons, the formula) read as the matrix page reads them (certification/recorded_text.py);
    the export class's label (an ECCN as recorded); chip names and serials as recorded."""
    out = io.StringIO()
    writer = csv_writer(out)  # no cell starts a formula: chip names and reasons come from vendors
    tender, rule = snapshot["tender"], snapshot["rule"]
    writer.writerow(
        [
            "# "
            + _("tender %(reference)s: %(title)s")
            % {"reference": tender["reference"], "title": tender["title"]}
        ]
    )
    writer.writerow(
        [
            "# "
            + _("evaluated %(at)s; export-control rule %(rule)s (%(date)s), informational; %(formula)s")
            % {
                "at": snapshot["evaluated_at"],
                "rule": rule["id"],
                "date": rule["date"],
                "formula": localize(snapshot["scoring"]["formula"]),
            }
        ]
    )
    writer.writerow(
        [
            pgettext("a column of the evaluation CSV", "rank"),
            pgettext("a column of the evaluation CSV", "eligible"),
            pgettext("a column of the evaluation CSV", "score"),
            pgettext("a column of the evaluation CSV", "certificate"),
            pgettext("a column of the evaluation CSV", "program"),
            pgettext("a column of the evaluation CSV", "level"),
            pgettext("a column of the evaluation CSV", "vendor"),
            pgettext("a column of the evaluation CSV", "chip"),
            pgettext("a column of the evaluation CSV", "chip_name"),
            pgettext("a column of the evaluation CSV", "target"),
            pgettext("a column of the evaluation CSV", "backend"),
            pgettext("a column of the evaluation CSV", "export_class"),
            *(f"R{r['position']} {localize(r['text'])}" for r in snapshot["requirements"]),
            pgettext("a column of the evaluation CSV", "reasons"),
        ]
    )
    yes, no = (
        pgettext("eligible in the evaluation CSV", "yes"),
        pgettext("eligible in the evaluation CSV", "no"),
    )
    for row in snapshot["rows"]:
        writer.writerow(
            [
                row.get("rank", ""),
                yes if row["eligible"] else no,
                "" if row.get("score") is None else f"{row['score']:.4f}",
                row["serial"],
                row["program"],
                row["level"],
                row["chip"]["vendor"],
                row["chip"]["sku"],
                row["chip"]["name"],
                row["target"],
                row["backend"],
                class_label(row["classification"]["code"]),
                *(cell_text(cell) for cell in row["cells"]),
                "; ".join(localize(reason) for reason in row["reasons"]),
            ]
        )
    return out.getvalue()


# Presentation attributes, not a <style> element: the report embeds the SVG in a page whose
# Content-Security-Policy allows no inline style.
BAR_FILLS = {"declared": "#b8c4d6", "measured": "#1f5fa8", "ratio": "#2e7d32"}


def _wrap(text: str, width: int) -> list[str]:
    """At most two lines of `width` characters, broken at a space where possible; longer ends in "…"."""
    if len(text) <= width:
        return [text]
    cut = text.rfind(" ", 0, width + 1)
    cut = cut if cut > width // 2 else width
    first, rest = text[:cut].rstrip(), text[cut:].lstrip()
    return [first, rest if len(rest) <= width else rest[: width - 1] + "…"]


def _bars_svg(*, title: str, unit: str, series: list[tuple[str, list[tuple[str, float | None, str]]]]) -> str:
    """Horizontal grouped bars on one linear scale from 0 shared by every row, with a labelled axis in
    `unit`, a legend of every bar colour, and room for the longest value: nothing is cut off.
    series = [(row label, [(legend, value, css class), ...]), ...]."""
    values = [v for _, bars in series for _, v, _ in bars if v is not None]
    ticks = nice_ticks(max(values, default=0) or 1.0)
    top = ticks[-1]
    label_w, plot_w, value_w, bar_h, gap = 250, 330, 120, 14, 14
    width = label_w + plot_w + value_w
    kinds = list(dict.fromkeys((legend, css) for _, bars in series for legend, _, css in bars))
    legend_y = 36
    y0 = legend_y + 18
    group_h = max(2, max((len(bars) for _, bars in series), default=1)) * bar_h + gap
    plot_h = max(1, len(series)) * group_h
    height = y0 + plot_h + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" aria-label="{escape(title)}" font-family="sans-serif" font-size="11" fill="#222">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for index, (legend, css) in enumerate(kinds):
        x = label_w + index * 150
        parts.append(
            f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" fill="{BAR_FILLS[css]}"/>'
            f'<text x="{x + 16}" y="{legend_y}">{escape(legend)} ({escape(unit)})</text>'
        )
    for tick in ticks:
        tick_x = label_w + plot_w * tick / top
        parts.append(
            f'<line x1="{tick_x:.1f}" y1="{y0 - 4}" x2="{tick_x:.1f}" y2="{y0 + plot_h}" stroke="#dde2e8"/>'
            f'<text x="{tick_x:.1f}" y="{y0 + plot_h + 14}" text-anchor="middle" fill="#555">'
            f"{plain_number(tick)}</text>"
        )
    parts.append(
        f'<text x="{label_w + plot_w / 2:.1f}" y="{y0 + plot_h + 32}" text-anchor="middle">{escape(unit)}</text>'
    )
    y = y0
    for label, bars in series:
        lines = _wrap(label, 40)
        parts.append(f'<text x="4" y="{y + 11}"><title>{escape(label)}</title>')
        parts += [
            f'<tspan x="4" dy="{0 if n == 0 else 13}">{escape(line)}</tspan>' for n, line in enumerate(lines)
        ]
        parts.append("</text>")
        for index, (legend, value, css) in enumerate(bars):
            by = y + index * bar_h
            length = 0 if value is None else max(1.0, plot_w * value / top)
            text = _("n/a") if value is None else f"{plain_number(value)} {unit}"
            parts.append(
                f'<rect class="{css}" fill="{BAR_FILLS[css]}" x="{label_w}" y="{by}" width="{length:.1f}" '
                f'height="{bar_h - 3}"><title>{escape(legend)}: {escape(text)}</title></rect>'
                f'<text x="{label_w + plot_w + 6}" y="{by + bar_h - 4}">{escape(text)}</text>'
            )
        y += group_h
    if not series:
        nothing = _("No eligible chip to chart.")
        parts.append(f'<text x="4" y="{y0 + 12}">{escape(nothing)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def chart_rows(*, snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures both charts draw, as rows of the table printed beside them."""
    rows = []
    for row in [r for r in snapshot["rows"] if r["eligible"]][:CHART_LIMIT]:
        dtype, best = _best_gemm(row)
        tdp = row.get("figures", {}).get("tdp_w")
        rows.append(
            {
                "label": f"#{row['rank']} {row_label(row)}",
                "dtype": dtype,
                "declared": best and best["declared"],
                "measured": best and best["measured"],
                "per_watt": best["measured"] / tdp if best and tdp else None,
                "tdp_w": tdp,
            }
        )
    return rows


def _best_gemm(row: dict) -> tuple[str | None, dict | None]:
    gemm = row.get("figures", {}).get("gemm", {})
    if not gemm:
        return None, None
    dtype = max(gemm, key=lambda d: gemm[d]["measured"])
    return dtype, gemm[dtype]


def chart_measured_vs_declared(*, snapshot: dict) -> str:
    series = []
    for row in [r for r in snapshot["rows"] if r["eligible"]][:CHART_LIMIT]:
        dtype, best = _best_gemm(row)
        series.append(
            (
                f"#{row['rank']} {row_label(row)}" + (f" {dtype}" if dtype else ""),
                [
                    (_("declared peak"), best and best["declared"], "declared"),
                    (_("measured"), best and best["measured"], "measured"),
                ],
            )
        )
    return _bars_svg(title=_("Best certified GEMM: measured vs declared peak"), unit="TFLOP/s", series=series)


def chart_perf_per_watt(*, snapshot: dict) -> str:
    series = []
    for row in [r for r in snapshot["rows"] if r["eligible"]][:CHART_LIMIT]:
        _dtype, best = _best_gemm(row)
        tdp = row.get("figures", {}).get("tdp_w")
        value = best["measured"] / tdp if best and tdp else None
        series.append((f"#{row['rank']} {row_label(row)}", [(_("measured per watt"), value, "ratio")]))
    return _bars_svg(title=_("Certified GEMM performance per watt (TDP)"), unit="TFLOP/s/W", series=series)
