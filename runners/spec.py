"""Job specs: parse, validate against runners/schema/spec.schema.json, and build one for the CLI.

A spec is read by the judge process (the worker or the CLI), which holds the runner key and never
loads the vendor's backend; the device process (runners/device/host.py) receives only what a request
carries: a backend name, a kernel call's case and raw inputs, or, for the performance and model
suites, the spec itself (which holds no secret of the host, only the job's challenge). The table of
which process may load what is in runners/device/__init__.py.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

from runners import SCHEMA_VERSION
from runners.document import schema_errors


class SpecInvalid(ValueError):
    """The job spec fails the schema; the message lists each problem."""


def validate_spec(spec: Any) -> dict[str, Any]:
    """Returns a copy of the spec once it passes the schema; raises SpecInvalid otherwise."""
    if not isinstance(spec, dict):
        raise SpecInvalid(f"a job spec is a JSON object, got {type(spec).__name__}")
    errors = schema_errors(spec, "spec")
    if errors:
        raise SpecInvalid("job spec invalid:\n  " + "\n  ".join(errors[:20]))
    return copy.deepcopy(spec)


def load_spec(path: str | Path) -> dict[str, Any]:
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SpecInvalid(f"cannot read job spec {path}: {exc}") from exc
    return validate_spec(spec)


def attempt_tag(challenge: str) -> str:
    """Names one attempt of a job in runner messages without revealing its secret challenge."""
    return hashlib.sha256(f"attempt:{challenge}".encode()).hexdigest()[:32]


def new_challenge() -> str:
    """A fresh 256-bit challenge, for local runs that the platform did not schedule."""
    return secrets.token_hex(32)


def build_spec(
    *,
    suite: str,
    device: str,
    challenge: str | None = None,
    kernels: list[str] | None = None,
    dtypes: list[str] | None = None,
    cases: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "suite": suite,
        "device": device,
        "challenge": (challenge or new_challenge()).lower(),
    }
    if kernels:
        spec["kernels"] = list(kernels)
    if dtypes:
        spec["dtypes"] = list(dtypes)
    if cases:
        spec["cases"] = list(cases)
    spec.update({k: v for k, v in extra.items() if v is not None})
    return validate_spec(spec)


def backend_name(spec: dict[str, Any]) -> str:
    """The backend part of `device` ("cuda:1" -> "cuda")."""
    return str(spec["device"]).split(":", 1)[0]
