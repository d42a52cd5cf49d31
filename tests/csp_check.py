"""What a page must satisfy under the portal's Content-Security-Policy: the header, and nothing inline."""

from __future__ import annotations

import re

INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
STYLE_ELEMENT = re.compile(r"<style\b", re.I)
STYLE_ATTRIBUTE = re.compile(r"<[a-z][^>]*\sstyle\s*=", re.I)
EVENT_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)
JAVASCRIPT_URL = re.compile(r"\b(?:href|src|action)\s*=\s*[\"']?\s*javascript:", re.I)


def policy_of(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def assert_page_satisfies_the_policy(response, *, inline_styles_allowed: bool = False) -> None:
    assert response.status_code == 200, response.status_code
    policy = policy_of(response)
    assert policy["script-src"] == ["'self'"], policy
    assert "'unsafe-inline'" not in policy["default-src"]
    html = response.content.decode()
    url = response.request["PATH_INFO"]
    for name, pattern in [
        ("inline script", INLINE_SCRIPT),
        ("event handler", EVENT_HANDLER),
        ("javascript: URL", JAVASCRIPT_URL),
    ]:
        assert not pattern.search(html), f"{url}: {name} {pattern.search(html).group(0)!r}"
    if not inline_styles_allowed:
        assert policy["style-src"] == ["'self'"], policy
        for name, pattern in [("<style> element", STYLE_ELEMENT), ("style attribute", STYLE_ATTRIBUTE)]:
            assert not pattern.search(html), f"{url}: {name} {pattern.search(html).group(0)!r}"
