"""Notifications (issue 17, item 3): events recorded with the change that causes them, delivered by
Celery as Standard Webhooks to each organization's endpoints (retried with exponential backoff) and
by e-mail through Django's mail backend to the organization's members.

Events come from the audit log: `audit_event_notify` is an AUDIT_LISTENERS entry that audit_record
calls inside the transaction of the change, so an event exists exactly when its change committed
(an outbox), and deliveries are enqueued only after the commit.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from apps.accounts.models import Membership, Organization
from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from apps.notifications.models import DeliveryStatus, Event, EventType, WebhookDelivery, WebhookEndpoint
from apps.notifications.signing import secret_decrypt, secret_encrypt, secret_generate, signed_headers

if TYPE_CHECKING:
    from apps.certificates.models import Certificate
    from apps.runs.models import Campaign

# The events an endpoint may subscribe to (the test event always reaches the endpoint it is sent to).
SUBSCRIBABLE = [value for value in EventType.values if value != EventType.TEST]
MAX_ENDPOINTS_PER_ORGANIZATION = 10
RESPONSE_EXCERPT = 300
UNSENT_EMAIL_GRACE = timedelta(minutes=10)
EMAIL_LANGUAGE_BY_COUNTRY = {"CN": "zh-hans"}
logger = logging.getLogger(__name__)


# Endpoints ----------------------------------------------------------------------------------------


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    allowed = {"https", "http"} if settings.WEBHOOK_ALLOW_HTTP else {"https"}
    if parts.scheme not in allowed or not parts.hostname:
        raise ValidationError({"url": _("A webhook URL is an https:// address.")})
    if parts.username or parts.password:
        raise ValidationError({"url": _("Put no credentials in the URL; verify the signature instead.")})


def _check_event_types(event_types: list[str]) -> None:
    unknown = sorted(set(event_types) - set(SUBSCRIBABLE))
    if unknown:
        raise ValidationError(
            {"event_types": _("Unknown event types: %(names)s.") % {"names": ", ".join(unknown)}}
        )


@transaction.atomic
def webhook_endpoint_create(
    *, organization: Organization, url: str, description: str = "", event_types: list[str], actor: Any = None
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it with its secret (`whsec_...`), which is shown once and kept only encrypted."""
    _check_url(url)
    _check_event_types(event_types)
    if WebhookEndpoint.objects.filter(organization=organization).count() >= MAX_ENDPOINTS_PER_ORGANIZATION:
        raise ValidationError(
            _("An organization has at most %(count)s webhook endpoints.")
            % {"count": MAX_ENDPOINTS_PER_ORGANIZATION}
        )
    secret = secret_generate()
    endpoint = WebhookEndpoint(
        organization=organization,
        url=url,
        description=description,
        event_types=sorted(set(event_types)),
        secret_ciphertext=secret_encrypt(secret),
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    endpoint.full_clean()
    endpoint.save()
    audit_record(
        action="webhook.created",
        obj=endpoint,
        actor=actor,
        payload={"organization": organization.pk, "url": url, "event_types": endpoint.event_types},
    )
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: Any = None) -> None:
    audit_record(
        action="webhook.deleted",
        obj=endpoint,
        actor=actor,
        payload={"organization": endpoint.organization_id, "url": endpoint.url},
    )
    endpoint.delete()


# Events -------------------------------------------------------------------------------------------


def _portal_url(path: str) -> str:
    return (settings.CERT_PUBLIC_URL.rstrip("/") + path) if settings.CERT_PUBLIC_URL else path


def event_record(
    *,
    organization_id: int,
    type: str,
    data: dict[str, Any],
    dedupe_key: str | None = None,
    endpoints: list[WebhookEndpoint] | None = None,
) -> Event | None:
    """Record one event with a delivery per subscribed active endpoint (or per given endpoint), and
    enqueue them and the e-mail after commit. None when `dedupe_key` was already recorded."""
    msg_id = f"msg_{uuid.uuid4().hex}"
    now = timezone.now()
    payload = {"type": type, "timestamp": now.isoformat(), "data": data}
    try:
        with transaction.atomic():
            event = Event.objects.create(
                msg_id=msg_id,
                organization_id=organization_id,
                type=type,
                payload=payload,
                dedupe_key=dedupe_key,
            )
    except IntegrityError:
        return None  # already told
    if endpoints is None:
        endpoints = [
            e
            for e in WebhookEndpoint.objects.filter(organization_id=organization_id, active=True)
            if e.wants(type)
        ]
    deliveries = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(endpoint=e, event=event, next_attempt_at=now) for e in endpoints]
    )
    from apps.notifications import tasks

    delivery_ids = [d.pk for d in deliveries]
    send_email = type != EventType.TEST

    def enqueue() -> None:
        # After commit; a broker outage must not fail the change that was just committed: the
        # hourly sweep (tasks.sweep) finds what was not enqueued.
        try:
            for delivery_id in delivery_ids:
                tasks.deliver.delay(delivery_id)
            if send_email:
                tasks.email.delay(event.pk)
        except Exception:
            logger.warning("notification %s not enqueued; the sweep will retry it", msg_id, exc_info=True)

    transaction.on_commit(enqueue)
    return event


