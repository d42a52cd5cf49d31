from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from apps.certificates.api.views import certification_keys

api_v1 = [
    path("", include("apps.accounts.api.urls")),
    path("", include("apps.registry.api.urls")),
    path("", include("apps.runs.api.urls")),
    path("", include("apps.certificates.api.urls")),
    path("", include("apps.procurement.api.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("django.contrib.auth.urls")),
    path(".well-known/certification-keys.json", certification_keys, name="certification-keys"),
    path("api/v1/", include(api_v1)),
    path("procurement/", include("apps.procurement.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"), name="api-redoc"),
    # The portal last: its pages sit at the root, after the auth URLs (/login/, /logout/) and the API.
    path("", include("apps.portal.urls")),
]

# Errors Django answers itself; under /api/, ApiErrorBodyMiddleware turns them into the error body.
handler400 = "certification.errors.bad_request"

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.STATIC_URL, document_root=settings.STATIC_ROOT)
