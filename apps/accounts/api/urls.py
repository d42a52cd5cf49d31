from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.accounts.api.views import ApiTokenViewSet, OrganizationMeView

router = SimpleRouter()
router.register("tokens", ApiTokenViewSet, basename="token")

urlpatterns = [
    path("organizations/me/", OrganizationMeView.as_view(), name="organization-me"),
    *router.urls,
]
