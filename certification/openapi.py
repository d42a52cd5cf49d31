"""The OpenAPI schema: every operation tagged by its resource, with a summary, and with the error
responses it can give documented with the one error body (RFC 9457 problem details); served from a per-process cache.

The schema is a function of the code alone (no request, no database row changes it), so it is built
once per process and format and served from memory: building it walks every view and serializer,
about 0.7 s a request.
"""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpResponse
from drf_spectacular.views import SpectacularAPIView
from rest_framework.request import Request

ERROR_COMPONENT = "Problem"
ERROR_SCHEMA = {
    "type": "object",
    "description": (
        "RFC 9457 problem details, the one body of every API error (application/problem+json; "
        "application/json for a client whose Accept excludes it). The problem types are listed at /problems/."
    ),
    "properties": {
        "type": {
            "type": "string",
            "format": "uri-reference",
            "description": "The problem type: this platform's /problems/<slug>/ page describing it",
        },
        "title": {"type": "string", "description": "The problem type's short summary"},
        "status": {"type": "integer", "description": "The HTTP status code"},
        "detail": {"type": "string", "description": "What went wrong on this occurrence, for a person"},
        "instance": {"type": "string", "format": "uri-reference", "description": "The request's path"},
        "code": {"type": "string", "description": "A stable machine-readable code (extension)"},
        "errors": {
            "type": "object",
            "additionalProperties": {},
            "description": "Field name to its messages (validation problems only; extension)",
        },
    },
    "required": ["type", "title", "status", "detail", "code"],
}
ERROR_MEDIA_TYPES = ("application/problem+json", "application/json")
DESCRIPTIONS = {
    "400": "Invalid input: a field, a filter or the body (`code` invalid or parse_error).",
    "401": "No or invalid credentials.",
    "403": "Authenticated, but this role may not do it.",
    "404": "No such object, or not one of your organization's.",
    "404-page": "No such page: `page` past the last page or not a positive integer, or a `cursor` not given by this list.",
    "406": "None of the Accept header's media types can be served.",
    "409": "The object's state forbids it (or a repeated Idempotency-Key with another body).",
    "412": "If-Match names a representation that is no longer current.",
    "413": "The request body is too large.",
    "415": "The request body's media type is not accepted.",
    "429": "Too many requests; retry after the time given in Retry-After.",
    "500": "The server failed; the error is logged and the body says nothing about its cause.",
}
WRITE_METHODS = {"post", "put", "patch", "delete"}


def _tag(path: str) -> str:
    """The resource of a path: /api/v1/certificates/{serial}/verify/ -> certificates."""
    parts = [p for p in path.split("/") if p and not p.startswith("{")]
    if parts[:2] == ["api", "v1"]:
        parts = parts[2:]
    return parts[0] if parts else "api"


def _summary(operation: dict[str, Any], method: str, path: str) -> str:
    description = (operation.get("description") or "").strip()
    if description:
        return description.split("\n")[0].split(". ")[0].rstrip(".")[:120]
    words = {"get": "Read", "post": "Create", "put": "Replace", "patch": "Update", "delete": "Delete"}
    action = re.sub(r"[_-]", " ", operation.get("operationId", ""))
    return f"{words.get(method, method.upper())} {action or path}".strip()


def errors_and_tags(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular post-processing hook: tags, summaries and the documented error responses."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components[ERROR_COMPONENT] = ERROR_SCHEMA
    reference = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in WRITE_METHODS | {"get"}:
                continue
            operation["tags"] = [_tag(path)]
            operation.setdefault("summary", _summary(operation, method, path))
            security = operation.get("security")
            public_operation = security is not None and {} in security
            codes = {"400", "406", "429", "500"}
            if not public_operation or method in WRITE_METHODS:
                codes |= {"401", "403"}
            if "{" in path:
                codes.add("404")
            paginated = any(
                p.get("in") == "query" and p.get("name") == "page" for p in operation.get("parameters", [])
            )
            if paginated:
                codes.add("404")
            if method in WRITE_METHODS:
                codes |= {"409", "413", "415"}
            if method in {"put", "patch", "delete"}:
                codes.add("412")
            responses = operation.setdefault("responses", {})
            for code in sorted(codes):
                described = "404-page" if code == "404" and paginated and "{" not in path else code
                responses.setdefault(
                    code,
                    {
                        "description": DESCRIPTIONS[described],
                        "content": {media: {"schema": reference} for media in ERROR_MEDIA_TYPES},
                    },
                )
    return result


class CachedSchemaView(SpectacularAPIView):
    """The schema view, rendered once per process for each (format, version, language) asked for."""

    _cache: dict[
        tuple[Any, ...], tuple[Any, ...]
    ] = {}  # (format, version, lang) -> (body, type, disposition)

    def _get_schema_response(self, request: Request) -> HttpResponse:
        renderer = request.accepted_renderer
        key = (renderer.format, request.version, request.GET.get("lang"))
        cached = self._cache.get(key)
        if cached is None:
            response = super()._get_schema_response(request)  # type: ignore[no-untyped-call]  # drf-spectacular leaves it unannotated
            body = renderer.render(response.data, request.accepted_media_type, self.get_renderer_context())
            content_type = renderer.media_type + (f"; charset={renderer.charset}" if renderer.charset else "")
            cached = self._cache[key] = (body, content_type, response["Content-Disposition"])
        body, content_type, disposition = cached
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = disposition
        return response
