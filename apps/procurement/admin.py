from django.contrib import admin

from apps.procurement.models import Evaluation, Requirement, Tender


class RequirementInline(admin.TabularInline):
    model = Requirement
    extra = 0


@admin.register(Tender)
class TenderAdmin(admin.ModelAdmin):
    list_display = ["reference", "title", "organization", "deadline", "created_at"]
    list_filter = ["organization"]
    search_fields = ["reference", "title"]
    inlines = [RequirementInline]


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    """Read-only: a saved evaluation is an audit record."""

    list_display = ["id", "tender", "created_at", "eligible_count", "candidate_count", "rule_id"]
    readonly_fields = [
        "tender",
        "created_by",
        "created_at",
        "rule_id",
        "candidate_count",
        "eligible_count",
        "snapshot",
        "snapshot_sha256",
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
