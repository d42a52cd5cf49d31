"""Every setting read from the environment is named in the README (issue 18: an operator finds each one
in its production part)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_environment_setting_is_in_the_readme():
    settings = (ROOT / "certification" / "settings.py").read_text()
    names = set(re.findall(r"""\benv_\w+\(\s*["']([A-Z][A-Z0-9_]*)["']""", settings))
    assert len(names) > 40  # the pattern still finds the settings module's reads
    readme = (ROOT / "README.md").read_text()
    missing = sorted(name for name in names if not re.search(rf"`{name}`|\b{name}=", readme))
    assert missing == []
