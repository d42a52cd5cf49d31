"""Reads of notifications, scoped to one organization."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.models import Organization
from apps.notifications.models import WebhookDelivery, WebhookEndpoint


def webhook_endpoints_of(*, organization: Organization) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(organization=organization).order_by("-created_at", "-pk")


def webhook_deliveries_of(*, endpoint: WebhookEndpoint, limit: int = 50) -> list[WebhookDelivery]:
    """The endpoint's latest deliveries with their events: the delivery log."""
    return list(
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .select_related("event")
        .order_by("-created_at", "-pk")[:limit]
    )
