"""runners/ runs on hardware hosts without the platform: importing it must load no Django."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_importing_every_runners_module_loads_no_django_nor_platform_code():
    # A hardware host has no Django installed. This venv has it, and kombu (the broker client)
    # imports django.utils.functional whenever it can, so the subprocess hides Django the way a
    # runner host would: any runners module that truly needs Django then fails to import.
    script = textwrap.dedent(
        """
        import importlib, importlib.abc, pkgutil, sys

        class NoPlatform(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"django", "certification", "apps"}:
                    raise ImportError(f"{name} is not installed on a runner host")
                return None

        sys.meta_path.insert(0, NoPlatform())
        import runners
        for module in pkgutil.walk_packages(runners.__path__, "runners."):
            if not module.name.endswith("__main__"):  # __main__ runs the CLI on import
                importlib.import_module(module.name)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in {"django", "certification", "apps"})
        print("leaked:", leaked)
        sys.exit(1 if leaked else 0)
        """
    )
    result = subprocess.run(  # noqa: S603 (our own interpreter, fixed arguments)
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_core_modules_import_cleanly_even_with_django_installed():
    script = (
        "import sys, runners.cli, runners.conformance, runners.catalog, runners.backends, runners.document, "
        "runners.spec\n"
        "leaked = [m for m in sys.modules if m.split('.')[0] in {'django', 'certification', 'apps'}]\n"
        "print(leaked); sys.exit(1 if leaked else 0)"
    )
    result = subprocess.run(  # noqa: S603 (our own interpreter, fixed arguments)
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_runners_source_never_unpickles():
    for path in (ROOT / "runners").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "torch.load(" not in text and "pickle.load" not in text, path
