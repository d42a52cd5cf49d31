"""Idempotency-Key on creations (campaigns): a client that retries a POST after a lost answer gets the
object its first request made instead of a second one.

The key is remembered per user for IDEMPOTENCY_TTL_S in the shared cache with the sha256 of the
request body's RFC 8785 form: the same key with the same body answers the first request's object
again (201, `Idempotent-Replayed: true`), with another body a 409; while the first request with a key
is still running, a second one with it is a 409 too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from certification.api import Conflict
from runners.canonical import canonical_json

IDEMPOTENCY_TTL_S = 24 * 3600
LOCK_TTL_S = 120
MAX_KEY_LENGTH = 255


def _body_digest(request: Request) -> str:
    try:
        return hashlib.sha256(canonical_json(request.data)).hexdigest()
    except (ValueError, TypeError):  # not plain JSON (a form): the raw bytes decide
        return hashlib.sha256(request.body).hexdigest()


def idempotent_create(
    request: Request, *, scope: str, create: Callable[[], Response], replay: Callable[[int], Response]
) -> Response:
    """Run `create` (which answers 201 with the new object's "id") at most once per Idempotency-Key."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return create()
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise exceptions.ValidationError(
            {"Idempotency-Key": [f"Use 1 to {MAX_KEY_LENGTH} printable ASCII characters."]}
        )
    slot = "idempotency:" + hashlib.sha256(f"{scope}\n{request.user.pk}\n{key}".encode()).hexdigest()
    digest = _body_digest(request)
    seen = cache.get(slot)
    if seen is not None:
        if seen["body"] != digest:
            raise Conflict("This Idempotency-Key was used with another request body.")
        response = replay(seen["id"])
        response["Idempotent-Replayed"] = "true"
        return response
    if not cache.add(slot + ":running", 1, LOCK_TTL_S):
        raise Conflict("A request with this Idempotency-Key is still being processed; retry later.")
    try:
        response = create()
        if response.status_code == 201 and isinstance(response.data, dict) and "id" in response.data:
            cache.set(slot, {"body": digest, "id": response.data["id"]}, IDEMPOTENCY_TTL_S)
        return response
    finally:
        cache.delete(slot + ":running")
