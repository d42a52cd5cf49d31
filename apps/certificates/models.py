"""Evaluation of a campaign's criteria, reviewers' decisions, signing keys and signed certificates.

A certificate row keeps the payload text exactly as it was signed; everything a verifier needs
is in that text, its signature and the public key named by `signing_key`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Organization
from apps.registry.models import Chip, HardwareTarget
from apps.runs.models import Campaign, Program


class SigningKeyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired (verifies old certificates, signs nothing new)"
    COMPROMISED = "compromised", "Compromised (nothing it signed is trusted)"


class SigningKey(models.Model):
    """An Ed25519 key of the authority. Only the public half is here; the private half is a file
    <CERT_SIGNING_KEY_DIR>/<key_id>.pem (mode 0600) that never enters the database."""

    key_id = models.CharField(max_length=64, unique=True, help_text="sha256 of the raw public key, hex")
    algorithm = models.CharField(max_length=16, default="Ed25519")
    public_key_pem = models.TextField()
    status = models.CharField(
        max_length=16, choices=SigningKeyStatus.choices, default=SigningKeyStatus.ACTIVE
    )
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    compromised_at = models.DateTimeField(null=True, blank=True)
    compromise_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="active"), name="one_active_signing_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key_id[:16]} ({self.status})"


class CriterionOutcome(models.TextChoices):
    PASS = "pass", _("Pass")
    FAIL = "fail", _("Fail")
    NOT_APPLICABLE = "not_applicable", _("Not applicable")


class CriterionResult(models.Model):
    """One criterion of the campaign's level, judged against the evidence."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="criterion_results")
    criterion_id = models.CharField(max_length=16)
    title = models.CharField(max_length=300)
    kind = models.CharField(max_length=32)
    blocker = models.BooleanField()
    params = models.JSONField(default=dict)
    outcome = models.CharField(max_length=16, choices=CriterionOutcome.choices)
    measured_value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    explanation = models.TextField(blank=True)
    evidence = models.JSONField(
        default=dict, help_text="Documents (sha256, job) and the figures behind the verdict"
    )
    evaluated_at = models.DateTimeField(auto_now_add=True)
    waived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    waiver_reason = models.TextField(blank=True)
    waived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["campaign_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "criterion_id"], name="criterion_result_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.criterion_id} {self.outcome}"

    @property
    def is_failed_blocker(self) -> bool:
        return self.blocker and self.outcome == CriterionOutcome.FAIL

    @property
    def waived(self) -> bool:
        return self.waived_at is not None


class ReviewDecision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class Review(models.Model):
    """One reviewer's decision on a campaign, with the written reason; one per reviewer and campaign."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=16, choices=ReviewDecision.choices)
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign_id", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "reviewer"], name="one_review_per_reviewer")
        ]

    def __str__(self) -> str:
        return f"{self.decision} of campaign {self.campaign_id} by {self.reviewer_id}"


class CertificateStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended")
    REVOKED = "revoked", _("Revoked")
    EXPIRED = "expired", _("Expired")
    SUPERSEDED = "superseded", _("Superseded by a re-certification")


def subject_columns(payload: dict) -> dict[str, str]:
    """The signed subject's chip and target names as Certificate columns (filters, sorting, lists).

    Written once, at issue, from the payload being signed (and by a data migration for older rows);
    never from the live registry rows, which a vendor may edit later.
    """
    subject = payload.get("subject") or {}
    chip, target = subject.get("chip") or {}, subject.get("target") or {}
    return {
        "subject_chip_sku": str(chip.get("sku") or ""),
        "subject_chip_name": str(chip.get("name") or ""),
        "subject_target_slug": str(target.get("slug") or ""),
        "subject_backend": str(target.get("backend") or ""),
    }


class Certificate(models.Model):
    """A signed certificate. `payload_json` is the canonical JSON text exactly as signed.

    `chip` and `target` link to the registry rows for navigation and permissions only: every public
    and buyer view reads what was certified from the signed payload or its `subject_*` copies.
    """

    serial = models.CharField(max_length=32, unique=True)
    campaign = models.OneToOneField(Campaign, on_delete=models.PROTECT, related_name="certificate")
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="certificates")
    level = models.CharField(max_length=32)
    vendor = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="certificates")
    chip = models.ForeignKey(Chip, on_delete=models.PROTECT, related_name="certificates")
    target = models.ForeignKey(HardwareTarget, on_delete=models.PROTECT, related_name="certificates")
    status = models.CharField(
        max_length=16, choices=CertificateStatus.choices, default=CertificateStatus.ACTIVE, db_index=True
    )
    status_reason = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    superseded_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    issued_at = models.DateTimeField()
    valid_until = models.DateTimeField(db_index=True)
    signing_key = models.ForeignKey(SigningKey, on_delete=models.PROTECT, related_name="certificates")
    payload_json = models.TextField()
    payload_sha256 = models.CharField(max_length=64)
    signature = models.TextField(help_text="Ed25519 signature of payload_json (UTF-8), base64")
    # Copies of the signed subject (see subject_columns), never updated after issue.
    subject_chip_sku = models.CharField(max_length=64, blank=True, help_text="Chip SKU as signed")
    subject_chip_name = models.CharField(max_length=200, blank=True, help_text="Chip name as signed")
    subject_target_slug = models.CharField(max_length=64, blank=True, help_text="Target slug as signed")
    subject_backend = models.CharField(max_length=32, blank=True, help_text="Backend as signed")

    class Meta:
        ordering = ["-issued_at"]
        indexes = [
            models.Index(fields=["target", "program", "status"]),
            # The registry sorts by the certified SKU and filters by the certified backend.
            models.Index(fields=["subject_chip_sku"], name="certificate_subject_sku"),
            models.Index(fields=["subject_backend"], name="certificate_subject_backend"),
            # One index per offered ordering of the public list (with its tie-breaker), led by the
            # status the list filters on by default; the registry's order (certified SKU, serial).
            models.Index(fields=["status", "-issued_at", "-id"], name="certificate_status_issued"),
            models.Index(fields=["status", "valid_until", "id"], name="certificate_status_valid"),
            models.Index(fields=["status", "serial"], name="certificate_status_serial"),
            models.Index(fields=["subject_chip_sku", "serial"], name="certificate_sku_serial"),
        ]

    def __str__(self) -> str:
        return self.serial


class SerialCounter(models.Model):
    """The last serial number issued per program code and year; locked while a serial is drawn."""

    prefix = models.CharField(max_length=32)
    year = models.PositiveSmallIntegerField()
    last = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["prefix", "year"], name="serial_counter_unique")]

    def __str__(self) -> str:
        return f"{self.prefix}-{self.year}: {self.last}"


class SurveillanceRun(models.Model):
    """A surveillance campaign re-testing a certified target, and what came of it."""

    certificate = models.ForeignKey(Certificate, on_delete=models.PROTECT, related_name="surveillance_runs")
    campaign = models.OneToOneField(Campaign, on_delete=models.PROTECT, related_name="surveillance_of")
    created_at = models.DateTimeField(auto_now_add=True)
    concluded_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"surveillance of {self.certificate_id} by campaign {self.campaign_id}"
