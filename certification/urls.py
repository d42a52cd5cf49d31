from csp.decorators import csp_update
from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

from apps.audit.views import audit_checkpoints
from apps.certificates.api.views import certification_keys, credential_status_list, did_web_document
from certification.health import healthz, readyz
from certification.metrics import metrics
from certification.openapi import CachedSchemaView
from certification.problems import problem_detail, problem_index
from certification.timezones import set_timezone

DOCS_CSP = csp_update({"style-src": ["'unsafe-inline'"]})

api_v1 = [
    path("", include("apps.accounts.api.urls")),
    path("", include("apps.registry.api.urls")),
    path("", include("apps.runs.api.urls")),
    path("", include("apps.certificates.api.urls")),
    path("", include("apps.procurement.api.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    # The language switcher posts to Django's set_language (i18n/setlang/), the zone to set_timezone.
    path("i18n/timezone/", set_timezone, name="set_timezone"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("apps.accounts.urls")),  # password reset only with mail; before Django's own
    path("", include("django.contrib.auth.urls")),
    path(".well-known/certification-keys.json", certification_keys, name="certification-keys"),
    path(".well-known/audit-checkpoints.json", audit_checkpoints, name="audit-checkpoints"),
    # The pages RFC 9457 problem `type` URIs point at (certification/problems.py).
    path("problems/", problem_index, name="problem-index"),
    path("problems/<slug:slug>/", problem_detail, name="problem-type"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path(".well-known/did.json", did_web_document, name="did-web"),
    path("api/v1/credentials/status/<slug:purpose>/", credential_status_list, name="credential-status-list"),
    path("api/v1/", include(api_v1)),
    path("procurement/", include("apps.procurement.urls")),
    path("api/schema/", CachedSchemaView.as_view(), name="schema"),
    # The API docs' bundles inject <style> elements, so these two pages alone allow inline styles (never
    # inline scripts: the Swagger UI's start-up script is a file of its own, the "split" view).
    path("api/docs/", DOCS_CSP(SpectacularSwaggerSplitView.as_view(url_name="schema")), name="api-docs"),
    path(
        "api/redoc/",
        DOCS_CSP(SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html")),
        name="api-redoc",
    ),
    # The portal last: its pages sit at the root, after the auth URLs (/login/, /logout/) and the API.
    path("", include("apps.portal.urls")),
]

# Errors Django answers itself; under /api/, ApiErrorBodyMiddleware turns them into the error body.
handler400 = "certification.errors.bad_request"

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.STATIC_URL, document_root=settings.STATIC_ROOT)
