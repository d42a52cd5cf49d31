"""HTTP caching of the public certificate reads (list and detail).

Every public answer carries `Cache-Control: public, no-cache` and a strong ETag made of the public
generation, the full path and the media type: a client (or proxy) revalidates each time and gets a
304 while nothing changed. The rendered body is also kept in the shared cache under that ETag, so a
repeated read costs two small cache lookups instead of the list query. The generation is a random
token in the shared cache, replaced after every commit that changes what the public reads show
(an issue, any status change, a re-signing): old entries are never served again and expire.

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


def _cache_token(request: HttpRequest | Request) -> str:
    """What a cached body depends on: the generation, the full path, the media type, and the language
    and time zone it was rendered in (LocaleMiddleware, TimezoneMiddleware): one cached body per
    language and zone, never a Chinese page served to an English visitor."""
    media_type = getattr(request, "accepted_media_type", "") or ""
    locale = f"{translation.get_language()}\n{timezone.get_current_timezone_name()}"
    return f"{public_generation()}\n{request.get_full_path()}\n{media_type}\n{locale}"


def _etag(token: str) -> str:
    return '"' + hashlib.sha256(token.encode()).hexdigest()[:32] + '"'


def cached_public_response(
    request: HttpRequest | Request, render: Callable[[], HttpResponse]
) -> HttpResponse:
    """`render()`'s answer for this path and media type, from the shared cache while nothing changed."""
    etag = _etag(_cache_token(request))
    stored = cache.get("public-reads:body:" + etag)
    if stored is not None:
        body, content_type = stored
        response = HttpResponse(body, content_type=content_type)
    else:
        response = render()
        if response.status_code != 200:
            return response
        if hasattr(response, "render"):
            response.render()
        cache.set("public-reads:body:" + etag, (response.content, response["Content-Type"]), BODY_TTL_S)
    response["ETag"] = etag
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
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not _shares_the_anonymous_page(request):
            return view(request, *args, **kwargs)
        etag = "W/" + _etag("page\n" + _cache_token(request))
        key = "public-reads:page:" + etag
        stored = cache.get(key)
        if stored is None:
            response = view(request, *args, **kwargs)
            if response.status_code != 200 or response.streaming:
                return response
            stored = (
                CSRF_INPUT.sub(rb"\1" + CSRF_PLACEHOLDER + rb"\2", response.content),
                response["Content-Type"],
            )
            cache.set(key, stored, PAGE_TTL_S)
        body, content_type = stored
        if CSRF_PLACEHOLDER in body:  # get_token() also makes CsrfViewMiddleware set the visitor's cookie
            body = body.replace(CSRF_PLACEHOLDER, get_token(request).encode())
        response = HttpResponse(body, content_type=content_type)
        response["ETag"] = etag
        response["Cache-Control"] = "private, no-cache"
        patch_vary_headers(response, ["Cookie"])
        return response

    return wrapped
