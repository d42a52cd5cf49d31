"""Reads of the certificates app: public certificates, keys, and the evaluation of a campaign."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from apps.accounts.models import Membership
from apps.accounts.selectors import vendor_rows_visible_to
from apps.audit.models import AuditEvent
from apps.certificates.models import Certificate, CriterionResult, Review, SigningKey, SurveillanceRun
from apps.runs.models import Campaign, CampaignState


def certificates_public() -> QuerySet[Certificate]:
    """Every certificate, with what its list and detail need in one query. What was certified comes
    from the certificate itself (payload, subject_* columns), so the live chip and target rows are
    not joined."""
    return Certificate.objects.select_related("program", "vendor", "signing_key", "superseded_by")


# The columns the public list shows (CertificateListSerializer), its joins' included: the signed payload
# (about 3 KB a row) and the program's definition (the whole program as JSON, parsed once per row) stay
# in the database. The list's every ordering (issued_at, valid_until, serial, id) is among them.
LISTED_COLUMNS = (
    "serial",
    "level",
    "status",
    "status_reason",
    "issued_at",
    "valid_until",
    "subject_chip_sku",
    "subject_chip_name",
    "subject_target_slug",
    "subject_backend",
    "program__code",
    "program__version",
    "vendor__name",
    "vendor__slug",
    "signing_key__key_id",
    "superseded_by__serial",
)


def certificates_public_listed() -> QuerySet[Certificate]:
    """certificates_public() reading only the listed columns."""
    return certificates_public().only(*LISTED_COLUMNS)


def certificates_with_retest() -> QuerySet[Certificate]:
    """certificates_public() with `retest_since`: when the re-test under way (a surveillance campaign
    not concluded yet: scheduled, or submitted at once when the target's software stack changed)
    was submitted, or None; in the same query."""
    open_runs = SurveillanceRun.objects.filter(certificate=OuterRef("pk"), concluded_at__isnull=True)
    return certificates_public().annotate(
        retest_since=Subquery(open_runs.order_by("-created_at").values("created_at")[:1])
    )


def certificate_by_serial(*, serial: str) -> Certificate | None:
    return certificates_with_retest().filter(serial=serial).first()


def signing_keys_public() -> list[SigningKey]:
    return list(SigningKey.objects.order_by("created_at"))


def campaigns_reviewable_by(membership: Membership | None) -> QuerySet[Campaign]:
    """Campaigns whose evaluation the member may read: all (authority), its own (vendor), none (others)."""
    campaigns = Campaign.objects.select_related("program", "target", "vendor").exclude(
        state__in=[CampaignState.DRAFT]
    )
    return vendor_rows_visible_to(campaigns, membership, owner="vendor_id")


def campaign_criterion_results(*, campaign: Campaign) -> list[CriterionResult]:
    return list(CriterionResult.objects.filter(campaign=campaign).select_related("waived_by").order_by("id"))


def campaign_reviews(*, campaign: Campaign) -> list[Review]:
    return list(Review.objects.filter(campaign=campaign).select_related("reviewer").order_by("created_at"))


# The audit actions that change a certificate's public status, and the status each leaves it in.
STATUS_HISTORY_ACTIONS = {
    "certificate.issued": "active",
    "certificate.suspended": "suspended",
    "certificate.active": "active",  # reinstated
    "certificate.revoked": "revoked",
    "certificate.expired": "expired",
    "certificate.superseded": "superseded",
}


def certificate_status_history(*, certificate: Certificate) -> list[dict[str, Any]]:
    """Each change of the certificate's status, oldest first, from the audit log (tamper-evident):
    when, the status it left and entered, and the reason recorded with it. Who decided is not public."""
    events = AuditEvent.objects.filter(
        object_type=Certificate._meta.label_lower,
        object_id=str(certificate.pk),
        action__in=list(STATUS_HISTORY_ACTIONS),
    ).order_by("sequence")
    history = []
    for event in events.only("occurred_at", "action", "payload"):
        payload = event.payload or {}
        history.append(
            {
                "at": event.occurred_at,
                "from": payload.get("from") or None,
                "to": STATUS_HISTORY_ACTIONS[event.action],
                "reinstated": event.action == "certificate.active",
                "reason": str(payload.get("reason") or ""),
            }
        )
    return history
