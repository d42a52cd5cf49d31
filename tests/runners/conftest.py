"""tests/runners run without Django (``-p no:django``): the platform's autouse fixtures of
tests/conftest.py are replaced here by no-ops of the same names."""

from __future__ import annotations

import os

import pytest

# Never reach the Hugging Face hub from tests: models come from installed packages only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def media_root():
    return None


@pytest.fixture(autouse=True)
def _fresh_throttles():
    return None
