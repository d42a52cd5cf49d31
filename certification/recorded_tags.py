"""Template filters of certification.recorded_text: `{% load recorded %}`, then `{{ text|recorded }}`
or, where the structured form was stored next to the text, `{{ text|recorded:result.evidence }}`."""

from __future__ import annotations

from typing import Any

from django import template

from certification.recorded_text import localize

register = template.Library()


@register.filter
def recorded(text: Any, stored: Any = None) -> Any:
    """`text` in the reader's language; `stored` (a dict) may hold its explanation_code and params."""
    if not isinstance(text, str):
        return text
    if isinstance(stored, dict) and stored.get("explanation_code"):
        return localize(text, code=stored["explanation_code"], params=stored.get("explanation_params"))
    return localize(text)
