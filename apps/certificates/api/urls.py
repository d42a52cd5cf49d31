from rest_framework.routers import SimpleRouter

from apps.certificates.api.views import CertificateViewSet, ReviewViewSet

router = SimpleRouter()
router.register("certificates", CertificateViewSet, basename="certificate")
router.register("reviews", ReviewViewSet, basename="review")

urlpatterns = router.urls
