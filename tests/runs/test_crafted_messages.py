"""Crafted JSON from the broker (a result envelope, a runner message) is rejected, never an exception
in the task: Python's json raises RecursionError at about 1,000 levels and ValueError (not a
JSONDecodeError) for an integer of more than 4,300 digits."""

from __future__ import annotations

import pytest

from apps.registry.models import Runner, RunnerStatus
from apps.runs.models import ResultDocument
from apps.runs.services.ingestion import ENVELOPE_KEYS, result_ingest
from apps.runs.services.messages import runner_heartbeat_receive

CRAFTED = {
    "1000 deep": '{"spec": {"job_id": 1}, "x": ' + "[" * 1000 + "]" * 1000 + "}",
    "5000-digit integer": '{"spec": {"job_id": ' + "9" * 5000 + "}}",
    "NaN": '{"spec": {"job_id": NaN}}',
}


@pytest.mark.parametrize("document_json", CRAFTED.values(), ids=CRAFTED.keys())
def test_a_crafted_result_document_is_rejected(cpu_world, document_json):
    envelope = dict.fromkeys(ENVELOPE_KEYS, "x") | {"document_json": document_json}
    outcome = result_ingest(envelope=envelope)
    assert not outcome.accepted
    assert ResultDocument.objects.count() == 0


@pytest.mark.parametrize("payload_json", CRAFTED.values(), ids=CRAFTED.keys())
def test_a_signed_but_crafted_runner_message_is_dropped(cpu_world, payload_json):
    identity = cpu_world.identity
    body = payload_json.encode()
    message = {
        "runner": identity.name,
        "key_id": identity.key_id,
        "payload_json": body.decode(),
        "signature": identity.sign_bytes(body),
    }
    runner_heartbeat_receive(message=message)
    assert Runner.objects.get(pk=cpu_world.runner.pk).status == RunnerStatus.PENDING
