"""CSV that a spreadsheet opens as data, never as formulas (OWASP, "CSV Injection").

Excel, LibreOffice and Google Sheets evaluate a cell that starts with = + - @ (and a tab or a
carriage return before one); `=HYPERLINK(...)` in a chip name would reach a buyer's spreadsheet
as a live link that can leak the sheet's contents. Every CSV the platform writes goes through
`csv_writer`, which prefixes such cells with a single quote, the spreadsheets' "this is text".
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, Protocol

# OWASP's list, the NUL of OWASP ASVS 1.2.10, a line feed (a quoted multi-line cell may start
# with one), and the full-width forms some spreadsheet locales also read as formula signs.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\x00", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def spreadsheet_text(value: Any) -> Any:
    """`value` safe to write as a cell: text that could start a formula gets a leading quote.

    Numbers (int, float, Decimal) pass unchanged: written by the csv module they cannot carry a
    formula, and a negative figure stays a number.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class Writable(Protocol):
    """Where the rows go: a text file, a StringIO, or an HttpResponse."""

    def write(self, text: str, /) -> Any: ...


class _SpreadsheetWriter:
    def __init__(self, out: Writable, **kwargs):
        # OWASP also asks for every cell to be quoted, so a separator inside one never splits it.
        kwargs.setdefault("quoting", csv.QUOTE_ALL)
        self._writer = csv.writer(out, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([spreadsheet_text(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(out: Writable, **kwargs) -> _SpreadsheetWriter:
    """csv.writer whose every cell is passed through spreadsheet_text (and quoted)."""
    return _SpreadsheetWriter(out, **kwargs)
