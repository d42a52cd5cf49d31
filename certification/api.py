"""API conventions shared by every app: pagination and one error body.

Every error answers `{"error": {"status": 400, "code": "invalid", "message": "...", "fields": {...}}}`;
`fields` maps a field name to its messages and is present only for validation errors.
"""

from __future__ import annotations

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

NON_FIELD_ERRORS_KEY = api_settings.NON_FIELD_ERRORS_KEY


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


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
            fields = {NON_FIELD_ERRORS_KEY if key == NON_FIELD_ERRORS else key: messages
                      for key, messages in exc.message_dict.items()}
            exc = exceptions.ValidationError(fields)
        else:
            exc = exceptions.ValidationError({NON_FIELD_ERRORS_KEY: exc.messages})
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, ProtectedError):
        exc = Conflict("Other records depend on this object; it cannot be deleted.")

    response = drf_exception_handler(exc, context)
    if response is None:
        return None

    body: dict = {"status": response.status_code, "code": "error", "message": ""}
    if isinstance(exc, exceptions.ValidationError):
        body["code"] = "invalid"
        detail = exc.detail
        if isinstance(detail, dict):
            body["fields"] = detail
            body["message"] = "The request has invalid fields."
        else:
            body["fields"] = {"non_field_errors": detail}
            body["message"] = _flatten(detail)
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        body["code"] = codes if isinstance(codes, str) else "error"
        body["message"] = _flatten(exc.detail)
    response.data = {"error": body}
    return response
