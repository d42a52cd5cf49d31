"""Every `manage.py` command loads the settings, the apps and the URLs (the system checks). None of
that may import torch: `make run` starts a dozen commands, and torch alone took 9 s of each one's
start on a loaded 2-core machine (`manage.py check` 17.2 s with it, 7.8 s without). The runners
import torch where they use it."""

from __future__ import annotations

import subprocess
import sys

from django.conf import settings

PROBE = """
import sys
import django
django.setup()
from django.core import checks
from django.urls import get_resolver
get_resolver().url_patterns
checks.run_checks()
print(sorted(name for name in ("torch", "safetensors.torch") if name in sys.modules))
"""


def test_the_platform_starts_without_importing_torch():
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr
