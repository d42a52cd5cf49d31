"""API conventions shared by every app: pagination and one error body.

Every error answers RFC 9457 problem details (certification/problems.py): `type`, `title`, `status`,
`detail`, `instance`, the extension `code`, and on validation errors `errors` (field to messages).
"""

from __future__ import annotations

import base64
import codecs
import json
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, Q, QuerySet
from django.http import Http404
from django.utils.translation import gettext
from rest_framework import exceptions, parsers, serializers, status
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import BasePagination, PageNumberPagination
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.urls import replace_query_param

from certification.json_limits import (
    MAX_DEPTH,
    NUL_MESSAGE,
    JSONLimitExceeded,
    check_json_value,
    json_loads_bounded,
    json_loads_within_depth,
    nul_path,
)
from certification.problems import problem_body, problem_content_type

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rest_framework.request import Request
    from rest_framework.views import APIView

NON_FIELD_ERRORS_KEY = api_settings.NON_FIELD_ERRORS_KEY


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser within limits: the body at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes (413),
    nested at most MAX_DEPTH levels, integers of bounded length, no NUL character anywhere (400).

    DRF reads a JSON body straight from the request stream, so Django's own size limit (enforced
    only by request.body and form parsing) never applied to it.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise PayloadTooLarge(f"JSON request bodies are limited to {limit} bytes.")
        try:
            data = json_loads_within_depth(codecs.decode(raw, encoding), max_depth=MAX_DEPTH)
        except ValueError as exc:  # also UnicodeDecodeError and JSONLimitExceeded
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        where = nul_path(data)
        if where is not None:
            # Refused before any field sees it: PostgreSQL stores no NUL in text or jsonb.
            field = where.split(".", 1)[0] if isinstance(data, dict) else NON_FIELD_ERRORS_KEY
            raise exceptions.ValidationError({field: [NUL_MESSAGE]})
        return data


class BoundedJSONField(serializers.JSONField):
    """A JSON field held to the same limits as a JSON body, also when it arrives as text in a form
    (DRF's own field would json.loads it unbounded: a RecursionError at about 1,000 levels)."""

    def __init__(self, *args, max_depth: int = MAX_DEPTH, **kwargs):
        self.max_depth = max_depth
        super().__init__(*args, **kwargs)

    def to_internal_value(self, data):
        try:
            if self.binary or getattr(data, "is_json_string", False):
                if isinstance(data, bytes):
                    data = data.decode("utf-8")
                return json_loads_bounded(data, max_depth=self.max_depth)
            check_json_value(data, max_depth=self.max_depth)
        except JSONLimitExceeded as exc:
            raise serializers.ValidationError(str(exc), code="invalid") from None
        except ValueError:
            self.fail("invalid")
        return super().to_internal_value(data)


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


class KeysetPagination(BasePagination):
    """Keyset pages, forward: each page continues after the previous page's last row, compared on every
    column of the list's ordering (OrderingFilter's, else the view's) plus `id` as the tie-breaker, so
    rows that tie on the ordered column are neither repeated nor skipped (DRF's CursorPagination
    falls back to an OFFSET, capped at 1,000, among ties). No OFFSET and no COUNT: a deep page costs
    what the first one does, with an index on the ordering. The cursor is opaque (base64 of the last
    row's ordering values); an empty `cursor` is the first page, a forged one a 404."""

    cursor_query_param = "cursor"
    page_size_query_param = "page_size"
    max_page_size = 500
    invalid_cursor_message = "Invalid cursor."

    def _ordering(self, request: Request, queryset: QuerySet[Any, Any], view: APIView | None) -> list[str]:
        ordering: list[str] = []
        for backend in getattr(view, "filter_backends", []):
            if issubclass(backend, OrderingFilter):
                ordering = list(backend().get_ordering(request, queryset, view) or [])
        ordering = ordering or list(getattr(view, "ordering", None) or [])
        if not {"id", "-id", "pk", "-pk"} & set(ordering):
            ordering.append("id")
        if any("__" in field for field in ordering):
            raise ValueError("keyset ordering on related fields is not supported")
        return ordering

    def _page_size(self, request: Request) -> int:
        try:
            size = int(request.query_params.get(self.page_size_query_param, ""))
        except ValueError:
            size = 0
        return min(size, self.max_page_size) if size > 0 else int(api_settings.PAGE_SIZE or 50)

    def _after(self, ordering: list[str], values: list[Any]) -> Q:
        """Rows after `values` in `ordering`: (a > x) or (a = x and b > y) or ..., per column direction."""
        after = Q(pk__in=[])
        for depth, field in enumerate(ordering):
            name = field.lstrip("-")
            step = Q(**{f"{name}__{'lt' if field.startswith('-') else 'gt'}": values[depth]})
            for earlier, value in zip(ordering[:depth], values[:depth], strict=True):
                step &= Q(**{earlier.lstrip("-"): value})
            after |= step
        return after

    def paginate_queryset(
        self, queryset: QuerySet[Any, Any] | Sequence[Any], request: Request, view: APIView | None = None
    ) -> list[Any] | None:
        assert isinstance(queryset, QuerySet), "keyset pages need a queryset"
        self.request = request
        self.ordering = self._ordering(request, queryset, view)
        self.page_size = self._page_size(request)
        queryset = queryset.order_by(*self.ordering)
        encoded = request.query_params.get(self.cursor_query_param) or ""
        if encoded:
            try:
                values = json.loads(base64.urlsafe_b64decode(encoded.encode("ascii")))
            except (ValueError, UnicodeError):
                raise exceptions.NotFound(self.invalid_cursor_message) from None
            if (
                not isinstance(values, list)
                or len(values) != len(self.ordering)
                or not all(isinstance(value, str | int | float) for value in values)
            ):
                raise exceptions.NotFound(self.invalid_cursor_message)
        try:
            if encoded:
                queryset = queryset.filter(self._after(self.ordering, values))
            rows = list(queryset[: self.page_size + 1])
        except (ValueError, TypeError, DjangoValidationError):  # a value its column cannot hold
            raise exceptions.NotFound(self.invalid_cursor_message) from None
        self.has_next = len(rows) > self.page_size
        self.page = rows[: self.page_size]
        return self.page

    def _next_link(self) -> str | None:
        if not self.has_next or not self.page:
            return None
        last = self.page[-1]
        values = []
        for field in self.ordering:
            value = getattr(last, "pk" if field.lstrip("-") == "pk" else field.lstrip("-"))
            values.append(value.isoformat() if hasattr(value, "isoformat") else value)
        cursor = base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode("ascii")
        return replace_query_param(self.request.build_absolute_uri(), self.cursor_query_param, cursor)

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"next": self._next_link(), "previous": None, "results": data})


