"""Loading a program: the stored definition is the program's own, not the caller's dict."""

from __future__ import annotations

import copy

from apps.runs.models import Program
from apps.runs.services.programs import program_load
from tests.runs.world import TEST_PROGRAM


def test_a_change_to_the_loaded_definition_never_reaches_the_callers_dict(db):
    definition = copy.deepcopy(TEST_PROGRAM)
    program, created = program_load(definition=definition)
    assert created
    program.definition["levels"][0]["thresholds"] = {"changed": True}
    program.definition["levels"][0]["criteria"].append({"id": "X"})
    assert definition == TEST_PROGRAM
    assert Program.objects.get(pk=program.pk).definition == TEST_PROGRAM
