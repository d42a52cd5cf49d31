"""A runner's own progress labels, as codes with English formats (no Django here).

The runner reports `progress(done, total, label)`; a label is either data (a case's
kernel/dtype/case, a benchmark's name and dtype, a collective's op and size) or one of these phrases.
The runner sends the English text (what its CLI prints, and the fallback a reader gets when the
platform does not know the code); the platform records it as the job's progress message and the
portal reads it back into the phrase `progress.<code>` of certification/recorded_text.py, which
registers the same formats for translation (tests/portal/test_i18n_last_english.py checks that they
agree), and shows it in the reader's language."""

from __future__ import annotations

from typing import Any

LABELS: dict[str, str] = {
    "started": "started",
    "done": "done",
    "model_loading": "model %(model)s: loading",
    "model_dtype": "model %(model)s: %(dtype)s",
    "serving": "serving %(model)s",
    "caching_after": "integrity: caching after the fact",
}


def label(code: str, /, **params: Any) -> str:
    """The English label of the phrase `code` with `params` (each formatted as str)."""
    return LABELS[code] % {name: str(value) for name, value in params.items()}
