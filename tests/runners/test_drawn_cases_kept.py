"""Case dimensions drawn once per block (runners.catalog.base.drawn_cases_kept): the same draws, less work."""

from __future__ import annotations

from dataclasses import replace

import runners.catalog.base as catalog_base
from runners.catalog import get_kernel
from runners.catalog.base import Span, drawn_cases_kept

CHALLENGE = "ab" * 32


def _drawn_case():
    kernel = get_kernel("matmul")
    case = next(c for c in kernel.cases_for("float32") if not c.drawn)
    return kernel, case


def test_a_block_draws_each_case_once_and_gives_the_same_dimensions(monkeypatch):
    kernel, case = _drawn_case()
    fresh = case.draw(CHALLENGE, kernel.name)
    calls = []
    seed = catalog_base.shape_seed
    monkeypatch.setattr(catalog_base, "shape_seed", lambda *a: calls.append(a) or seed(*a))
    with drawn_cases_kept():
        first = case.draw(CHALLENGE, kernel.name)
        again = case.draw(CHALLENGE, kernel.name)
        other = case.draw("cd" * 32, kernel.name)
    assert first == again == fresh and len(calls) == 2  # one draw per challenge
    assert other == case.draw("cd" * 32, kernel.name)
    case.draw(CHALLENGE, kernel.name)  # outside the block every call draws
    assert len(calls) == 4


def test_another_case_of_the_same_name_is_drawn_for_itself():
    kernel, case = _drawn_case()
    span = next(key for key, value in case.dims.items() if isinstance(value, Span))
    narrowed = replace(case, dims={**case.dims, span: 7})  # same name, that dimension fixed
    with drawn_cases_kept():
        assert case.draw(CHALLENGE, kernel.name) == case.draw(CHALLENGE, kernel.name)
        assert narrowed.draw(CHALLENGE, kernel.name).dims[span] == 7
