"""The result document: assembly, schema validation; hashed and signed as RFC 8785 JSON (runners.canonical)."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema

from runners import SCHEMA_VERSION
from runners.canonical import canonical_json

STATUSES = ("pass", "fail", "error", "unsupported")


class DocumentInvalid(ValueError):
    """The document does not match runners/schema/result.schema.json; the message says where, and
    `errors` lists each problem ("<path>: <message>")."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors or [message])


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_safe(value: Any) -> Any:
    """Replaces NaN and infinities (which JSON cannot carry) by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def document_sha256(document: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(document)).hexdigest()


def summarize(cases: list[dict[str, Any]]) -> dict[str, Any]:
    statuses = Counter(case["status"] for case in cases)
    by_kernel_dtype: dict[str, dict[str, dict[str, int]]] = {}
    for case in cases:
        counts = by_kernel_dtype.setdefault(case["kernel"], {}).setdefault(
            case["dtype"], {status: 0 for status in STATUSES}
        )
        counts[case["status"]] += 1
    return {
        "total": len(cases),
        "passed": statuses["pass"],
        "failed": statuses["fail"],
        "errors": statuses["error"],
        "unsupported": statuses["unsupported"],
        "kernels": len({c["kernel"] for c in cases if c["kernel"] != "*"}),
        "dtypes": sorted({c["dtype"] for c in cases if c["dtype"] != "*"}),
        "by_kernel_dtype": by_kernel_dtype,
        "by_error_class": dict(Counter(c["error_class"] for c in cases if c["error_class"])),
    }


def build_document(
    suite: str,
    spec: dict[str, Any],
    fingerprint: dict[str, Any],
    cases: list[dict[str, Any]],
    timings: dict[str, float],
    started_at: str,
    **extra: Any,
) -> dict[str, Any]:
    """A schema-valid result document. `extra` carries optional sections (measurements, integrity)."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "suite": suite,
        "spec": spec,
        "fingerprint": fingerprint,
        "started_at": started_at,
        "finished_at": now_iso(),
        "timings": timings,
        "cases": cases,
        "summary": summarize(cases),
        **extra,
    }
    return json_safe(document)


@cache
def load_schema(name: str) -> dict[str, Any]:
    """`name` is "result" or "spec"; the schemas ship inside the runners package."""
    text = resources.files("runners.schema").joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _compiled(name: str) -> Callable[[Any], Any]:
    """The schema compiled to Python code: a 10,000-measurement document validates in well under a
    second, where the interpreting validator needs several; it only says valid or not."""
    return fastjsonschema.compile(load_schema(name))


def schema_errors(instance: Any, name: str) -> list[str]:
    try:
        _compiled(name)(instance)
    except fastjsonschema.JsonSchemaException:
        pass  # list every problem below, with the interpreting validator's messages
    else:
        return []
    validator = jsonschema.Draft202012Validator(load_schema(name), format_checker=jsonschema.FormatChecker())
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    ]


def validate_document(document: dict[str, Any]) -> None:
    """Raises DocumentInvalid listing every schema violation (at most 20 of them)."""
    errors = schema_errors(document, "result")
    try:
        canonical_json(document)
    except ValueError as exc:  # NaN or Infinity slipped into the document
        errors.append(f"<root>: not canonical JSON: {exc}")
    if errors:
        shown = "\n  ".join(errors[:20])
        raise DocumentInvalid(f"result document invalid ({len(errors)} problems):\n  {shown}", errors)
