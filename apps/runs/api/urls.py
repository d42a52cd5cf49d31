from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.runs.api.views import CampaignViewSet, JobViewSet, ProgramViewSet, RunnerArtifactView

router = SimpleRouter()
router.register("programs", ProgramViewSet, basename="program")
router.register("campaigns", CampaignViewSet, basename="campaign")
router.register("jobs", JobViewSet, basename="job")

urlpatterns = [
    path("runner/artifacts/<str:sha256>/", RunnerArtifactView.as_view(), name="runner-artifact"),
    *router.urls,
]
