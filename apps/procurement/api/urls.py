from rest_framework.routers import SimpleRouter

from apps.procurement.api.views import (
    CertifiedRegistryViewSet,
    EvaluationViewSet,
    ExportControlViewSet,
    TenderViewSet,
)

router = SimpleRouter()
router.register("tenders", TenderViewSet, basename="tender")
router.register("evaluations", EvaluationViewSet, basename="evaluation")
router.register("registry", CertifiedRegistryViewSet, basename="certified-registry")
router.register("export-control", ExportControlViewSet, basename="export-control")

urlpatterns = router.urls
