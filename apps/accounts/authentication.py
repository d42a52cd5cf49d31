"""`Authorization: Bearer <token>` for the API, on top of django-rest-knox."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from rest_framework import exceptions

from apps.accounts.models import ApiToken
from apps.accounts.throttles import FailedAuthenticationThrottle

# Recording every request's time would turn each API read into a write; a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class BearerTokenAuthentication(TokenAuthentication):
    """Knox token authentication that also records when a token was last used.

    Failed authentications are counted per client address in the shared cache; past the
    `failed_auth` rate every Bearer request from that address is a 429 until the window passes.
    """

    def authenticate(self, request):
        if not request.META.get("HTTP_AUTHORIZATION"):
            return None  # no credentials: nothing to count
        throttle = FailedAuthenticationThrottle()
        wait = throttle.blocked_for(request)
        if wait is not None:
            raise exceptions.Throttled(wait, detail="Too many failed authentications from this address.")
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            throttle.record_failure(request)
            raise

    def authenticate_credentials(self, token: bytes):
        # knox decodes the header as UTF-8 unguarded; a Latin-1 byte would otherwise be a 500.
        try:
            token.decode("utf-8")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return super().authenticate_credentials(token)

    def validate_user(self, auth_token: ApiToken):
        user, token = super().validate_user(auth_token)
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return user, token


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """The Bearer token in the OpenAPI schema (drf-spectacular's knox extension skips subclasses)."""

    target_class = BearerTokenAuthentication
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")  # noqa: S106