def _campaign_data(campaign: Campaign) -> dict[str, Any]:
    return {
        "campaign": campaign.pk,
        "state": campaign.state,
        "target": campaign.target.slug,
        "program": str(campaign.program),
        "level": campaign.level,
        "reason": campaign.state_reason,
        "url": _portal_url(f"/campaigns/{campaign.pk}/"),
    }


def _certificate_data(certificate: Certificate, reason: str = "") -> dict[str, Any]:
    return {
        "serial": certificate.serial,
        "status": certificate.status,
        "valid_until": certificate.valid_until.isoformat(),
        "reason": reason or certificate.status_reason,
        "url": _portal_url(f"/certificates/{certificate.serial}/"),
    }


CAMPAIGN_ACTIONS = {
    "campaign.submitted": EventType.CAMPAIGN_QUEUED,
    "campaign.evaluated": EventType.CAMPAIGN_AWAITING_REVIEW,
    "review.rejected": EventType.CAMPAIGN_REJECTED,
    "campaign.failed": EventType.CAMPAIGN_FAILED,
}
CERTIFICATE_ACTIONS = {
    "certificate.issued": EventType.CERTIFICATE_ISSUED,
    "certificate.suspended": EventType.CERTIFICATE_SUSPENDED,
    "certificate.revoked": EventType.CERTIFICATE_REVOKED,
    "certificate.active": EventType.CERTIFICATE_REINSTATED,
}


def audit_event_notify(audit_event: AuditEvent) -> None:
    """AUDIT_LISTENERS entry: the notification events an audit event means (most mean none, at no query)."""
    action = audit_event.action
    if action in CAMPAIGN_ACTIONS:
        from apps.runs.models import Campaign

        campaign = (
            Campaign.objects.select_related("target", "program").filter(pk=audit_event.object_id).first()
        )
        if campaign is not None:
            event_record(
                organization_id=campaign.vendor_id,
                type=CAMPAIGN_ACTIONS[action],
                data=_campaign_data(campaign),
            )
    elif action in CERTIFICATE_ACTIONS:
        from apps.certificates.models import Certificate

        certificate = Certificate.objects.filter(pk=audit_event.object_id).first()
        if certificate is None:
            return
        reason = str(audit_event.payload.get("reason", ""))
        if action == "certificate.issued" and certificate.campaign_id is not None:
            from apps.runs.models import Campaign

            campaign = Campaign.objects.select_related("target", "program").get(pk=certificate.campaign_id)
            event_record(
                organization_id=certificate.vendor_id,
                type=EventType.CAMPAIGN_APPROVED,
                data={**_campaign_data(campaign), "certificate": certificate.serial},
            )
        event_record(
            organization_id=certificate.vendor_id,
            type=CERTIFICATE_ACTIONS[action],
            data=_certificate_data(certificate, reason),
        )


# The actions it hears: audit_record opens a listener's savepoint only for these (two statements saved
# on every other event, which is most of them).
audit_event_notify.actions = frozenset(CAMPAIGN_ACTIONS) | frozenset(CERTIFICATE_ACTIONS)  # type: ignore[attr-defined]


def certificates_expiring_notify(*, now: datetime | None = None) -> int:
    """Warn each vendor once per validity period about its active certificates ending within
    WEBHOOK_EXPIRY_NOTICE_DAYS; returns how many warnings were recorded."""
    from apps.certificates.models import Certificate, CertificateStatus

    now = now or timezone.now()
    horizon = now + timedelta(days=settings.NOTIFY_EXPIRY_NOTICE_DAYS)
    recorded = 0
    expiring = Certificate.objects.filter(
        status=CertificateStatus.ACTIVE, valid_until__gt=now, valid_until__lte=horizon
    )
    for certificate in expiring.only("pk", "serial", "status", "valid_until", "status_reason", "vendor_id"):
        with transaction.atomic():
            event = event_record(
                organization_id=certificate.vendor_id,
                type=EventType.CERTIFICATE_EXPIRING,
                data=_certificate_data(certificate),
                dedupe_key=f"certificate.expiring:{certificate.serial}:{certificate.valid_until.isoformat()}",
            )
        recorded += event is not None
    return recorded


