"""The guards `make lint` runs in CI fail on what they are for: an import contract broken
(runners/ importing Django, registry importing certificates) and a type error in runners/ or more
errors than the recorded baseline elsewhere."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _python_tree(tmp_path: Path) -> Path:
    """The project's Python packages and pyproject.toml (contracts), without data files."""
    for package in ("apps", "certification", "runners"):
        shutil.copytree(
            ROOT / package,
            tmp_path / package,
            ignore=lambda d, names: [
                n for n in names if not n.endswith(".py") and not (Path(d) / n).is_dir()
            ],
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint_imports(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        check=False,
    )


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is a dev extra")
def test_import_contracts_hold_and_catch_a_violation(tmp_path):
    tree = _python_tree(tmp_path)
    kept = _lint_imports(tree)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    (tree / "runners" / "zz_web.py").write_text("import django.conf\n")
    (tree / "apps" / "registry" / "zz_upwards.py").write_text("from apps.certificates import models\n")
    broken = _lint_imports(tree)
    assert broken.returncode != 0
    assert "runners.zz_web -> django" in broken.stdout
    assert "apps.registry.zz_upwards -> apps.certificates" in broken.stdout


@pytest.fixture
def baseline_script(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("mypy_baseline", ROOT / ".ci" / "mypy_baseline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "BASELINE", tmp_path / "baseline.json")
    module.BASELINE.write_text(json.dumps({"apps/x.py [arg-type]": 2}))

    def found(*lines: str) -> None:
        counts = Counter(line.split(":")[0] + " [" + line.rsplit("[", 1)[1] for line in lines)
        monkeypatch.setattr(module, "run_mypy", lambda: (counts, list(lines), 1 if lines else 0))

    module.found = found
    return module


def test_baseline_passes_as_recorded_and_fails_on_growth_or_runners(baseline_script, monkeypatch):
    err = "apps/x.py:{}: error: bad  [arg-type]"
    baseline_script.found(err.format(1), err.format(2))
    monkeypatch.setattr(sys, "argv", ["mypy_baseline.py"])
    assert baseline_script.main() == 0
    baseline_script.found(err.format(1), err.format(2), err.format(3))
    assert baseline_script.main() == 1, "one more error than recorded"
    baseline_script.found(err.format(1), err.format(2), "apps/y.py:1: error: new  [return-value]")
    assert baseline_script.main() == 1, "an error in a (file, code) the baseline does not list"
    baseline_script.found(err.format(1), err.format(2), "runners/z.py:1: error: bad  [arg-type]")
    assert baseline_script.main() == 1, "runners/ has no baseline"


def test_baseline_only_shrinks(baseline_script, monkeypatch):
    baseline_script.found("apps/x.py:1: error: bad  [arg-type]")
    monkeypatch.setattr(sys, "argv", ["mypy_baseline.py"])
    assert baseline_script.main() == 1, "fewer errors than recorded: the record must be lowered"
    monkeypatch.setattr(sys, "argv", ["mypy_baseline.py", "--update"])
    assert baseline_script.main() == 0
    assert json.loads(baseline_script.BASELINE.read_text()) == {"apps/x.py [arg-type]": 1}
    baseline_script.found("apps/x.py:1: error: bad  [arg-type]", "apps/x.py:2: error: bad  [arg-type]")
    assert baseline_script.main() == 1, "--update never raises a count"
    assert json.loads(baseline_script.BASELINE.read_text()) == {"apps/x.py [arg-type]": 1}
