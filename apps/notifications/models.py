"""Notifications (issue 17, item 3): events about an organization's campaigns and certificates, the
webhook endpoints an organization registered, and each delivery of an event to an endpoint with
its attempts (the delivery log)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Organization


class EventType(models.TextChoices):
    CAMPAIGN_QUEUED = "campaign.queued", _("Campaign queued")
    CAMPAIGN_AWAITING_REVIEW = "campaign.awaiting_review", _("Campaign awaiting review")
    CAMPAIGN_APPROVED = "campaign.approved", _("Campaign approved")
    CAMPAIGN_REJECTED = "campaign.rejected", _("Campaign rejected")
    CAMPAIGN_FAILED = "campaign.failed", _("Campaign failed")
    CERTIFICATE_ISSUED = "certificate.issued", _("Certificate issued")
    CERTIFICATE_SUSPENDED = "certificate.suspended", _("Certificate suspended")
    CERTIFICATE_REINSTATED = "certificate.reinstated", _("Certificate reinstated")
    CERTIFICATE_REVOKED = "certificate.revoked", _("Certificate revoked")
    CERTIFICATE_EXPIRING = "certificate.expiring", _("Certificate expiring")
    TEST = "webhook.test", _("Test event")


class Event(models.Model):
    """Something an organization is told about, once: its webhook deliveries and e-mail refer to it.
    `msg_id` is the Standard Webhooks `webhook-id` (the receiver's idempotency key)."""

    msg_id = models.CharField(max_length=40, unique=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="notification_events"
    )
    type = models.CharField(max_length=40, choices=EventType.choices)
    payload = models.JSONField(default=dict)
    # What makes the event happen only once (a certificate's expiry warning for one validity period).
    dedupe_key = models.CharField(max_length=200, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.type} {self.msg_id}"


class WebhookEndpoint(models.Model):
    """An organization's HTTPS receiver. Its signing secret is stored encrypted under a key kept in a
    file outside the database (apps.notifications.signing), and shown to the vendor once."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, blank=True, help_text="Empty: every event type")
    secret_ciphertext = models.TextField()
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return event_type == EventType.TEST or not self.event_types or event_type in self.event_types


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")


class WebhookDelivery(models.Model):
    """One event to one endpoint: its attempts with their response codes (`log`), and when it is tried next."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # When the current (or last) attempt took the delivery: "sending" longer than the lease
    # (WEBHOOK_SENDING_LEASE_S) means its worker stopped mid-attempt; also the attempt's claim token.
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    log = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="one_delivery_per_endpoint")
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_id} ({self.status})"
