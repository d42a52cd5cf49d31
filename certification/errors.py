"""The one error body (RFC 9457 problem details) also where DRF's exception handler never runs: paths no view matches, errors
Django answers itself (a 413 from form parsing, a 500 from an unexpected exception) and any other
non-JSON error response under /api/. Portal pages keep Django's HTML error pages."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from certification.problems import is_json_body, problem_response

API_PREFIX = "/api/"

MESSAGES = {
    404: "No API endpoint or object at this path.",
    413: "The request body is too large.",
}


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def api_error_response(
    status: int, message: str | None = None, *, request: HttpRequest | None = None, code: str | None = None
) -> JsonResponse:
    """A problem details response (certification/problems.py) for an error no DRF view answered."""
    return problem_response(request, status, message or MESSAGES.get(status), code=code)


class ApiErrorBodyMiddleware:
    """Outermost middleware: an error response under /api/ that is not JSON becomes a problem body.

    DRF views already answer JSON; this catches the rest (resolver 404s, handler400/500 pages,
    Django's own 405s), with the status unchanged. Headers a client needs (Allow, Retry-After)
    are kept.
    """

    KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and is_api(request)
            and not is_json_body(response.get("Content-Type", ""))
        ):
            replaced = api_error_response(response.status_code, request=request)
            for header in self.KEPT_HEADERS:
                if header in response:
                    replaced[header] = response[header]
            return replaced
        return response


class RefuseNulMiddleware:
    """A NUL character in the path or the query string is a 400 before any view runs.

    PostgreSQL stores no NUL in text, so a path segment or a parameter that reaches a query with
    one (`DELETE /api/v1/tokens/acp_%00/`) was a DataError, a 500. No name here can contain it.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()
        ):
            message = "The path and query parameters must not contain the NUL character."
            if is_api(request):
                return api_error_response(400, message, request=request, code="parse_error")
            return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


def bad_request(request: HttpRequest, exception: Exception | None = None, **kwargs) -> HttpResponse:
    """handler400: a request body past DATA_UPLOAD_MAX_MEMORY_SIZE is a 413, not a 400."""
    if isinstance(exception, RequestDataTooBig):
        if is_api(request):
            return api_error_response(413, request=request)
        return HttpResponse("Request body too large.", status=413, content_type="text/plain")
    return defaults.bad_request(request, exception, **kwargs)
