from rest_framework.routers import SimpleRouter

from apps.runs.api.views import CampaignViewSet, JobViewSet, ProgramViewSet

router = SimpleRouter()
router.register("programs", ProgramViewSet, basename="program")
router.register("campaigns", CampaignViewSet, basename="campaign")
router.register("jobs", JobViewSet, basename="job")

urlpatterns = router.urls
