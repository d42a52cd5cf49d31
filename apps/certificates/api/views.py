"""Certificates API: public listing and verification, the reviewers' decisions, the public keys."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.permissions import IsMember
from apps.accounts.selectors import membership_of
from apps.certificates import selectors, services
from apps.certificates.api.serializers import (
    CampaignEvaluationSerializer,
    CampaignReviewRowSerializer,
    CertificateCheckSerializer,
    CertificateDetailSerializer,
    CertificateListSerializer,
    CertificateStatusChangeSerializer,
    ReasonSerializer,
    SigningKeySerializer,
    WaiverSerializer,
)
from apps.certificates.credentials import (
    CREDENTIAL_MEDIA_TYPE,
    STATUS_PURPOSES,
    certificate_credential,
    credential_text,
    did_document,
    public_base_url,
    status_list_credential,
)
from apps.certificates.filters import CertificateFilter
from apps.certificates.models import Certificate
from apps.certificates.oscal import campaign_assessment_results
from apps.certificates.public_reads import cached_public_response
from apps.runs.models import Campaign
from certification.api import PageOrCursorPagination
from certification.problems import problem_response

STATUS_ACTIONS = {"suspend", "reinstate", "revoke"}


class SigningUnavailable(APIException):
    status_code = 503
    default_detail = "No signing key can sign the credential now; ask the authority's operators."
    default_code = "signing_unavailable"


class CredentialRenderer(BaseRenderer):
    """application/vc, the media type of a Verifiable Credential secured with an embedded proof."""

    media_type = CREDENTIAL_MEDIA_TYPE
    format = "vc"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> Any:
        return data if isinstance(data, bytes) else JSONRenderer().render(data)


class CertificateViewSet(viewsets.ReadOnlyModelViewSet):
    """Certificates, public: list (active by default), detail, verify, and the signed document.
    Reviewers suspend, reinstate and revoke them, each with a written reason."""

    lookup_field = "serial"
    lookup_value_regex = r"[A-Za-z0-9][A-Za-z0-9\-]*"
    filterset_class = CertificateFilter
    ordering_fields = ["issued_at", "valid_until", "serial"]
    ordering = ["-issued_at", "-id"]
    # Deep pages by keyset (`?cursor=`), each ordering served by its index (Certificate.Meta.indexes).
    pagination_class = PageOrCursorPagination

    def get_permissions(self):
        if self.action in STATUS_ACTIONS:
            return [IsAuthenticated()]
        return [AllowAny()]

    def get_queryset(self) -> QuerySet[Certificate]:
        if self.action == "list":
            # The listed columns only: the signed payload (about 3 KB a row) is for detail and download.
            return selectors.certificates_public_listed()
        return selectors.certificates_with_retest()

    def list(self, request, *args, **kwargs):
        return cached_public_response(
            request, lambda: self._render(super(CertificateViewSet, self).list(request, *args, **kwargs))
        )

    def retrieve(self, request, *args, **kwargs):
        return cached_public_response(
            request, lambda: self._render(super(CertificateViewSet, self).retrieve(request, *args, **kwargs))
        )

    def _render(self, response):
        """Render now (the body goes to the cache); DRF's own finalize on the way out is then a no-op."""
        return self.finalize_response(self.request, response)

    def filter_queryset(self, queryset):
        # The filters (active by default) shape the list; a serial names any certificate, revoked included.
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    def get_serializer_class(self):
        return CertificateListSerializer if self.action == "list" else CertificateDetailSerializer

    @extend_schema(responses=CertificateCheckSerializer)
    @action(detail=True, methods=["get"])
    def verify(self, request: Request, serial: str | None = None) -> Response:
        check = services.certificate_check(certificate=self.get_object())
        return Response(CertificateCheckSerializer(check).data)

    @extend_schema(
        summary="The certificate as a W3C Verifiable Credential 2.0 (eddsa-jcs-2022 proof)",
        responses={(200, CREDENTIAL_MEDIA_TYPE): dict, (200, "application/json"): dict},
    )
    @action(detail=True, methods=["get"], renderer_classes=[CredentialRenderer, JSONRenderer])
    def credential(self, request: Request, serial: str | None = None) -> HttpResponse:
        certificate = self.get_object()
        try:
            credential = certificate_credential(certificate=certificate, base_url=public_base_url(request))
        except ImproperlyConfigured:
            raise SigningUnavailable() from None
        text = credential_text(credential)
        response = HttpResponse(text, content_type=f"{request.accepted_renderer.media_type}; charset=utf-8")
        response["Access-Control-Allow-Origin"] = "*"
        return response

    @extend_schema(responses={(200, "application/json"): dict})
    @action(detail=True, methods=["get"])
    def document(self, request: Request, serial: str | None = None) -> HttpResponse:
        certificate = self.get_object()
        response = HttpResponse(
            services.certificate_document(certificate=certificate),
            content_type="application/json; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="{certificate.serial}.json"'
        return response

    @extend_schema(responses=CertificateStatusChangeSerializer(many=True))
    # The whole history, unpaginated and unfiltered (the schema said paginated and filterable).
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def history(self, request: Request, serial: str | None = None) -> Response:
        """Each change of the certificate's status, oldest first, from the tamper-evident audit log."""
        changes = selectors.certificate_status_history(certificate=self.get_object())
        return Response(CertificateStatusChangeSerializer(changes, many=True).data)

    def _status_action(self, request: Request, service: Callable[..., Certificate]) -> Response:
        certificate = self.get_object()
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        certificate = service(
            certificate=certificate, reason=data.validated_data["reason"], actor=request.user
        )
        return Response(CertificateDetailSerializer(certificate).data)

    @extend_schema(request=ReasonSerializer, responses=CertificateDetailSerializer)
    @action(detail=True, methods=["post"])
    def suspend(self, request: Request, serial: str | None = None) -> Response:
        return self._status_action(request, services.certificate_suspend)

    @extend_schema(request=ReasonSerializer, responses=CertificateDetailSerializer)
    @action(detail=True, methods=["post"])
    def reinstate(self, request: Request, serial: str | None = None) -> Response:
        return self._status_action(request, services.certificate_reinstate)

    @extend_schema(request=ReasonSerializer, responses=CertificateDetailSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, serial: str | None = None) -> Response:
        return self._status_action(request, services.certificate_revoke)


class ReviewViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """A campaign's evaluation and decisions, by campaign id. The authority reads all and its reviewers
    decide; a vendor reads its own campaigns; anyone else gets 404."""

    permission_classes = [IsAuthenticated, IsMember]
    lookup_value_regex = r"[0-9]+"
    filterset_fields = ["state"]
    ordering = ["-submitted_at"]

    def get_queryset(self) -> QuerySet[Campaign]:
        return selectors.campaigns_reviewable_by(membership_of(self.request.user))

    def _campaign(self) -> Campaign:
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])

    def get_serializer_class(self):
        return CampaignReviewRowSerializer if self.action == "list" else CampaignEvaluationSerializer

    def _evaluation(self, campaign: Campaign) -> Response:
        campaign = self.get_queryset().get(pk=campaign.pk)  # re-read: the decision moved its state
        return Response(CampaignEvaluationSerializer(campaign).data)

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return self._evaluation(self._campaign())

    @extend_schema(
        summary="The campaign's evidence as NIST OSCAL assessment-results (OSCAL 1.1.2 JSON)",
        responses={(200, "application/json"): dict},
    )
    @action(detail=True, methods=["get"])
    def oscal(self, request: Request, pk: str | None = None) -> Response:
        document = campaign_assessment_results(campaign=self._campaign(), base_url=public_base_url(request))
        return Response(document)

    @extend_schema(request=ReasonSerializer, responses=CampaignEvaluationSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        campaign = self._campaign()
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.review_approve(
            campaign=campaign, reviewer=request.user, reason=data.validated_data["reason"]
        )
        return self._evaluation(campaign)

    @extend_schema(request=ReasonSerializer, responses=CampaignEvaluationSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        campaign = self._campaign()
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.review_reject(campaign=campaign, reviewer=request.user, reason=data.validated_data["reason"])
        return self._evaluation(campaign)

    @extend_schema(request=WaiverSerializer, responses=CampaignEvaluationSerializer)
    @action(detail=True, methods=["post"])
    def waive(self, request: Request, pk: str | None = None) -> Response:
        campaign = self._campaign()
        data = WaiverSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.criterion_waive(
            campaign=campaign,
            criterion_id=data.validated_data["criterion"],
            reviewer=request.user,
            reason=data.validated_data["reason"],
        )
        return self._evaluation(campaign)


@require_GET
def certification_keys(request: HttpRequest) -> JsonResponse:
    """/.well-known/certification-keys.json: every signing key's public half, active and retired."""
    keys = SigningKeySerializer(selectors.signing_keys_public(), many=True).data
    # When this list was made: the offline verifier says how old its copy is (a key may have been
    # reported compromised since).
    published_at = timezone.now().astimezone(UTC).isoformat().replace("+00:00", "Z")
    response = JsonResponse({"published_at": published_at, "keys": keys})
    response["Cache-Control"] = "public, max-age=300"
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _public_json(
    document: dict[str, Any], *, media_type: str = "application/json", max_age: int = 0
) -> HttpResponse:
    response = HttpResponse(credential_text(document), content_type=f"{media_type}; charset=utf-8")
    response["Cache-Control"] = f"public, max-age={max_age}" if max_age else "no-cache"
    response["Access-Control-Allow-Origin"] = "*"
    return response


@require_GET
def did_web_document(request: HttpRequest) -> HttpResponse:
    """/.well-known/did.json: the authority's did:web document (its signing keys as Multikeys)."""
    return _public_json(
        did_document(base_url=public_base_url(request)), media_type="application/did+json", max_age=300
    )


@require_GET
def credential_status_list(request: HttpRequest, purpose: str) -> HttpResponse:
    """A BitstringStatusListCredential (revocation or suspension), as of this request."""
    if purpose not in STATUS_PURPOSES:
        return problem_response(request, 404, f"No status list {purpose!r}.", code="not_found")
    credential = status_list_credential(purpose=purpose, base_url=public_base_url(request))
    return _public_json(credential, media_type=CREDENTIAL_MEDIA_TYPE)
