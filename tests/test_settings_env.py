"""Settings read the environment through typed helpers that fail loudly on a bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from certification.env import (
    ImproperlyConfiguredEnv,
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_path,
    env_str,
    read_secret_file,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("", False),
    ],
)
def test_env_bool_reads_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("SOME_FLAG", raw)
    assert env_bool("SOME_FLAG", not expected) is expected


@pytest.mark.parametrize("raw", ["2", "maybe", "tru", "enabled", "y e s"])
def test_env_bool_fails_loudly_on_anything_else(monkeypatch, raw):
    monkeypatch.setenv("SOME_FLAG", raw)
    with pytest.raises(ImproperlyConfiguredEnv, match="SOME_FLAG"):
        env_bool("SOME_FLAG", False)


def test_env_bool_uses_the_default_when_unset(monkeypatch):
    monkeypatch.delenv("SOME_FLAG", raising=False)
    assert env_bool("SOME_FLAG", True) is True


@pytest.mark.parametrize(("raw", "expected"), [("0", 0), ("42", 42), (" 7 ", 7), ("-3", -3), ("", 5)])
def test_env_int_parses_integers(monkeypatch, raw, expected):
    monkeypatch.setenv("SOME_INT", raw)
    assert env_int("SOME_INT", 5) == expected


@pytest.mark.parametrize("raw", ["4.5", "ten", "1e3", "0x10", "12abc"])
def test_env_int_fails_loudly_on_a_non_integer(monkeypatch, raw):
    monkeypatch.setenv("SOME_INT", raw)
    with pytest.raises(ImproperlyConfiguredEnv, match="SOME_INT"):
        env_int("SOME_INT", 5)


def test_env_int_enforces_its_minimum(monkeypatch):
    monkeypatch.setenv("SOME_INT", "10")
    with pytest.raises(ImproperlyConfiguredEnv, match="at least 1024"):
        env_int("SOME_INT", 2048, minimum=1024)
    monkeypatch.setenv("SOME_INT", "1024")
    assert env_int("SOME_INT", 2048, minimum=1024) == 1024


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a.example,b.example", ["a.example", "b.example"]),
        (" a , ,b ", ["a", "b"]),
        ("", []),
        ("one", ["one"]),
    ],
)
def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch, raw, expected):
    monkeypatch.setenv("SOME_LIST", raw)
    assert env_list("SOME_LIST", ["default"]) == expected


def test_env_list_and_str_use_defaults_when_unset(monkeypatch):
    monkeypatch.delenv("SOME_LIST", raising=False)
    assert env_list("SOME_LIST", ["default"]) == ["default"]
    assert env_str("SOME_LIST", "fallback") == "fallback"


def test_env_str_required_fails_loudly_when_missing(monkeypatch):
    monkeypatch.setenv("SOME_STR", "")
    with pytest.raises(ImproperlyConfiguredEnv, match="SOME_STR must be set"):
        env_str("SOME_STR", required=True)


def test_env_path_expands_and_resolves(monkeypatch, tmp_path):
    monkeypatch.setenv("SOME_PATH", str(tmp_path / "a" / ".." / "b"))
    assert env_path("SOME_PATH", Path("/nowhere")) == tmp_path / "b"


def test_read_secret_file_returns_none_for_a_missing_file_and_refuses_an_empty_one(tmp_path):
    assert read_secret_file(tmp_path / "missing") is None
    (tmp_path / "empty").write_text("  \n")
    with pytest.raises(ImproperlyConfiguredEnv, match="empty"):
        read_secret_file(tmp_path / "empty")
    (tmp_path / "key").write_text("s3cret\n")
    assert read_secret_file(tmp_path / "key") == "s3cret"


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("sqlite:///relative.db", "relative.db"),
        ("sqlite:////var/lib/cert/db.sqlite3", "/var/lib/cert/db.sqlite3"),
        ("sqlite:////tmp/with%20space.db", "/tmp/with space.db"),  # noqa: S108 - a string, no file
    ],
)
def test_database_from_url_reads_sqlite_urls(url, name):
    config = database_from_url(url)
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == name


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_database_from_url_reads_postgresql_urls(scheme):
    config = database_from_url(f"{scheme}://cert:p%40ss@db.internal:6543/certdb?sslmode=require")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["NAME"], config["USER"], config["PASSWORD"]) == ("certdb", "cert", "p@ss")
    assert (config["HOST"], config["PORT"]) == ("db.internal", "6543")
    assert config["OPTIONS"] == {"sslmode": "require"}


def test_database_from_url_leaves_host_and_port_empty_for_a_local_socket():
    config = database_from_url("postgresql:///certdb")
    assert (config["NAME"], config["HOST"], config["PORT"], config["USER"]) == ("certdb", "", "", "")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@h/db", "not supported"),
        ("db.sqlite3", "not supported"),
        ("", "not supported"),
        ("sqlite://", "names no SQLite file"),
        ("postgresql://u@h:5432/", "names no database"),
        ("postgresql://u@h:5432", "names no database"),
    ],
)
def test_database_from_url_fails_loudly_on_a_bad_url(url, message):
    with pytest.raises(ImproperlyConfiguredEnv, match=message):
        database_from_url(url)


def _import_settings(tmp_path, **env) -> subprocess.CompletedProcess:
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "CERT_VAR_DIR": str(tmp_path / "var")}
    clean.update(env)
    return subprocess.run(  # noqa: S603 - our own interpreter on a fixed command
        [sys.executable, "-c", "import certification.settings as s; print(s.DATABASES['default']['ENGINE'])"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_settings_refuse_to_start_without_a_secret_key_when_debug_is_off(tmp_path):
    result = _import_settings(tmp_path, SECRET_KEY_FILE=str(tmp_path / "missing"))
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert "ImproperlyConfiguredEnv" in result.stderr


def test_settings_start_with_a_secret_key_and_default_to_sqlite(tmp_path):
    result = _import_settings(tmp_path, SECRET_KEY="x" * 50, SECRET_KEY_FILE=str(tmp_path / "missing"))
    assert result.returncode == 0, result.stderr
    # django-prometheus wraps the backend to count queries (certification/metrics.py).
    assert result.stdout.strip() == "django_prometheus.db.backends.sqlite3"


def test_settings_start_in_debug_without_a_secret_key(tmp_path):
    result = _import_settings(tmp_path, DEBUG="1", SECRET_KEY_FILE=str(tmp_path / "missing"))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEBUG", "perhaps"),
        ("ARTIFACT_MAX_UPLOAD_BYTES", "big"),
        ("ARTIFACT_MAX_UPLOAD_BYTES", "10"),
        ("API_TOKEN_TTL_DAYS", "0"),
        ("DATABASE_URL", "mysql://root@localhost/db"),
    ],
)
def test_settings_refuse_to_start_with_a_bad_value(tmp_path, variable, value):
    result = _import_settings(tmp_path, SECRET_KEY="x" * 50, **{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfiguredEnv" in result.stderr
    assert variable in result.stderr or "DATABASE_URL" in result.stderr


def test_the_sqlite_default_logs_ahead_and_takes_the_write_lock_when_a_transaction_begins(
    tmp_path, django_db_blocker
):
    """Several processes write the embedded default's database at once (the server, the worker and
    its beat, certify): a read that turns into a write inside a transaction must wait, not fail."""
    from django.db.utils import ConnectionHandler

    handler = ConnectionHandler({"default": database_from_url(f"sqlite:///{tmp_path / 'demo.sqlite3'}")})
    first, second = handler.create_connection("default"), handler.create_connection("default")
    with django_db_blocker.unblock():  # its own file, not the test database
        _write_beside_a_reader(first, second)


def _write_beside_a_reader(first, second) -> None:
    try:
        with first.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone()[0] == "wal"
            cursor.execute("CREATE TABLE t (n integer)")
        first.set_autocommit(False)  # Django's atomic(): BEGIN IMMEDIATE
        assert first.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
        with first.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM t")
            cursor.execute("INSERT INTO t VALUES (1)")
        with second.cursor() as cursor:  # a reader beside the writer (the write-ahead log)
            cursor.execute("SELECT count(*) FROM t")
            assert cursor.fetchone()[0] == 0
        first.commit()
    finally:
        first.close()
        second.close()
