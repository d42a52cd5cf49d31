"""`python -m runners`: subcommands, the result file, and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runners.cli import EXIT_BAD_SPEC, EXIT_ERRORS, EXIT_PASS, SUITES, main
from runners.document import validate_document

CHALLENGE = "cd" * 16
SMALL = ["--kernels", "add", "softmax", "--dtypes", "float32", "int8"]


@pytest.mark.slow
def test_backends_catalog_and_fingerprint_print_and_succeed(capsys):
    assert main(["backends"]) == 0
    assert "cpu" in capsys.readouterr().out
    assert main(["catalog"]) == 0
    assert "kernels" in capsys.readouterr().out
    assert main(["fingerprint", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["backend"] == "cpu"


@pytest.mark.slow
def test_run_writes_a_valid_canonical_document_and_a_summary_table(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "run",
                "--suite",
                "conformance",
                "--device",
                "cpu",
                "--out",
                str(out),
                "--seed",
                CHALLENGE,
                *SMALL,
            ]
        )
        == EXIT_PASS
    )
    document = json.loads(out.read_bytes())
    validate_document(document)
    assert document["spec"]["challenge"] == CHALLENGE
    err = capsys.readouterr().err
    assert "kernel" in err and "softmax" in err and "reference" in err


@pytest.mark.slow
def test_a_spec_file_drives_the_run(tmp_path):
    spec = {
        "schema_version": "1.0",
        "job_id": "j1",
        "suite": "conformance",
        "device": "cpu",
        "challenge": CHALLENGE,
        "kernels": ["sum"],
        "dtypes": ["int8"],
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    out = tmp_path / "r.json"
    assert main(["run", "--spec", str(tmp_path / "spec.json"), "--out", str(out), "--quiet"]) == EXIT_PASS
    assert {c["kernel"] for c in json.loads(out.read_text())["cases"]} == {"sum"}


@pytest.mark.slow
def test_unknown_device_and_bad_seed_are_refused(tmp_path):
    out = tmp_path / "r.json"
    assert main(["run", "--device", "warpdrive", "--out", str(out), "--quiet"]) == EXIT_BAD_SPEC
    assert main(["run", "--device", "cpu", "--seed", "123", "--out", str(out), "--quiet"]) == EXIT_BAD_SPEC
    assert not out.exists()


@pytest.mark.slow
def test_unknown_kernel_is_an_error_exit_with_a_document(tmp_path):
    out = tmp_path / "r.json"
    code = main(
        [
            "run",
            "--device",
            "cpu",
            "--kernels",
            "add",
            "nonexistent",
            "--dtypes",
            "int8",
            "--out",
            str(out),
            "--quiet",
            "--seed",
            CHALLENGE,
        ]
    )
    assert code == EXIT_ERRORS
    assert any(c["error_class"] == "bad_spec" for c in json.loads(out.read_text())["cases"])


def test_suites_are_a_registry_other_suites_can_join():
    assert SUITES["conformance"]


@pytest.mark.slow
def test_python_dash_m_runners_runs(tmp_path):
    out = tmp_path / "r.json"
    result = subprocess.run(  # noqa: S603 (our own interpreter, fixed arguments)
        [
            sys.executable,
            "-m",
            "runners",
            "run",
            "--device",
            "cpu",
            "--kernels",
            "argmax",
            "--dtypes",
            "int8",
            "--out",
            str(out),
            "--seed",
            CHALLENGE,
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "argmax" in result.stderr and out.exists()
