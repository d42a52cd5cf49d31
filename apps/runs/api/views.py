"""Campaign endpoints: vendors submit and follow their campaigns; the authority reads them all."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django.http import FileResponse, Http404
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import IsMember
from apps.accounts.selectors import membership_of
from apps.registry.selectors import model_artifacts_visible_to, targets_visible_to
from apps.runs import selectors
from apps.runs.api.serializers import (
    CampaignCancelSerializer,
    CampaignSerializer,
    CampaignSubmitSerializer,
    JobSerializer,
    ProgramSerializer,
)
from apps.runs.filters import CampaignFilter, JobFilter
from apps.runs.models import Campaign, Job, Program
from apps.runs.services.campaigns import TooManyOpenCampaigns, campaign_cancel, campaign_submit, job_rerun
from certification.api import Conflict
from certification.idempotency import idempotent_create


class ProgramViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Certification programs with their levels and criteria (public: a standard is published)."""

    serializer_class = ProgramSerializer
    permission_classes: list = []
    authentication_classes: list = []
    queryset = Program.objects.exclude(status="draft").order_by("code", "version")
    lookup_value_regex = r"[A-Za-z0-9_-]+-[0-9.]+"
    filter_backends: list = []

    def get_object(self):
        code, _, version = self.kwargs["pk"].rpartition("-")
        program = self.get_queryset().filter(code=code, version=version).first()
        if program is None:
            raise Http404
        return program


def _vendor_only(request: Request) -> None:
    membership = membership_of(request.user)
    if membership is None or not membership.is_vendor:
        raise exceptions.PermissionDenied(gettext("Only vendors submit and manage certification campaigns."))


class CampaignViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Certification campaigns and their jobs' live progress. Jobs' challenges are never exposed."""

    serializer_class = CampaignSerializer
    permission_classes = [IsAuthenticated, IsMember]
    filterset_class = CampaignFilter
    ordering_fields = ["created_at", "submitted_at", "state"]
    ordering = ["-created_at"]

    def get_queryset(self) -> QuerySet[Campaign]:
        return selectors.campaigns_visible_to(membership_of(self.request.user))

    @extend_schema(
        request=CampaignSubmitSerializer,
        responses={201: CampaignSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Retry safely: the same key and body answer the same campaign; another body, 409.",
            )
        ],
    )
    def create(self, request: Request) -> Response:
        _vendor_only(request)
        return idempotent_create(
            request,
            scope="campaign",
            create=lambda: self._create(request),
            replay=lambda pk: Response(
                CampaignSerializer(self.get_queryset().get(pk=pk)).data, status=status.HTTP_201_CREATED
            ),
        )

    def _create(self, request: Request) -> Response:
        membership = membership_of(request.user)
        params = CampaignSubmitSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        targets = targets_visible_to(membership)
        lookup = {"pk": int(data["target"])} if data["target"].isdigit() else {"slug": data["target"]}
        target = targets.filter(**lookup).first()
        if target is None:
            raise Http404  # a foreign target reads exactly like a missing one
        program = selectors.program_current(code=data["program"], version=data.get("program_version"))
        if program is None:
            raise exceptions.ValidationError(
                {"program": gettext("No active program with this code and version.")}
            )
        artifacts = list(model_artifacts_visible_to(membership).filter(pk__in=data["models"]))
        missing = sorted(set(data["models"]) - {a.pk for a in artifacts})
        if missing:
            raise exceptions.ValidationError(
                {"models": [gettext("Model %(pk)s does not exist.") % {"pk": pk} for pk in missing]}
            )
        try:
            with transaction.atomic():
                campaign = campaign_submit(
                    vendor=membership.organization,
                    target=target,
                    program=program,
                    level=data["level"],
                    model_artifacts=artifacts,
                    submitted_by=request.user,
                )
        except TooManyOpenCampaigns as error:
            raise Conflict(error.messages[0]) from None
        campaign = self.get_queryset().get(pk=campaign.pk)
        return Response(CampaignSerializer(campaign).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CampaignCancelSerializer, responses=CampaignSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        _vendor_only(request)
        campaign = self.get_object()
        params = CampaignCancelSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        campaign_cancel(campaign=campaign, actor=request.user, reason=params.validated_data["reason"])
        return Response(CampaignSerializer(self.get_queryset().get(pk=campaign.pk)).data)


class RunnerArtifactView(APIView):
    """Model weights for a runner host without shared storage; the request is signed by the runner's key
    (headers X-Runner, X-Runner-Key-Id, X-Runner-Timestamp, X-Runner-Signature). Anything else is a 404."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(responses={(200, "application/octet-stream"): bytes}, auth=[])
    def get(self, request, sha256: str):
        artifact = selectors.model_artifact_for_runner(
            headers=request.headers, path=request.path, sha256=sha256
        )
        if artifact is None:
            raise Http404
        return FileResponse(
            artifact.weights.open("rb"),
            as_attachment=True,
            filename=f"{sha256}.safetensors",
            content_type="application/octet-stream",
        )


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Jobs with their state, attempts, progress, ETA and error class."""

    serializer_class = JobSerializer
    permission_classes = [IsAuthenticated, IsMember]
    filterset_class = JobFilter
    ordering_fields = ["id", "queued_at", "state"]
    ordering = ["id"]

    def get_queryset(self) -> QuerySet[Job]:
        return selectors.jobs_visible_to(membership_of(self.request.user))

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        _vendor_only(request)
        job = job_rerun(job=self.get_object(), actor=request.user)
        return Response(JobSerializer(self.get_queryset().get(pk=job.pk)).data)