@transaction.atomic
def webhook_test_send(*, endpoint: WebhookEndpoint, actor: Any = None) -> Event:
    """The portal's "send test event" button: one event, delivered to this endpoint only."""
    event = event_record(
        organization_id=endpoint.organization_id,
        type=EventType.TEST,
        data={"endpoint": endpoint.pk, "sent_by": actor.get_username() if actor is not None else "system"},
        endpoints=[endpoint],
    )
    assert event is not None  # no dedupe key: always recorded
    return event


# Delivery -----------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self, *args: Any, **kwargs: Any
    ) -> None:  # a receiver answers; it does not send us elsewhere
        return None


def _refused_host(url: str) -> str | None:
    """Why the URL's host may not be called (a private, loopback or link-local address), or None."""
    if settings.WEBHOOK_ALLOW_PRIVATE_HOSTS:
        return None
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    for address in addresses:
        ip = ipaddress.ip_address(str(address).split("%")[0])
        if not ip.is_global:
            return f"{host} resolves to a non-public address ({ip})"
    return None


def backoff_delay_s(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: exponential, WEBHOOK_BACKOFF_BASE_S x 4^(attempts-1)."""
    return float(settings.WEBHOOK_BACKOFF_BASE_S * 4 ** (attempts - 1))


def webhook_delivery_claim(*, delivery_id: int, now: datetime) -> bool:
    """Take a due delivery for one attempt (atomically, so two workers never send it at once): it is
    "sending" from `now` on, under the lease WEBHOOK_SENDING_LEASE_S (deliveries_stuck_requeue)."""
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(status=DeliveryStatus.SENDING, claimed_at=now)
    return claimed == 1


def webhook_deliver(*, delivery_id: int) -> float | None:
    """Attempt one delivery (claimed atomically, so two workers never send it twice at once); returns
    the seconds until the retry, or None when it is delivered, has failed for good, or its lease was
    taken over by the recovery of stuck deliveries while this attempt ran."""
    now = timezone.now()
    if not webhook_delivery_claim(delivery_id=delivery_id, now=now):
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint", "event").get(pk=delivery_id)
    endpoint, event = delivery.endpoint, delivery.event
    body = json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False).encode()
    started = time.monotonic()
    status_code, error = None, ""
    refusal = _refused_host(endpoint.url) if endpoint.active else "the endpoint is disabled"
    if refusal:
        error = refusal
    else:
        headers = signed_headers(
            secret=secret_decrypt(endpoint.secret_ciphertext),
            msg_id=event.msg_id,
            timestamp=int(time.time()),
            body=body,
        )
        # The scheme was checked at registration (_check_url: https, or http where allowed).
        request = urllib.request.Request(endpoint.url, data=body, headers=headers, method="POST")  # noqa: S310
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=settings.WEBHOOK_TIMEOUT_S) as response:
                status_code = response.status
        except urllib.error.HTTPError as exc:
            status_code, error = exc.code, exc.read(RESPONSE_EXCERPT).decode(errors="replace")
        except (OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
    attempts = delivery.attempts + 1
    ok = status_code is not None and 200 <= status_code < 300
    retry = (
        None
        if ok or attempts >= settings.WEBHOOK_MAX_ATTEMPTS or not endpoint.active
        else backoff_delay_s(attempts)
    )
    delivery.attempts = attempts
    delivery.last_status_code = status_code
    delivery.last_error = error[:500]
    delivery.log = [
        *delivery.log,
        {
            "at": now.isoformat(),
            "status_code": status_code,
            "error": error[:RESPONSE_EXCERPT],
            "ms": round((time.monotonic() - started) * 1000),
        },
    ]
    if ok:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
            DeliveryStatus.DELIVERED,
            timezone.now(),
            None,
        )
    elif retry is None:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
    else:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.PENDING, now + timedelta(seconds=retry)
    # Written only while this attempt still holds its claim: an attempt that outlived its lease was
    # already counted and re-queued by deliveries_stuck_requeue, and must not overwrite that.
    held = WebhookDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.SENDING, claimed_at=now
    ).update(
        attempts=delivery.attempts,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        log=delivery.log,
        status=delivery.status,
        delivered_at=delivery.delivered_at,
        next_attempt_at=delivery.next_attempt_at,
    )
    if held != 1:
        logger.warning(
            "webhook delivery %s: attempt ended (%s) after its lease was taken over; its outcome is not recorded",
            delivery_id,
            status_code or error[:100],
        )
        return None
    return retry


def deliveries_due() -> list[int]:
    """Pending deliveries whose time has come (a retry whose message was lost is found here)."""
    return list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:500]
    )


def deliveries_stuck_requeue(*, now: datetime | None = None) -> list[tuple[int, float]]:
    """Deliveries left "sending" longer than WEBHOOK_SENDING_LEASE_S (their worker stopped during the
    attempt: no outcome was recorded, and the broker's message was consumed) are put back in the
    queue: the lost attempt is counted and logged (the receiver may have got it; the `webhook-id`
    stays the event's, so it deduplicates), an audit event records the recovery, and a delivery
    that has used its WEBHOOK_MAX_ATTEMPTS fails for good. Returns (delivery id, seconds until due)
    for each one to enqueue; a delivery still within its lease is left alone."""
    now = now or timezone.now()
    lease = settings.WEBHOOK_SENDING_LEASE_S
    cutoff = now - timedelta(seconds=lease)
    requeue: list[tuple[int, float]] = []
    stuck = list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.SENDING, claimed_at__lte=cutoff)
        .order_by("claimed_at")
        .values_list("pk", flat=True)[:500]
    )
    for delivery_id in stuck:
        with transaction.atomic():
            # Locked and checked again: another recovery, or the attempt itself, may have got there first.
            delivery = (
                WebhookDelivery.objects.select_for_update()
                .filter(pk=delivery_id, status=DeliveryStatus.SENDING, claimed_at__lte=cutoff)
                .first()
            )
            if delivery is None:
                continue
            assert delivery.claimed_at is not None  # the filter's claimed_at__lte
            attempts = delivery.attempts + 1
            error = f"no outcome: the attempt's worker stopped (still sending after the {lease} s lease)"
            delivery.log = [
                *delivery.log,
                {"at": delivery.claimed_at.isoformat(), "status_code": None, "error": error, "ms": None},
            ]
            delivery.attempts, delivery.last_status_code, delivery.last_error = attempts, None, error
            if attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
                delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
            else:
                due = max(now, delivery.claimed_at + timedelta(seconds=backoff_delay_s(attempts)))
                delivery.status, delivery.next_attempt_at = DeliveryStatus.PENDING, due
                requeue.append((delivery_id, (due - now).total_seconds()))
            delivery.save(
                update_fields=[
                    "attempts",
                    "last_status_code",
                    "last_error",
                    "log",
                    "status",
                    "next_attempt_at",
                ]
            )
            audit_record(
                action="webhook.delivery_requeued"
                if delivery.status == DeliveryStatus.PENDING
                else "webhook.delivery_failed",
                obj=delivery,
                payload={
                    "event": delivery.event_id,
                    "endpoint": delivery.endpoint_id,
                    "attempts": attempts,
                    "claimed_at": delivery.claimed_at.isoformat(),
                    "lease_s": lease,
                    "reason": error,
                },
            )
        logger.warning(
            "webhook delivery %s stuck in sending since %s: attempt %s counted as lost; %s",
            delivery_id,
            delivery.claimed_at.isoformat(),
            attempts,
            "re-queued" if delivery.status == DeliveryStatus.PENDING else "failed for good",
        )
    return requeue


def events_unemailed() -> list[int]:
    """Events whose e-mail was never sent (its message lost), past a grace period."""
    return list(
        Event.objects.filter(emailed_at__isnull=True, created_at__lte=timezone.now() - UNSENT_EMAIL_GRACE)
        .exclude(type=EventType.TEST)
        .order_by("created_at")
        .values_list("pk", flat=True)[:500]
    )


# E-mail -------------------------------------------------------------------------------------------


def event_email(*, event_id: int) -> int:
    """E-mail one event to the members of its organization who have an address, once; returns how many."""
    claimed = Event.objects.filter(pk=event_id, emailed_at__isnull=True).update(emailed_at=timezone.now())
    if claimed != 1:
        return 0
    event = Event.objects.select_related("organization").get(pk=event_id)
    recipients = sorted(
        {
            m.user.email
            for m in Membership.objects.filter(
                organization_id=event.organization_id, user__is_active=True
            ).select_related("user")
            if m.user.email
        }
    )
    if not recipients:
        return 0
    # In the organization's language: Chinese for a Chinese organization, the platform's otherwise
    # (a worker has no request to take a language from).
    language = EMAIL_LANGUAGE_BY_COUNTRY.get(event.organization.country, settings.LANGUAGE_CODE)
    with translation.override(language):
        data = event.payload.get("data", {})
        subject = _("[Certification] %(event)s: %(subject)s") % {
            "event": event.get_type_display(),
            "subject": data.get("serial") or _("campaign %(id)s") % {"id": data.get("campaign", "")},
        }
        lines = [str(event.get_type_display())]
        for key in (
            "serial",
            "campaign",
            "target",
            "program",
            "level",
            "state",
            "status",
            "valid_until",
            "reason",
        ):
            if data.get(key) not in (None, ""):
                lines.append(f"{key}: {data[key]}")
        if data.get("url"):
            lines.append(data["url"])
    try:
        send_mail(subject, "\n".join(lines), settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception:
        Event.objects.filter(pk=event_id).update(emailed_at=None)  # unclaimed: the task's retry sends it
        raise
    return len(recipients)
