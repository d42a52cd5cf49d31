"""The platform's URLs and /bench/bare-certificates/: a bare DRF list of the public list's columns (no
filters, no ordering choice, no throttle, no HTTP caching, a plain ModelSerializer of the same fields
without the platform's page builder), the yardstick of bench/public_reads.py."""

from django.urls import path
from rest_framework import generics, serializers
from rest_framework.permissions import AllowAny

from apps.certificates.api.serializers import CertificateListSerializer
from apps.certificates.models import Certificate
from certification.urls import urlpatterns as platform_urlpatterns


class BareSerializer(CertificateListSerializer):
    """The public list's fields through DRF's own field-by-field ListSerializer."""

    class Meta(CertificateListSerializer.Meta):
        list_serializer_class = serializers.ListSerializer


class BareList(generics.ListAPIView):
    serializer_class = BareSerializer
    permission_classes = [AllowAny]
    throttle_classes: list = []
    filter_backends: list = []

    def get_queryset(self):
        return (
            Certificate.objects.filter(status="active")
            .select_related("program", "vendor", "signing_key", "superseded_by")
            .only(
                "serial",
                "level",
                "status",
                "status_reason",
                "issued_at",
                "valid_until",
                "subject_chip_sku",
                "subject_chip_name",
                "subject_target_slug",
                "subject_backend",
                "program__code",
                "program__version",
                "vendor__name",
                "vendor__slug",
                "signing_key__key_id",
                "superseded_by__serial",
            )
            .order_by("-issued_at", "-id")
        )


urlpatterns = [path("bench/bare-certificates/", BareList.as_view()), *platform_urlpatterns]
