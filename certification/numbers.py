"""Numbers as charts and tables print them for people: plain notation, never "1.2e+03"."""

from __future__ import annotations

import math


def plain_number(value: float, significant: int = 3) -> str:
    """`value` to `significant` digits in plain notation, thousands separated, trailing zeros dropped:
    1234.5 -> "1,234", 0.00123 -> "0.00123", 4.0 -> "4"."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    decimals = max(0, significant - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if decimals else text


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """0 and round steps (1, 2 or 5 times a power of ten) up to at least `top`: a linear axis' ticks."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < top * (1 - 1e-9):
        ticks.append(round(ticks[-1] + step, 12))
    return ticks
