"""Limits on JSON from outside: nesting depth, integer length and NUL characters.

Python's json recurses once per nesting level and raises RecursionError (not ValueError) at
about 1,000 levels; PostgreSQL's jsonb refuses the NUL character (\\u0000) and text columns
refuse NUL bytes. Both would surface as a 500, so anything parsed from a client is checked here
first: the depth on the raw text, before the parser recurses, and the parsed value for NULs.
"""

from __future__ import annotations

import json
import operator
import re
from itertools import accumulate, count
from typing import Any

MAX_DEPTH = 32  # request bodies and JSON fields; real ones nest 4 or 5 levels
MAX_INT_DIGITS = 1000  # far above any real number, far below Python's 4,300-digit conversion limit

# A JSON string, written as "unrolled loop" so a long string is one fast scan, not one match per char.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = str.maketrans({"[": "\x02", "{": "\x02", "]": "\x00", "}": "\x00"})


NUL_MESSAGE = "Text must not contain the NUL character (\\u0000)."


class JSONLimitExceeded(ValueError):
    """The JSON text or value is outside the limits; the message says which one, for the client."""


def check_json_depth(text: str, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise JSONLimitExceeded if `text` nests arrays or objects deeper than `max_depth`.

    One linear pass at C speed, no recursion: strings are removed (brackets inside them do not
    count), the brackets left become +1/-1 steps, and the highest running sum is the depth. An
    unbalanced text may be misjudged here, but json.loads refuses it before nesting any deeper.
    """
    if text.count("[") + text.count("{") <= max_depth:
        # No deeper than its opening brackets, strings' included: counted at memory speed, where removing
        # the strings scans at regex speed (25 ms for a reveal answer's 2.7 MB of base64 here: issue 13).
        return
    brackets = _NOT_A_BRACKET.sub("", _STRING.sub("", text))
    if len(brackets) <= max_depth:
        return
    # "[" and "{" become 2, "]" and "}" 0; the k-th running sum minus k is the depth after k brackets.
    steps = brackets.translate(_STEP).encode("latin-1")
    deepest = max(map(operator.sub, accumulate(steps), count(1)))
    if deepest > max_depth:
        raise JSONLimitExceeded(f"JSON nested deeper than {max_depth} levels.")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONLimitExceeded(f"JSON integer longer than {MAX_INT_DIGITS} digits.")
    return int(text)


def _refuse_constant(name: str):
    raise JSONLimitExceeded(f"{name} is not a JSON number.")


def json_loads_within_depth(text: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads with a depth limit, bounded integers and no NaN/Infinity.

    Raises ValueError (JSONLimitExceeded, or json.JSONDecodeError for malformed text).
    """
    check_json_depth(text, max_depth=max_depth)
    return json.loads(text, parse_int=_bounded_int, parse_constant=_refuse_constant)


def json_loads_bounded(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """json_loads_within_depth, and no NUL character in any string or key."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8")
    value = json_loads_within_depth(text, max_depth=max_depth)
    check_json_value(value, max_depth=max_depth)
    return value


def nul_path(value: Any) -> str | None:
    """The path (`a.0.b`) of the first string or key holding a NUL character, or None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and "\x00" in key:
                    return child_path
                stack.append((child_path, child))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}.{i}" if path else str(i), child) for i, child in enumerate(item))
    return None


def check_json_value(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise JSONLimitExceeded for an already-parsed value that nests too deep or holds a NUL.

    Iterative, so a value built in Python (not parsed from text) cannot make it recurse either.
    """
    stack: list[tuple[int, Any]] = [(0, value)]
    while stack:
        depth, item = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                raise JSONLimitExceeded(f"JSON nested deeper than {max_depth} levels.")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((depth + 1, child) for child in children)
    where = nul_path(value)
    if where is not None:
        raise JSONLimitExceeded(NUL_MESSAGE if not where else f"{NUL_MESSAGE[:-1]} (at {where}).")
