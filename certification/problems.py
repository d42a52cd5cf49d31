"""RFC 9457 problem details: the one error body of every API error.

Every error under /api/ answers `application/problem+json`:

    {"type": "https://<host>/problems/validation-error/", "title": "Invalid input", "status": 400,
     "detail": "...", "instance": "/api/v1/chips/", "code": "invalid", "errors": {"sku": ["..."]}}

- `type` is an absolute URI of this platform, `/problems/<slug>/`, which serves a page describing
  that problem (the catalogue is `PROBLEM_TYPES`, listed at `/problems/`). Its host is
  CERT_PUBLIC_URL's, else the request's.
- `title` is the type's fixed summary; `detail` says what went wrong on this occurrence, for a
  person; `instance` is the request's path.
- Extension members: `code`, a stable machine-readable code (DRF's codes: `invalid`, `not_found`,
  `throttled`...), and `errors` on validation problems only: field name to its messages
  (`non_field_errors` for the rest).
- A 500 says only that the server failed and that the error has been logged: no exception text.

Content negotiation: `application/problem+json` unless the request's Accept header names
`application/json` and excludes problem+json (no `application/problem+json`, `application/*` or
`*/*`); that client gets the same body as `application/json`.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

PROBLEM_JSON = "application/problem+json"
PROBLEMS_PATH = "/problems/"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: Any  # a lazy translation
    description: Any


_TYPES = [
    ProblemType(
        "validation-error",
        400,
        _("Invalid input"),
        _(
            "One or more fields, filters or query parameters are invalid. The `errors` member maps "
            "each field to its messages; errors that belong to no single field are under "
            "`non_field_errors`. Correct the listed fields and send the request again."
        ),
    ),
    ProblemType(
        "malformed-request",
        400,
        _("Malformed request"),
        _(
            "The request could not be read: the body is not valid JSON, is nested too deeply, or the "
            "path or query contains a NUL character."
        ),
    ),
    ProblemType(
        "not-authenticated",
        401,
        _("Authentication required"),
        _(
            "The request carries no credentials, or its token is unknown, expired or revoked. Send "
            "`Authorization: Bearer <token>` with a valid API token."
        ),
    ),
    ProblemType(
        "permission-denied",
        403,
        _("Not permitted"),
        _(
            "The credentials are valid, but this account's role or organization may not do this "
            "(for example a vendor reviewing its own campaign, or a buyer registering a chip)."
        ),
    ),
    ProblemType(
        "not-found",
        404,
        _("Not found"),
        _(
            "There is no endpoint at this path, or no such object that these credentials may see. "
            "Objects of another organization answer 404, not 403, so their existence is not revealed."
        ),
    ),
    ProblemType(
        "method-not-allowed",
        405,
        _("Method not allowed"),
        _(
            "This endpoint does not accept the request's method; the `Allow` header lists the methods it does."
        ),
    ),
    ProblemType(
        "not-acceptable",
        406,
        _("Not acceptable"),
        _("None of the media types in the Accept header can be served by this endpoint."),
    ),
    ProblemType(
        "conflict",
        409,
        _("Conflict with the current state"),
        _(
            "The request is well formed, but the object's current state forbids it (for example "
            "cancelling a finished campaign, deleting a chip that certificates refer to), or an "
            "Idempotency-Key was reused with a different body."
        ),
    ),
    ProblemType(
        "precondition-failed",
        412,
        _("Precondition failed"),
        _(
            "The If-Match header names a version of the object that is no longer current. GET the "
            "object again (its ETag is in the response) and repeat the change against it."
        ),
    ),
    ProblemType(
        "payload-too-large",
        413,
        _("Request body too large"),
        _("The request body is larger than the platform accepts (DATA_UPLOAD_MAX_MEMORY_SIZE bytes)."),
    ),
    ProblemType(
        "unsupported-media-type",
        415,
        _("Unsupported media type"),
        _(
            "The request body's Content-Type is not accepted by this endpoint: the API reads JSON, "
            "the model upload reads multipart/form-data."
        ),
    ),
    ProblemType(
        "throttled",
        429,
        _("Too many requests"),
        _(
            "This client sent more requests than its rate allows, or too many failed authentications "
            "came from its address. Wait the number of seconds in the Retry-After header."
        ),
    ),
    ProblemType(
        "server-error",
        500,
        _("Internal server error"),
        _(
            "The server failed to answer the request. The error has been logged for the operators; "
            "the response deliberately says nothing about its cause."
        ),
    ),
    ProblemType(
        "service-unavailable",
        503,
        _("Service unavailable"),
        _("The service cannot answer now (for example during maintenance). Try again later."),
    ),
]
PROBLEM_TYPES: dict[str, ProblemType] = {problem.slug: problem for problem in _TYPES}

# The problem type of each code (DRF's exception codes and ours); otherwise by status.
_BY_CODE = {
    "invalid": "validation-error",
    "parse_error": "malformed-request",
    "not_authenticated": "not-authenticated",
    "authentication_failed": "not-authenticated",
    "permission_denied": "permission-denied",
    "not_found": "not-found",
    "method_not_allowed": "method-not-allowed",
    "not_acceptable": "not-acceptable",
    "conflict": "conflict",
    "precondition_failed": "precondition-failed",
    "too_large": "payload-too-large",
    "unsupported_media_type": "unsupported-media-type",
    "throttled": "throttled",
    "server_error": "server-error",
}
_BY_STATUS = {
    400: "malformed-request",
    401: "not-authenticated",
    403: "permission-denied",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "throttled",
    500: "server-error",
    503: "service-unavailable",
}


def problem_type_for(status: int, code: str | None = None) -> ProblemType | None:
    """The type of a code when it is one of this status (a view may give a code another status), else the status's."""
    by_code = PROBLEM_TYPES.get(_BY_CODE.get(code or "", ""))
    if by_code is not None and by_code.status == status:
        return by_code
    return PROBLEM_TYPES.get(_BY_STATUS.get(status, ""))


