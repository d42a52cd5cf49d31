"""Fixtures for the runners tests: a fixed challenge and temporary catalog registrations."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from runners import catalog
from runners.catalog import Kernel


@pytest.fixture
def registered() -> Iterator[Callable[[Kernel], Kernel]]:
    """Registers kernels for one test and removes them afterwards."""
    names: list[str] = []

    def register(kernel: Kernel) -> Kernel:
        names.append(kernel.name)
        return catalog.register(kernel)

    yield register
    for name in names:
        catalog.unregister(name)


# tests/conftest.py has autouse fixtures for the Django packages (media root, cache). The
# runners tests must run without Django (-p no:django on a hardware host), so they are
# overridden here by fixtures of the same names that touch nothing.
@pytest.fixture(autouse=True)
def media_root() -> None:
    return None


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    return None
