"""Serializers of the procurement API. Inputs are shapes only; the services validate the meaning."""

from __future__ import annotations

from rest_framework import serializers

from apps.procurement.models import Evaluation, RequirementKind, Tender, default_currency
from apps.procurement.requirements import tender_requirements_described


class RequirementSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=RequirementKind.choices)
    params = serializers.DictField()


class ScoringItemSerializer(serializers.Serializer):
    metric = serializers.CharField()
    weight = serializers.FloatField()
    model = serializers.CharField(required=False)
    dtype = serializers.CharField(required=False)


class TenderInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    reference = serializers.CharField(max_length=64)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    deadline = serializers.DateTimeField()
    currency = serializers.CharField(max_length=3, required=False, default=default_currency)
    # Passed to the service as given: it reports every invalid row by its position.
    requirements = serializers.ListField(child=serializers.DictField(), allow_empty=True)
    scoring = serializers.ListField(child=serializers.DictField(), allow_empty=True)


class TenderSerializer(serializers.ModelSerializer):
    requirements = serializers.SerializerMethodField()
    organization = serializers.CharField(source="organization.name")

    class Meta:
        model = Tender
        fields = [
            "id",
            "reference",
            "title",
            "description",
            "organization",
            "deadline",
            "currency",
            "requirements",
            "scoring",
            "created_at",
            "updated_at",
        ]

    def get_requirements(self, tender: Tender) -> list[dict]:
        return tender_requirements_described(tender)


class EvaluationListSerializer(serializers.ModelSerializer):
    tender = serializers.IntegerField(source="tender_id")

    class Meta:
        model = Evaluation
        fields = [
            "id",
            "tender",
            "created_at",
            "rule_id",
            "candidate_count",
            "eligible_count",
            "snapshot_sha256",
        ]


class EvaluationSerializer(EvaluationListSerializer):
    class Meta(EvaluationListSerializer.Meta):
        fields = [*EvaluationListSerializer.Meta.fields, "snapshot"]


class ClassificationSerializer(serializers.Serializer):
    """One chip's export-control classification; `certified` says where its figures come from (the
    signed subject of its active certificate, or the vendor's registry declarations)."""

    chip_id = serializers.IntegerField(source="chip.pk")
    vendor = serializers.CharField(source="chip.vendor.name")
    sku = serializers.CharField()
    name = serializers.CharField()
    certified = serializers.BooleanField()
    certificates = serializers.ListField(source="serials", child=serializers.CharField())
    figures_basis = serializers.SerializerMethodField()
    declared_peaks = serializers.DictField(child=serializers.FloatField())
    die_area_mm2 = serializers.FloatField(allow_null=True)
    data_center = serializers.BooleanField()
    classification = serializers.SerializerMethodField()
    measured_to_declared = serializers.DictField()

    def get_figures_basis(self, entry) -> str:
        if entry["certified"]:
            return (
                "SKU, declared peaks, die area and data-centre flag as signed in the active certificate; "
                "measured ratios from its certified runs"
            )
        return "vendor's declared claims (datasheet), not certified"

    def get_classification(self, entry) -> dict:
        return entry["classification"].as_dict()


class RegistryEntrySerializer(serializers.Serializer):
    """A certified configuration (one active certificate) with its certified figures."""

    serial = serializers.CharField()
    program = serializers.CharField(source="program_code")
    version = serializers.CharField(source="program_version")
    level = serializers.CharField()
    valid_until = serializers.CharField()
    vendor = serializers.CharField()
    sku = serializers.CharField()
    name = serializers.CharField()
    target = serializers.CharField()
    backend = serializers.CharField()
    memory_gib = serializers.FloatField(allow_null=True)
    tdp_w = serializers.FloatField(allow_null=True)
    declared_peaks = serializers.DictField(child=serializers.FloatField())
    scope_dtypes = serializers.ListField(child=serializers.CharField())
    scope_models = serializers.DictField()
    best_gemm = serializers.SerializerMethodField()
    export_class = serializers.CharField(source="classification.code")

    def get_best_gemm(self, candidate) -> dict:
        return {
            dtype: {
                "tflops": g["value"],
                "measured_to_declared": g["efficiency"],
                "measurement": g["measurement"],
            }
            for dtype, g in sorted(candidate.gemm.items())
        }