def _base_url(request: HttpRequest | None) -> str:
    configured = (getattr(settings, "CERT_PUBLIC_URL", "") or "").rstrip("/")
    if configured or request is None:
        return configured
    try:
        return request.build_absolute_uri("/").rstrip("/")
    except DisallowedHost:  # the 400 of a bad Host header must not fail again building its own type
        return ""


def problem_type_uri(slug: str, request: HttpRequest | None = None) -> str:
    return f"{_base_url(request)}{PROBLEMS_PATH}{slug}/"


def problem_body(
    request: HttpRequest | None,
    status: int,
    *,
    code: str | None = None,
    detail: str | None = None,
    errors: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem details object of one error; `code` chooses its type, else `status` does."""
    problem = problem_type_for(status, code)
    if problem is not None:
        body: dict[str, Any] = {"type": problem_type_uri(problem.slug, request), "title": str(problem.title)}
    else:  # a status with no type of its own: RFC 9457 4.2.1, the title is the status phrase
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        body = {"type": "about:blank", "title": phrase}
    body["status"] = status
    if status >= 500 and status != 503:
        detail = str(PROBLEM_TYPES["server-error"].description)  # never the exception's text
    body["detail"] = detail or body["title"]
    if request is not None:
        body["instance"] = request.path
    body["code"] = code or (problem and _code_for(problem.slug)) or "error"
    if errors is not None:
        body["errors"] = errors
    return body


def _code_for(slug: str) -> str | None:
    return next((code for code, mapped in _BY_CODE.items() if mapped == slug), None)


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _sep, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            ranges.append((media.lower(), quality))
    return ranges


def problem_content_type(request: HttpRequest | None) -> str:
    """application/problem+json, or application/json for a client whose Accept excludes the former."""
    accept = request.headers.get("Accept", "") if request is not None else ""
    if not accept.strip():
        return PROBLEM_JSON
    ranges = dict(_media_ranges(accept))
    if any(ranges.get(media, 0) > 0 for media in (PROBLEM_JSON, "application/*", "*/*")):
        return PROBLEM_JSON
    if ranges.get("application/json", 0) > 0:
        return "application/json"
    return PROBLEM_JSON  # the client accepts neither: the error still says what happened


def is_json_body(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media in {"application/json", PROBLEM_JSON}


def problem_response(
    request: HttpRequest | None,
    status: int,
    detail: str | None = None,
    *,
    code: str | None = None,
    errors: dict[str, Any] | None = None,
) -> JsonResponse:
    body = problem_body(request, status, code=code, detail=detail, errors=errors)
    return JsonResponse(body, status=status, content_type=problem_content_type(request))


def problem_index(request: HttpRequest) -> HttpResponse:
    """/problems/: the catalogue of problem types, for the people who follow a `type` URI."""
    return render(request, "problems/index.html", {"problems": _TYPES})


def problem_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """/problems/<slug>/: what one problem type means and what to do about it."""
    problem = PROBLEM_TYPES.get(slug)
    if problem is None:
        raise Http404("No such problem type.")
    return render(request, "problems/detail.html", {"problem": problem, "code": _code_for(problem.slug)})
