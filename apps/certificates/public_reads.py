"""HTTP caching of the public certificate reads (list and detail).

Every public answer carries `Cache-Control: public, no-cache` and a strong ETag made of the public
generation, the full path and the media type: a client (or proxy) revalidates each time and gets a
304 while nothing changed. The rendered body is also kept in the shared cache under that ETag, so a
repeated read costs two small cache lookups instead of the list query. The generation is a random
token in the shared cache, replaced after every commit that changes what the public reads show
(an issue, any status change, a re-signing): old entries are never served again and expire. A body is
stored with the generation it was rendered under, under a key of its place alone (path, media type,
language, zone), so one cache round trip fetches both the current generation and the body.

Portal pages of public data (the registry) are cached the same way for anonymous visitors without a
session (`anonymous_page_cached`), with one difference: the page carries the visitor's CSRF token (the
language and time-zone switchers post), so the shared body holds a placeholder where each token goes,
and every answer, from the cache or freshly rendered, gets the requesting visitor's own token there.
Those answers are `private, no-cache` with a weak ETag: the bytes differ by the token, the page does not.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.utils import timezone, translation
from django.utils.cache import patch_vary_headers
from rest_framework.request import Request

GENERATION_KEY = "public-reads:generation"
BODY_TTL_S = 3600
# A cached page also shows filter choices (vendors, backends, programs) that change without a new
# generation: they lag at most this long.
PAGE_TTL_S = 60
CACHE_CONTROL = "public, no-cache"


def public_generation() -> str:
    generation = cache.get(GENERATION_KEY)
    if generation is None:
        generation = secrets.token_hex(8)
        if not cache.add(GENERATION_KEY, generation, None):
            generation = cache.get(GENERATION_KEY) or generation
    return str(generation)


def _next_generation() -> None:
    cache.set(GENERATION_KEY, secrets.token_hex(8), None)


def public_reads_changed() -> None:
    """Call inside the transaction that changes a certificate. The generation changes now and again at
    commit: a read made meanwhile (which still sees the old rows) is cached under a generation that
    the commit retires."""
    _next_generation()
    transaction.on_commit(_next_generation)


def _place(request: HttpRequest | Request) -> str:
    """Where a cached body belongs: the full path, the media type, and the language and time zone it
    was rendered in (LocaleMiddleware, TimezoneMiddleware): one cached body per language and zone,
    never a Chinese page served to an English visitor."""
    media_type = getattr(request, "accepted_media_type", "") or ""
    locale = f"{translation.get_language()}\n{timezone.get_current_timezone_name()}"
    return f"{request.get_full_path()}\n{media_type}\n{locale}"


def _lookup(kind: str, request: HttpRequest | Request) -> tuple[str, str, str, tuple[Any, ...] | None]:
    """(cache key, generation, ETag token, stored body or None) in one cache round trip: the body is kept
    with the generation it was rendered under and is served only while that is still the current one."""
    place = _place(request)
    key = f"public-reads:{kind}:" + hashlib.sha256(place.encode()).hexdigest()
    found = cache.get_many([GENERATION_KEY, key])
    generation = str(found[GENERATION_KEY]) if GENERATION_KEY in found else public_generation()
    stored = found.get(key)
    if stored is not None and stored[0] != generation:
        stored = None  # rendered before the last change
    return key, generation, f"{generation}\n{place}", stored


def _etag(token: str) -> str:
    return '"' + hashlib.sha256(token.encode()).hexdigest()[:32] + '"'


def cached_public_response(
    request: HttpRequest | Request, render: Callable[[], HttpResponse]
) -> HttpResponse:
    """`render()`'s answer for this path and media type, from the shared cache while nothing changed."""
    key, generation, token, stored = _lookup("body", request)
    if stored is not None:
        _generation, body, content_type = stored
        response = HttpResponse(body, content_type=content_type)
    else:
        response = render()
        if response.status_code != 200:
            return response
        if hasattr(response, "render"):
            response.render()
        cache.set(key, (generation, response.content, response["Content-Type"]), BODY_TTL_S)
    response["ETag"] = _etag(token)
    response["Cache-Control"] = CACHE_CONTROL
    return response


# The hidden input `{% csrf_token %}` renders; a NUL byte, which no rendered text contains (PostgreSQL
# stores none), stands for the token in a shared body.
CSRF_INPUT = re.compile(rb'(<input type="hidden" name="csrfmiddlewaretoken" value=")[^"]*(")')
CSRF_PLACEHOLDER = b"\x00csrf-token\x00"


def _shares_the_anonymous_page(request: HttpRequest) -> bool:
    """No user, no session (a chosen time zone, a pending message) and no message cookie: this visitor
    sees what every such visitor in the same language and zone sees, but for the CSRF token."""
    return not (
        request.user.is_authenticated
        or settings.SESSION_COOKIE_NAME in request.COOKIES
        or getattr(settings, "MESSAGE_COOKIE_NAME", "messages") in request.COOKIES
    )


def anonymous_page_cached(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A portal view of public data, served to anonymous visitors from the shared cache (see above)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not _shares_the_anonymous_page(request):
            return view(request, *args, **kwargs)
        key, generation, token, stored = _lookup("page", request)
        if stored is None:
            response = view(request, *args, **kwargs)
            if response.status_code != 200 or response.streaming:
                return response
            body = CSRF_INPUT.sub(rb"\1" + CSRF_PLACEHOLDER + rb"\2", response.content)
            stored = (generation, body, response["Content-Type"])
            cache.set(key, stored, PAGE_TTL_S)
        _generation, body, content_type = stored
        if CSRF_PLACEHOLDER in body:  # get_token() also makes CsrfViewMiddleware set the visitor's cookie
            body = body.replace(CSRF_PLACEHOLDER, get_token(request).encode())
        response = HttpResponse(body, content_type=content_type)
        response["ETag"] = "W/" + _etag("page\n" + token)
        response["Cache-Control"] = "private, no-cache"
        patch_vary_headers(response, ["Cookie"])
        return response

    return wrapped
