"""Procurement API for buyers: tenders, evaluations (JSON and CSV), the certified registry and the
export-control classification. Thin: serializer in, service or selector, serializer out."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.permissions import IsMember
from apps.accounts.selectors import membership_of
from apps.certificates.credentials import public_base_url
from apps.certificates.filters import CertificateFilter
from apps.certificates.selectors import certificates_public
from apps.procurement import selectors, services
from apps.procurement.api.serializers import (
    ClassificationSerializer,
    EvaluationListSerializer,
    EvaluationSerializer,
    RegistryEntrySerializer,
    TenderInputSerializer,
    TenderSerializer,
)
from apps.procurement.filters import TenderFilter
from apps.procurement.ocds import tender_release_package
from apps.procurement.reports import evaluation_csv_response


class IsBuyer(BasePermission):
    """Members of a buyer organization; tenders belong to them alone."""

    message = "Only buyers use tenders and evaluations."

    def has_permission(self, request, view) -> bool:
        membership = membership_of(request.user)
        return membership is not None and membership.is_buyer


class TenderViewSet(viewsets.ModelViewSet):
    """The buyer organization's tenders; another organization's tender is 404."""

    permission_classes = [IsAuthenticated, IsBuyer]
    serializer_class = TenderSerializer
    filterset_class = TenderFilter
    ordering_fields = ["deadline", "created_at", "reference"]
    ordering = ["-created_at", "-id"]
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        return selectors.tenders_of(membership_of(self.request.user))

    @extend_schema(request=TenderInputSerializer, responses={201: TenderSerializer})
    def create(self, request, *args, **kwargs):
        data = TenderInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tender = services.tender_create(
            organization=membership_of(request.user).organization,
            created_by=request.user,
            **data.validated_data,
        )
        return Response(
            TenderSerializer(self.get_queryset().get(pk=tender.pk)).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=TenderInputSerializer, responses=TenderSerializer)
    def update(self, request, *args, **kwargs):
        tender = self.get_object()
        data = TenderInputSerializer(data=request.data, partial=kwargs.get("partial", False))
        data.is_valid(raise_exception=True)
        services.tender_update(tender=tender, actor=request.user, **data.validated_data)
        return Response(TenderSerializer(self.get_queryset().get(pk=tender.pk)).data)

    def destroy(self, request, *args, **kwargs):
        services.tender_delete(tender=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={201: EvaluationSerializer})
    @action(detail=True, methods=["post"])
    def evaluate(self, request: Request, pk: str | None = None) -> Response:
        """Evaluate against every active certificate now and save the snapshot."""
        evaluation = services.evaluation_create(tender=self.get_object(), actor=request.user)
        return Response(EvaluationSerializer(evaluation).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="The tender and its newest evaluation as an OCDS 1.1 release package",
        responses={(200, "application/json"): dict},
    )
    @action(detail=True, methods=["get"])
    def ocds(self, request: Request, pk: str | None = None) -> Response:
        tender = self.get_object()
        evaluation = selectors.evaluations_of(membership_of(request.user)).filter(tender=tender).first()
        package = tender_release_package(
            tender=tender, evaluation=evaluation, base_url=public_base_url(request)
        )
        return Response(package)

    @extend_schema(responses=EvaluationListSerializer(many=True))
    @action(detail=True, methods=["get"])
    def evaluations(self, request: Request, pk: str | None = None) -> Response:
        tender = self.get_object()
        rows = selectors.evaluations_of(membership_of(request.user)).filter(tender=tender)
        return Response(EvaluationListSerializer(rows, many=True).data)


class EvaluationViewSet(viewsets.ReadOnlyModelViewSet):
    """Saved evaluations of the buyer organization's tenders, with their snapshot; CSV at /csv/."""

    permission_classes = [IsAuthenticated, IsBuyer]
    filterset_fields = ["tender"]
    ordering = ["-created_at", "-id"]
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        return selectors.evaluations_of(membership_of(self.request.user))

    def get_serializer_class(self):
        return EvaluationListSerializer if self.action == "list" else EvaluationSerializer

    @extend_schema(responses={(200, "text/csv"): str})
    @action(detail=True, methods=["get"])
    def csv(self, request, pk=None):
        return evaluation_csv_response(self.get_object())


class CertifiedRegistryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Chips with an active certificate (one entry per certificate) and their certified figures only.
    Accepts the certificate list's filters (vendor, backend, program, level, chip, q)."""

    permission_classes = [IsAuthenticated, IsMember]
    serializer_class = RegistryEntrySerializer
    filterset_class = CertificateFilter
    ordering = ["subject_chip_sku", "serial"]
    lookup_field = "serial"
    lookup_value_regex = r"[A-Za-z0-9][A-Za-z0-9\-]*"

    def get_queryset(self):
        return certificates_public().filter(pk__in=selectors.active_certificates().values("pk"))

    def _entries(self, certificates):
        ids = [c.pk for c in certificates]
        entries = {
            c.certificate_id: c
            for c in selectors.certified_candidates(
                certificates=selectors.active_certificates().filter(pk__in=ids)
            )
        }
        return [entries[pk] for pk in ids if pk in entries]

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(self._entries(page), many=True).data)

    def retrieve(self, request, *args, **kwargs):
        return Response(self.get_serializer(self._entries([self.get_object()])[0]).data)


class ExportControlViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Informational export-control classification per chip (certified chips and the reference chips),
    with the measured-to-declared ratios of certified runs beside it."""

    permission_classes = [IsAuthenticated, IsMember]
    serializer_class = ClassificationSerializer
    lookup_value_regex = r"[0-9]+"
    filter_backends = []

    def get_queryset(self):
        return selectors.classifiable_chips(membership_of(self.request.user))

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(
            self.get_serializer(selectors.chip_classifications(chips=page), many=True).data
        )

    def retrieve(self, request, *args, **kwargs):
        entry = selectors.chip_classifications(chips=[self.get_object()])[0]
        return Response(self.get_serializer(entry).data)
