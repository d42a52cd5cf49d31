"""The project's system checks (apps/*/checks.py): each passes on the shipped configuration and
names the problem when its configuration is broken."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from apps.certificates.checks import signing_key_dir_check
from apps.procurement.checks import export_rules_check
from apps.procurement.export_control import RULES_DIR
from apps.runs import checks as runs_checks
from apps.runs.services import programs as program_services


def ids(errors) -> list[str]:
    return [error.id for error in errors]


def test_shipped_configuration_passes(settings, tmp_path):
    settings.CERT_SIGNING_KEY_DIR = tmp_path / "keys"
    assert runs_checks.evaluator_check() == []
    assert runs_checks.programs_check() == []
    assert signing_key_dir_check() == []
    assert export_rules_check() == []


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("apps.certificates.services.no_such_function", "runs.E001"),
        ("apps.no_such_app.evaluate", "runs.E001"),
        ("apps.runs.services.programs.PROGRAMS_DIR", "runs.E002"),  # not callable
        ("json.dumps", "runs.E002"),  # callable, but not with campaign_id alone
    ],
)
def test_evaluator_that_runs_cannot_call(settings, path, expected):
    settings.CAMPAIGN_EVALUATOR = path
    assert ids(runs_checks.evaluator_check()) == [expected]


@pytest.fixture
def program_dir(tmp_path, monkeypatch):
    for path in program_services.program_files():
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(program_services, "program_files", lambda: sorted(tmp_path.glob("*.json")))
    return tmp_path


def test_programs_unreadable_invalid_or_twice(program_dir):
    (program_dir / "broken.json").write_text("{not json")
    definition = json.loads((program_dir / "aia-1.1.json").read_text())
    (program_dir / "copy.json").write_text(json.dumps(definition))
    definition["levels"][0]["criteria"][0]["kind"] = "no_such_kind"
    (program_dir / "bad-kind.json").write_text(json.dumps(definition))
    (program_dir / "list.json").write_text("[]")
    errors = runs_checks.programs_check()
    assert sorted(ids(errors)) == ["runs.E003", "runs.E003", "runs.E004", "runs.E005"]
    text = " ".join(error.msg for error in errors)
    assert "broken.json" in text and "no_such_kind" in text and "copy.json" in text


def test_signing_key_dir_open_to_others(settings, tmp_path):
    directory = tmp_path / "signing"
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o700)
    settings.CERT_SIGNING_KEY_DIR = directory
    key = directory / "abc.pem"
    key.write_text("not checked here")
    os.chmod(key, 0o600)
    assert signing_key_dir_check() == []
    os.chmod(key, 0o644)
    assert ids(signing_key_dir_check()) == ["certificates.E003"]
    os.chmod(directory, 0o755)  # noqa: S103 - the very mistake the check reports
    assert ids(signing_key_dir_check()) == ["certificates.E002", "certificates.E003"]
    settings.CERT_SIGNING_KEY_DIR = key
    assert ids(signing_key_dir_check()) == ["certificates.E001"]


def _rule(tmp_path: Path, name: str, **changes) -> None:
    rule = json.loads(next(RULES_DIR.glob("*.json")).read_text())
    rule.update(changes)
    (tmp_path / name).write_text(json.dumps({k: v for k, v in rule.items() if v is not None}))


def test_export_rules_missing_malformed_or_not_in_force(settings, tmp_path):
    settings.EXPORT_CONTROL_RULES_DIR = tmp_path
    assert ids(export_rules_check()) == ["procurement.E001"]
    _rule(tmp_path, "future.json", effective="2999-01-01")
    assert ids(export_rules_check()) == ["procurement.E004"]
    _rule(tmp_path, "current.json")
    assert export_rules_check() == []
    _rule(tmp_path, "no-classes.json", classes=None)
    (tmp_path / "broken.json").write_text("{")
    assert sorted(ids(export_rules_check())) == ["procurement.E002", "procurement.E003"]