class PageOrCursorPagination(Pagination):
    """Page numbers (`page`, with `count`) by default; keyset pages (`cursor`, KeysetPagination) as soon as
    the query names `cursor`, even empty: `?cursor=` is the first page, then follow `next`."""

    cursor_query_param = KeysetPagination.cursor_query_param
    _keyset: KeysetPagination | None = None

    def paginate_queryset(
        self, queryset: QuerySet[Any, Any] | Sequence[Any], request: Request, view: APIView | None = None
    ) -> list[Any] | None:
        if self.cursor_query_param in request.query_params:
            self._keyset = KeysetPagination()
            return self._keyset.paginate_queryset(queryset, request, view)
        self._keyset = None
        return super().paginate_queryset(queryset, request, view)

    def get_paginated_response(self, data: Any) -> Response:
        if self._keyset is not None:
            return self._keyset.get_paginated_response(data)
        return super().get_paginated_response(data)

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        paged = super().get_paginated_response_schema(schema)
        paged["required"] = ["results"]
        paged["properties"]["count"]["description"] = (
            "The number of rows (page numbers only, not with `cursor`)"
        )
        return paged

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        return [
            *super().get_schema_operation_parameters(view),
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": (
                    "Keyset pagination instead of page numbers: empty for the first page, then follow "
                    "`next` (forward only: `previous` is null; no `count`; a deep page costs what the "
                    "first one does)."
                ),
                "schema": {"type": "string"},
            },
        ]


def _flatten(detail) -> str:
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    if isinstance(detail, dict):
        return " ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    return str(detail)


def exception_handler(exc, context):
    """DRF's handler, with Django's ValidationError mapped to 400 and one body for every error."""
    if isinstance(exc, DjangoValidationError) and getattr(exc, "code", None) == "conflict":
        exc = Conflict(" ".join(exc.messages))  # valid input that the record's state forbids
    elif isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            # Django names errors that belong to no field "__all__"; DRF calls them non_field_errors.
            fields = {
                NON_FIELD_ERRORS_KEY if key == NON_FIELD_ERRORS else key: messages
                for key, messages in exc.message_dict.items()
            }
            exc = exceptions.ValidationError(fields)
        else:
            exc = exceptions.ValidationError({NON_FIELD_ERRORS_KEY: exc.messages})
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):  # form fields past DATA_UPLOAD_MAX_MEMORY_SIZE
        exc = PayloadTooLarge(
            gettext("Request bodies are limited to %(limit)s bytes.")
            % {"limit": settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
        )
    elif isinstance(exc, ProtectedError):
        exc = Conflict(gettext("Other records depend on this object; it cannot be deleted."))

    # Imported here: rest_framework.views reads DEFAULT_PARSER_CLASSES (this module's JSONParser) when
    # it is first imported, so importing it at the top would be circular wherever this module loads first.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None

    request = context.get("request")
    code, errors = "error", None
    if isinstance(exc, exceptions.ValidationError):
        code = "invalid"
        detail = exc.detail
        if isinstance(detail, dict):
            errors = detail
            message = gettext("The request has invalid fields: %(fields)s.") % {
                "fields": ", ".join(str(field) for field in detail)
            }
        else:
            errors = {NON_FIELD_ERRORS_KEY: detail}
            message = _flatten(detail)
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        code = codes if isinstance(codes, str) else "error"
        message = _flatten(exc.detail) if isinstance(exc, exceptions.APIException) else ""
    response.data = problem_body(request, response.status_code, code=code, detail=message, errors=errors)
    renderer = getattr(request, "accepted_renderer", None)
    if renderer is None or getattr(renderer, "format", "json") == "json":
        # The browsable API (text/html) renders the same data as a page; JSON clients get problem+json.
        response.content_type = problem_content_type(request)
    return response
