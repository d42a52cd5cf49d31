"""The real runner documents are produced once per session (in the background) and shared by the xdist
workers; the workers' databases are copies of one migrated template."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.real_documents import (
    SHARED_DIR_ENV,
    runner_collectives_document,
    runner_documents,
    start_background_producer,
)


def test_the_sessions_real_documents_are_the_shared_files_every_worker_reads() -> None:
    """The controlling process names one directory (tests/conftest.py); the documents this process
    judges are those written there, and the raw outputs for the reveal lie there, so a second worker
    reads the first one's run instead of running the tiny plan again."""
    shared = Path(os.environ[SHARED_DIR_ENV])
    real = runner_documents()
    written = json.loads((shared / "documents.json").read_text())
    assert json.dumps(real.documents, sort_keys=True) == json.dumps(written, sort_keys=True)  # NaN-safe
    assert set(real.documents) == {"conformance", "performance", "model", "serving"}
    assert real.output_root == shared / "outputs"
    assert any(path.is_file() for path in real.output_root.rglob("*"))
    assert real.weights == (shared / "weights.safetensors").read_bytes()


def _module(name: str, **names) -> types.ModuleType:
    module = types.ModuleType(name)
    vars(module).update(names)
    return module


def test_the_tests_that_use_the_real_documents_are_ordered_last_the_collectives_ones_after_them() -> None:
    """The background producer runs the plans while the tests that need no documents run, so those come
    first; the order is a stable sort (every xdist worker must collect the same order)."""
    from tests.conftest import pytest_collection_modifyitems

    plain = _module("tests.plain", json=json)
    documents = _module("tests.documents", runner_documents=runner_documents)
    collectives = _module(
        "tests.collectives",
        runner_documents=runner_documents,
        runner_collectives_document=runner_collectives_document,
    )
    items = [
        SimpleNamespace(nodeid=f"{module.__name__}::{n}", module=module)
        for n, module in enumerate([collectives, documents, plain, documents, plain])
    ]
    config = SimpleNamespace(option=SimpleNamespace(collectonly=True))  # collecting only: no producer
    pytest_collection_modifyitems(session=None, config=config, items=items)
    assert [item.nodeid for item in items] == [
        "tests.plain::2",
        "tests.plain::4",
        "tests.documents::1",
        "tests.documents::3",
        "tests.collectives::0",
    ]


def test_one_background_producer_per_session_directory_ended_with_the_session(tmp_path, monkeypatch) -> None:
    """The first process to ask starts the producer (the others find it started); the controlling
    process's cleanup ends it, with its process group, if it still runs."""
    from tests.conftest import _stop_producer

    monkeypatch.setenv(SHARED_DIR_ENV, str(tmp_path))
    # This test holds the documents' lock, so the producer waits on it and cannot finish (and exit 0)
    # before the cleanup ends it, whatever this host's speed.
    held = open(tmp_path / "documents.json.lock", "w")  # noqa: SIM115 - released in the finally below
    fcntl.flock(held, fcntl.LOCK_EX)
    producer = start_background_producer(collectives=True)
    assert producer is not None
    try:
        assert start_background_producer(collectives=True) is None
        assert int((tmp_path / "producer.pid").read_text()) == producer.pid
        assert producer.poll() is None  # still starting or running the plan
        _stop_producer(tmp_path)
        assert producer.wait(timeout=60) == -signal.SIGTERM
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()
        held.close()
    assert not (tmp_path / "documents.json").exists()


def test_an_xdist_workers_database_is_cloned_from_the_sessions_migrated_template(db) -> None:
    """Under xdist (`make test-fast`) one worker migrates the session's template database and each
    worker's database is a copy of it (tests/conftest.py), instead of every worker migrating."""
    from django.db import connection

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or connection.vendor != "postgresql":
        pytest.skip("the template is made only for xdist workers on PostgreSQL")
    template = (Path(os.environ[SHARED_DIR_ENV]) / "database.template").read_text()
    assert connection.settings_dict["NAME"] == f"{template}_{worker}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template])
        assert cursor.fetchone() == (1,)
