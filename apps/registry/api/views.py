"""Registry endpoints. Viewsets are thin: serializer in, service, serializer out."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from apps.accounts.permissions import IsAuthority, VendorWritesAuthorityReads
from apps.accounts.selectors import membership_of
from apps.registry import selectors, services
from apps.registry.api.serializers import (
    ChipSerializer,
    HardwareTargetSerializer,
    ModelArtifactSerializer,
    ModelArtifactUploadSerializer,
    RunnerSerializer,
)
from apps.registry.filters import ChipFilter, HardwareTargetFilter, ModelArtifactFilter, RunnerFilter
from apps.registry.weights import HashingUploadHandler


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The upload is larger than this platform accepts."
    default_code = "too_large"


class ChipViewSet(viewsets.ModelViewSet):
    """Chips with their declared specifications. Vendors manage their own; the authority reads all."""

    serializer_class = ChipSerializer
    permission_classes = [IsAuthenticated, VendorWritesAuthorityReads]
    filterset_class = ChipFilter
    ordering_fields = ["sku", "name", "created_at", "tdp_w", "memory_gib", "peak_bf16_tflops"]
    ordering = ["vendor__name", "sku"]

    def get_queryset(self):
        return selectors.chips_visible_to(membership_of(self.request.user))

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        peaks = data.pop("declared_peaks", None)
        organization = membership_of(self.request.user).organization
        serializer.instance = services.chip_create(
            vendor=organization, declared_peak=peaks, actor=self.request.user, **data
        )

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        peaks = data.pop("declared_peaks", None)
        serializer.instance = services.chip_update(
            chip=serializer.instance, declared_peak=peaks, actor=self.request.user, **data
        )

    def perform_destroy(self, instance):
        services.chip_delete(chip=instance, actor=self.request.user)


class HardwareTargetViewSet(viewsets.ModelViewSet):
    """Operating environments: a chip plus its software stack; each names a runner queue."""

    serializer_class = HardwareTargetSerializer
    permission_classes = [IsAuthenticated, VendorWritesAuthorityReads]
    filterset_class = HardwareTargetFilter
    ordering_fields = ["slug", "backend", "created_at"]
    ordering = ["slug"]

    def get_queryset(self):
        return selectors.targets_visible_to(membership_of(self.request.user))

    def get_serializer(self, *args, **kwargs):
        kwargs["chips"] = selectors.chips_visible_to(membership_of(self.request.user))
        return super().get_serializer(*args, **kwargs)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.target_create(actor=self.request.user, **data)

    def perform_update(self, serializer):
        serializer.instance = services.target_update(
            target=serializer.instance, actor=self.request.user, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.target_delete(target=instance, actor=self.request.user)


class ModelArtifactViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Models to certify with: safetensors weights (multipart upload) plus a config for a known architecture."""

    serializer_class = ModelArtifactSerializer
    permission_classes = [IsAuthenticated, VendorWritesAuthorityReads]
    filterset_class = ModelArtifactFilter
    ordering_fields = ["name", "version", "created_at", "weights_size"]
    ordering = ["name", "version"]

    def get_queryset(self):
        return selectors.model_artifacts_visible_to(membership_of(self.request.user))

    def get_parsers(self):
        if getattr(self, "action", None) == "create" or self.request is None or self.request.method == "POST":
            return [MultiPartParser(), FormParser()]
        return super().get_parsers()

    def initialize_request(self, request, *args, **kwargs):
        # Hash while streaming the upload to disk, before anything parses the body.
        request.upload_handlers = [HashingUploadHandler(request)]
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": ModelArtifactUploadSerializer},
        responses={201: ModelArtifactSerializer},
    )
    def create(self, request, *args, **kwargs):
        limit = settings.ARTIFACT_MAX_UPLOAD_BYTES
        declared_length = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared_length > limit + 1024 * 1024:  # multipart framing and fields beside the file
            raise PayloadTooLarge(f"Uploads are limited to {limit} bytes.")
        params = ModelArtifactUploadSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        if params.validated_data["weights"].size > limit:
            raise PayloadTooLarge(f"Uploads are limited to {limit} bytes.")
        artifact = services.model_artifact_create(
            owner=membership_of(request.user).organization, actor=request.user, **params.validated_data
        )
        return Response(ModelArtifactSerializer(artifact).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.model_artifact_delete(artifact=instance, actor=self.request.user)


class RunnerViewSet(viewsets.ModelViewSet):
    """Runner hosts and the Ed25519 keys they sign results with; registering one is an authority action."""

    serializer_class = RunnerSerializer
    permission_classes = [IsAuthenticated, IsAuthority]
    filterset_class = RunnerFilter
    ordering_fields = ["name", "status", "last_heartbeat_at"]
    ordering = ["name"]

    def get_queryset(self):
        return selectors.runners_visible_to(membership_of(self.request.user))

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.runner_register(
            name=data["name"],
            public_key=data["public_key"],
            targets=data.get("targets", []),
            actor=self.request.user,
        )

    def perform_update(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.runner_update(
            runner=serializer.instance,
            public_key=data.get("public_key"),
            targets=data.get("targets"),
            status=data.get("status"),
            actor=self.request.user,
        )

    def perform_destroy(self, instance):
        services.runner_delete(runner=instance, actor=self.request.user)
