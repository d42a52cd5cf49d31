"""HTTP caching of the public certificate reads (list and detail).

Every public answer carries `Cache-Control: public, no-cache` and a strong ETag made of the public
generation, the full path and the media type: a client (or proxy) revalidates each time and gets a
304 while nothing changed. The rendered body is also kept in the shared cache under that ETag, so a
repeated read costs two small cache lookups instead of the list query. The generation is a random
token in the shared cache, replaced after every commit that changes what the public reads show
(an issue, any status change, a re-signing): old entries are never served again and expire.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation
from rest_framework.request import Request

GENERATION_KEY = "public-reads:generation"
BODY_TTL_S = 3600
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


def cached_public_response(
    request: HttpRequest | Request, render: Callable[[], HttpResponse]
) -> HttpResponse:
    """`render()`'s answer for this path and media type, from the shared cache while nothing changed."""
    media_type = getattr(request, "accepted_media_type", "") or ""
    # A page is rendered in the visitor's language and time zone (LocaleMiddleware, TimezoneMiddleware):
    # one cached body per language and zone, never a Chinese page served to an English visitor.
    locale = f"{translation.get_language()}\n{timezone.get_current_timezone_name()}"
    token = f"{public_generation()}\n{request.get_full_path()}\n{media_type}\n{locale}"
    etag = '"' + hashlib.sha256(token.encode()).hexdigest()[:32] + '"'
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
