"""The real runner documents are produced once per session and shared by the xdist workers."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.real_documents import SHARED_DIR_ENV, runner_documents


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
