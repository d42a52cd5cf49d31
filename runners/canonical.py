"""Canonical JSON: the one function whose bytes are hashed and signed, by the platform, the runners and
the offline verifier alike.

The canonical form is RFC 8785, the JSON Canonicalization Scheme (JCS), written by the maintained
`rfc8785` package: keys sorted by UTF-16 code units, no whitespace, UTF-8, numbers in the shortest
ECMAScript form (`1.0` is written `1`, `1e-07` is `1e-7`). It refuses what JCS cannot carry: NaN,
infinities, integers beyond ±(2^53 - 1) and non-string keys (each a ValueError).

Before JCS, the project signed Python's own sorted compact JSON. Certificates, audit events and
program digests made that way stay verifiable: `legacy_canonical_text` reproduces that form for
verification only (nothing new is signed with it), and a signed object says which form it used
(a certificate's `canonicalization` field, an audit event's hash version). This module is the only
place either form is written. It imports only the standard library and `rfc8785`, so the runners
(no Django) and a copied offline verifier can use it.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

# The value of a signed object's `canonicalization` field.
JCS = "RFC8785"
# The form of everything signed before JCS; an object without a `canonicalization` field used it.
LEGACY = "python-sorted-compact"
CANONICALIZATIONS = (JCS, LEGACY)


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 (JCS) bytes of `value`: what is hashed and signed."""
    return rfc8785.dumps(value)


def canonical_text(value: Any) -> str:
    """`canonical_json` as text (UTF-8 decoded), for fields that store the signed text."""
    return canonical_json(value).decode("utf-8")


def legacy_canonical_text(
    value: Any, *, encoder: type[json.JSONEncoder] | None = None, allow_nan: bool = False
) -> str:
    """The pre-JCS form (sorted keys, no whitespace, non-ASCII kept), for verifying objects signed
    before JCS only. `encoder` and `allow_nan` are as they were written (the audit chain used
    Django's encoder and let NaN through)."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=allow_nan,
        cls=encoder,
    )


def canonical_text_as(value: Any, canonicalization: str) -> str:
    """The canonical text of `value` in the named form (JCS or LEGACY); ValueError for another name."""
    if canonicalization == JCS:
        return canonical_text(value)
    if canonicalization == LEGACY:
        return legacy_canonical_text(value)
    raise ValueError(f"unknown canonicalization {canonicalization!r}")
