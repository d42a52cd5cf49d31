"""An export-control class's code in the reader's language (issue 17).

The codes are the rule file's (apps/procurement/rules/): the ECCNs (3A090.a, 3A090.b) are legal
identifiers and read the same in every language; the others are this platform's words for "none of
them", "excluded by the rule's exclusion" and "cannot be decided from what is declared", translated at
display (pages and the evaluation CSV). The code itself is what the record and the API keep.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import pgettext

register = template.Library()


def class_label(code: Any) -> Any:
    """The code as the reader reads it; an ECCN or an unknown code as recorded."""
    labels = {
        "not-3A090": pgettext("export-control class", "not-3A090"),
        "excluded": pgettext("export-control class", "excluded"),
        "undetermined": pgettext("export-control class", "undetermined"),
    }
    return labels.get(code, code) if isinstance(code, str) else code


register.filter("export_class", class_label)
