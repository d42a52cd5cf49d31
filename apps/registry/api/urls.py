from rest_framework.routers import SimpleRouter

from apps.registry.api.views import ChipViewSet, HardwareTargetViewSet, ModelArtifactViewSet, RunnerViewSet

router = SimpleRouter()
router.register("chips", ChipViewSet, basename="chip")
router.register("targets", HardwareTargetViewSet, basename="target")
router.register("models", ModelArtifactViewSet, basename="model")
router.register("runners", RunnerViewSet, basename="runner")

urlpatterns = router.urls
