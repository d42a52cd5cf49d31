from datetime import timedelta

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import services
from apps.accounts.api.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    OrganizationMeSerializer,
)
from apps.accounts.models import ApiToken, Membership
from apps.accounts.permissions import IsMember
from apps.accounts.selectors import membership_of


class OrganizationMeView(APIView):
    """The caller's organization and role."""

    permission_classes = [IsAuthenticated, IsMember]

    @extend_schema(responses=OrganizationMeSerializer)
    def get(self, request):
        membership = membership_of(request.user)
        members = Membership.objects.filter(organization=membership.organization).select_related("user")
        payload = {
            "organization": membership.organization,
            "username": request.user.username,
            "role": membership.role,
            "members": members,
        }
        return Response(OrganizationMeSerializer(payload).data)


class ApiTokenViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """The caller's own API tokens: list, create (the token is shown once), revoke."""

    permission_classes = [IsAuthenticated, IsMember]
    serializer_class = ApiTokenSerializer
    lookup_field = "token_key"
    lookup_url_kwarg = "key_prefix"
    filter_backends: list = []
    ordering = ["-created"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=self.request.user).order_by("-created")

    @extend_schema(request=ApiTokenCreateSerializer, responses={201: ApiTokenCreatedSerializer})
    def create(self, request):
        params = ApiTokenCreateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        days = params.validated_data.get("ttl_days")
        token, clear_text = services.api_token_create(
            user=request.user,
            name=params.validated_data["name"],
            ttl=None if days is None else timedelta(days=days),
            created_with=request.auth if isinstance(request.auth, ApiToken) else None,
            actor=request.user,
        )
        token.token = clear_text
        return Response(ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.api_token_revoke(
            user=self.request.user, token_key=instance.token_key, actor=self.request.user
        )
