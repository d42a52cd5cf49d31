"""Admin: read-only views of evaluations, reviews, certificates and keys. Every change goes through the
services (reviews in the portal or API), so that it is checked and audited."""

from django.contrib import admin

from apps.certificates.models import Certificate, CriterionResult, Review, SigningKey, SurveillanceRun


class ReadOnlyAdmin(admin.ModelAdmin):
    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Certificate)
class CertificateAdmin(ReadOnlyAdmin):
    list_display = [
        "serial",
        "vendor",
        "chip",
        "target",
        "program",
        "level",
        "status",
        "issued_at",
        "valid_until",
    ]
    list_filter = ["status", "program", "level"]
    search_fields = ["serial", "chip__sku", "chip__name", "target__slug"]
    list_select_related = ["vendor", "chip", "target", "program"]


@admin.register(CriterionResult)
class CriterionResultAdmin(ReadOnlyAdmin):
    list_display = [
        "campaign",
        "criterion_id",
        "kind",
        "blocker",
        "outcome",
        "measured_value",
        "threshold",
        "waived_at",
    ]
    list_filter = ["outcome", "blocker", "kind"]


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "reviewer", "decision", "created_at"]
    list_filter = ["decision"]


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdmin):
    list_display = ["key_id", "algorithm", "status", "created_at", "retired_at"]


@admin.register(SurveillanceRun)
class SurveillanceRunAdmin(ReadOnlyAdmin):
    list_display = ["certificate", "campaign", "created_at", "concluded_at", "outcome"]
