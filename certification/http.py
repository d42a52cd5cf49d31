"""HTTP conventions of the API that no single view owns.

- `Location` on every 201: the created object's detail URL, from the view's router name and lookup
  field (a view that knows better sets it itself).
- `If-Match` on PUT, PATCH and DELETE: the object's current ETag (the one a GET of the same URL with
  the same credentials and Accept answers, made by Django's ConditionalGetMiddleware) must be one of
  those listed, or the request is refused with 412 before the view runs. `*` matches any existing
  object. A request without If-Match is not checked (the header is the client's choice).

GET answers carry an ETag and honour If-None-Match (304) through ConditionalGetMiddleware, which
sits inside this middleware so that the probe GET gets its ETag too.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponseBase
from django.urls import NoReverseMatch, reverse

from certification.errors import api_error_response, is_api

CONDITIONAL_METHODS = {"PUT", "PATCH", "DELETE"}
DROPPED_FOR_PROBE = {"CONTENT_LENGTH", "CONTENT_TYPE", "HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH"}


def _listed_etags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _location(request: HttpRequest, response: HttpResponseBase) -> str | None:
    context = getattr(response, "renderer_context", None) or {}
    view, data = context.get("view"), getattr(response, "data", None)
    basename = getattr(view, "basename", None)
    if not basename or not isinstance(data, dict):
        return None
    field = getattr(view, "lookup_field", "pk")
    kwarg = getattr(view, "lookup_url_kwarg", None) or field
    value = data.get("id" if field == "pk" else field)
    if value is None:
        return None
    try:
        return request.build_absolute_uri(reverse(f"{basename}-detail", kwargs={kwarg: value}))
    except NoReverseMatch:
        return None


class HttpConventionsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def _current_etag(self, request: HttpRequest) -> tuple[int, str | None]:
        """A GET of the same URL as the same client, run through the same stack (auth, visibility)."""
        meta = {key: value for key, value in request.META.items() if key not in DROPPED_FOR_PROBE}
        meta.update(REQUEST_METHOD="GET", CONTENT_LENGTH="0")
        meta["wsgi.input"] = io.BytesIO(b"")
        response = self.get_response(WSGIRequest(meta))
        return response.status_code, response.get("ETag")

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.method in CONDITIONAL_METHODS and is_api(request) and "If-Match" in request.headers:
            status, etag = self._current_etag(request)
            listed = _listed_etags(request.headers["If-Match"])
            if status == 200 and not ("*" in listed or (etag and etag in listed)):
                refused = api_error_response(
                    412,
                    "If-Match does not name the current version of this object; GET it again.",
                    request=request,
                    code="precondition_failed",
                )
                if etag:
                    refused["ETag"] = etag
                return refused
        response = self.get_response(request)
        if response.status_code == 201 and is_api(request) and "Location" not in response:
            location = _location(request, response)
            if location:
                response["Location"] = location
        return response
