"""Serializers of the certificates API: public certificate views, evaluation, decisions."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.certificates import selectors
from apps.certificates.judge import required_approvals
from apps.certificates.models import Certificate, CriterionResult, Review, SigningKey
from apps.runs.models import Campaign


def _text(value: object) -> str | None:
    return None if value is None else str(value)


class CertificateRows(serializers.ListSerializer[Certificate]):
    """A page of CertificateListSerializer rows, built straight from the attributes: the same dicts the
    per-field machinery gives (a test compares them), at a fraction of its cost per row, which was most
    of an uncached list request's time."""

    def to_representation(self, data: Any) -> list[dict[str, Any]]:
        stamp = serializers.DateTimeField().to_representation  # ISO 8601, the current zone, "Z" for UTC
        rows = []
        for certificate in data.all() if hasattr(data, "all") else data:
            program, vendor, superseded = certificate.program, certificate.vendor, certificate.superseded_by
            rows.append(
                {
                    "serial": _text(certificate.serial),
                    "program": _text(program.code),
                    "version": _text(program.version),
                    "level": _text(certificate.level),
                    "vendor": _text(vendor.name),
                    "vendor_slug": _text(vendor.slug),
                    "chip_sku": _text(certificate.subject_chip_sku),
                    "chip_name": _text(certificate.subject_chip_name),
                    "target": _text(certificate.subject_target_slug),
                    "backend": _text(certificate.subject_backend),
                    "status": _text(certificate.status),
                    "status_reason": _text(certificate.status_reason),
                    "issued_at": None if certificate.issued_at is None else stamp(certificate.issued_at),
                    "valid_until": None
                    if certificate.valid_until is None
                    else stamp(certificate.valid_until),
                    "key_id": _text(certificate.signing_key.key_id),
                    "superseded_by": None if superseded is None else _text(superseded.serial),
                }
            )
        return rows


class CertificateListSerializer(serializers.ModelSerializer):
    """A certificate as listed publicly: who, what (as signed), which level, and its status."""

    program = serializers.CharField(source="program.code")
    version = serializers.CharField(source="program.version")
    vendor = serializers.CharField(source="vendor.name")
    vendor_slug = serializers.CharField(source="vendor.slug")
    chip_sku = serializers.CharField(source="subject_chip_sku")
    chip_name = serializers.CharField(source="subject_chip_name")
    target = serializers.CharField(source="subject_target_slug")
    backend = serializers.CharField(source="subject_backend")
    key_id = serializers.CharField(source="signing_key.key_id")
    superseded_by = serializers.CharField(source="superseded_by.serial", default=None, allow_null=True)

    class Meta:
        model = Certificate
        fields = [
            "serial",
            "program",
            "version",
            "level",
            "vendor",
            "vendor_slug",
            "chip_sku",
            "chip_name",
            "target",
            "backend",
            "status",
            "status_reason",
            "issued_at",
            "valid_until",
            "key_id",
            "superseded_by",
        ]
        list_serializer_class: type[serializers.ListSerializer[Any]] = CertificateRows


class CertificateDetailSerializer(CertificateListSerializer):
    """The list fields plus the signed payload (parsed) and its signature."""

    certificate = serializers.SerializerMethodField()
    retest_since = serializers.SerializerMethodField()

    class Meta(CertificateListSerializer.Meta):
        fields = [
            *CertificateListSerializer.Meta.fields,
            "retest_since",
            "payload_sha256",
            "signature",
            "certificate",
        ]
        list_serializer_class = serializers.ListSerializer  # its own fields, through the field machinery

    def get_certificate(self, obj: Certificate) -> dict:
        return json.loads(obj.payload_json)

    def get_retest_since(self, obj: Certificate) -> datetime | None:
        """When the re-test under way (if any) was submitted; the certificate stays as signed meanwhile."""
        if not hasattr(obj, "retest_since"):  # a certificate just changed by a status action
            obj = selectors.certificates_with_retest().get(pk=obj.pk)
        return obj.retest_since


class CertificateCheckSerializer(serializers.Serializer):
    serial = serializers.CharField()
    status = serializers.CharField()
    signature_valid = serializers.BooleanField()
    key_id = serializers.CharField()
    checked_at = serializers.DateTimeField()
    reason = serializers.CharField()


class SigningKeySerializer(serializers.ModelSerializer):
    public_key = serializers.CharField(source="public_key_pem")

    class Meta:
        model = SigningKey
        fields = ["key_id", "algorithm", "public_key", "status", "created_at", "retired_at", "compromised_at"]


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(allow_blank=True, trim_whitespace=True, max_length=5000)


class WaiverSerializer(ReasonSerializer):
    criterion = serializers.CharField(max_length=16)


class CriterionResultSerializer(serializers.ModelSerializer):
    waived_by = serializers.CharField(source="waived_by.username", default=None)

    class Meta:
        model = CriterionResult
        fields = [
            "criterion_id",
            "title",
            "kind",
            "blocker",
            "params",
            "outcome",
            "measured_value",
            "threshold",
            "explanation",
            "evidence",
            "waived_by",
            "waiver_reason",
            "waived_at",
            "evaluated_at",
        ]


class ReviewSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.username")

    class Meta:
        model = Review
        fields = ["id", "reviewer", "decision", "reason", "created_at"]


class CampaignReviewRowSerializer(serializers.ModelSerializer):
    """A campaign in the review queue."""

    campaign = serializers.IntegerField(source="pk")
    program = serializers.CharField(source="program.__str__")
    target = serializers.CharField(source="target.slug")
    vendor = serializers.CharField(source="vendor.name")

    class Meta:
        model = Campaign
        fields = ["campaign", "state", "program", "level", "target", "vendor", "purpose", "submitted_at"]


class CampaignEvaluationSerializer(CampaignReviewRowSerializer):
    """A campaign's evaluation: every criterion with its evidence, the decisions so far, the certificate."""

    required_approvals = serializers.SerializerMethodField()
    criteria = serializers.SerializerMethodField()
    reviews = serializers.SerializerMethodField()
    certificate = serializers.SerializerMethodField()

    class Meta(CampaignReviewRowSerializer.Meta):
        fields = [
            *CampaignReviewRowSerializer.Meta.fields,
            "state_reason",
            "required_approvals",
            "criteria",
            "reviews",
            "certificate",
        ]

    def get_required_approvals(self, campaign: Campaign) -> int:
        """Distinct approving reviewers this campaign's level needs (two at Standard/Advanced from AIA 1.2)."""
        return required_approvals(program=campaign.program, level=campaign.level)

    @extend_schema_field(CriterionResultSerializer(many=True))
    def get_criteria(self, obj: Campaign) -> list:
        return CriterionResultSerializer(selectors.campaign_criterion_results(campaign=obj), many=True).data

    @extend_schema_field(ReviewSerializer(many=True))
    def get_reviews(self, obj: Campaign) -> list:
        return ReviewSerializer(selectors.campaign_reviews(campaign=obj), many=True).data

    def get_certificate(self, obj: Campaign) -> str | None:
        certificate = Certificate.objects.filter(campaign=obj).values_list("serial", flat=True).first()
        return certificate


class CertificateStatusChangeSerializer(serializers.Serializer[Any]):
    """One change of a certificate's status (issue 17): when, from and to which status, and why."""

    at = serializers.DateTimeField()
    from_status = serializers.CharField(source="from", allow_null=True)
    to_status = serializers.CharField(source="to")
    reinstated = serializers.BooleanField()
    reason = serializers.CharField(allow_blank=True)
