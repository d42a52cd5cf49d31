"""Schemathesis over the OpenAPI schema: every status code the registry endpoints answer is documented
in the schema (issue 18), and the bodies match their documented schemas.

The registry endpoints: the public certificate reads (anonymous), the chips, hardware targets, models
and runners of the registry app and the certified-chip registry (as a vendor engineer with a Bearer
token). Requests go through Django's WSGI application in this process (no live server), inside the
test's transaction; every operation gets a bounded number of generated cases, positive and negative.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from contextlib import contextmanager

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

pytestmark = pytest.mark.slow

# Generated cases per operation: enough to reach the error branches (bad ids, bad filters, bad
# bodies), bounded so the module takes about a minute on an idle CPU; SCHEMA_FUZZ_EXAMPLES=200 digs deeper.
EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMA_FUZZ_EXAMPLES", "12"))

PUBLIC = re.compile(r"^/api/v1/certificates/")
VENDOR = re.compile(r"^/api/v1/(chips|targets|models|runners|registry|certificates)/")
CHECKS = [status_code_conformance, response_schema_conformance]


@contextmanager
def _connection_kept():
    """As Django's test client does: a request must not close the test transaction's connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(client, db):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    loaded = schemathesis.openapi.from_dict(response.json())
    loaded.app = get_wsgi_application()
    return loaded


@pytest.fixture
def world(cast, monkeypatch):
    """Rows for the generated ids to sometimes hit: a certified chip on a target, the vendor's model.
    Throttles high enough that the fuzzing reaches the views (a 429 would still have to be documented)."""
    from rest_framework.throttling import SimpleRateThrottle

    rates = {scope: "100000/min" for scope in SimpleRateThrottle.THROTTLE_RATES}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)
    from tests.certificates.evidence import aia_program
    from tests.certificates.frozen import certify_cpu_target
    from tests.factories import ModelArtifactFactory, RunnerFactory

    certificate = certify_cpu_target(cast=cast, program=aia_program())
    model = ModelArtifactFactory(owner=cast.vendor)
    runner = RunnerFactory()
    return {
        "certificates": certificate.serial,
        "registry": certificate.serial,
        "chips": str(certificate.chip_id),
        "targets": str(certificate.target_id),
        "models": str(model.pk),
        "runners": str(runner.pk),
    }


def _strategy(operation, known: dict[str, str]):
    """Positive and negative cases; for a path naming one object, also cases that name a real one
    (so the 200 bodies, the 409s of certified objects and the 412s get checked too)."""
    strategies = []
    names = re.findall(r"{(\w+)}", operation.path)
    resource = operation.path.split("/")[3]
    fixed = {name: known[resource] for name in names if resource in known}
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategies.append(operation.as_strategy(mode))
        if fixed:
            strategies.append(operation.as_strategy(mode, path_parameters=fixed))
    return st.one_of(strategies)


def _fuzz(api_schema, pattern: re.Pattern[str], headers: dict[str, str], known: dict[str, str]):
    """Fuzz each operation the pattern matches; returns the failures and the status codes seen."""
    failures: list[str] = []
    seen: Counter[int] = Counter()
    operations = [
        result.ok() for result in api_schema.get_all_operations() if pattern.match(result.ok().path)
    ]
    assert operations, pattern.pattern
    for operation in operations:

        @given(case=_strategy(operation, known))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure's case is reported as found
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            response = case.call(headers=headers)
            seen[response.status_code] += 1
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            with _connection_kept():
                run()
        except BaseExceptionGroup as exc:  # schemathesis.FailureGroup: collected, all reported below
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    return failures, seen


def test_public_certificate_reads_answer_only_documented_status_codes(api_schema, world):
    failures, seen = _fuzz(api_schema, PUBLIC, headers={}, known=world)
    assert not failures, "\n\n".join(failures)
    assert seen[200] and seen[404], seen  # the real certificate was read, and unknown serials refused


def test_registry_endpoints_answer_a_vendor_only_documented_status_codes(api_schema, world, cast):
    from apps.accounts.services import api_token_create

    _, token = api_token_create(user=cast.owner, name="schemathesis")
    failures, seen = _fuzz(api_schema, VENDOR, headers={"Authorization": f"Bearer {token}"}, known=world)
    assert not failures, "\n\n".join(failures)
    # Authenticated: reads and writes went through (2xx), and the authority's runners refused (403).
    assert seen[200] and seen[403] and not seen[401], seen
