"""Who a request comes from, and how many failed Bearer authentications it may make.

Counters live in the shared cache (settings.CACHES), so every web process counts together.
"""

from __future__ import annotations

from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle, UserRateThrottle


def client_ip(request: HttpRequest) -> str:
    """The client's address as DRF's throttles see it (X-Forwarded-For only behind NUM_PROXIES proxies).

    Also django-axes' AXES_CLIENT_IP_CALLABLE, so login lockouts and API throttles agree on who is who.
    """
    return BaseThrottle().get_ident(request)


class FailedAuthenticationThrottle(SimpleRateThrottle):
    """Counts failed Bearer authentications per client address (rate `failed_auth`).

    Unlike DRF's throttles it records only failures, and it is consulted before a token is looked up,
    so a client guessing tokens is refused without touching the token table.
    """

    scope = "failed_auth"

    def get_cache_key(self, request, view=None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request)}

    def _history(self, request) -> list[float]:
        self.key = self.get_cache_key(request)
        self.now = self.timer()
        return [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]

    def blocked_for(self, request) -> float | None:
        """Seconds until this client may try again, or None when it may authenticate now."""
        self.history = self._history(request)
        if len(self.history) < self.num_requests:
            return None
        return self.wait()

    def record_failure(self, request) -> None:
        history = self._history(request)
        history.insert(0, self.now)
        self.cache.set(self.key, history, self.duration)


class AuthenticatedUserRateThrottle(UserRateThrottle):
    """DRF's per-user rate, for authenticated users only.

    DRF's own also counts anonymous requests per address, a second counter beside the `anon` rate
    that only costs a cache round trip per request.
    """

    def get_cache_key(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return None
        return super().get_cache_key(request, view)
