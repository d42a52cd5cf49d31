from django.contrib import admin

from apps.accounts.models import ApiToken, Membership, Organization
from apps.accounts.services import api_token_revoke
from apps.audit.admin import AuditedAdminMixin


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "slug", "kind", "country", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization__kind"]
    search_fields = ["user__username", "organization__name"]
    list_select_related = ["user", "organization"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens can be seen and revoked here, never created (the clear text would have nowhere to go)."""

    list_display = ["token_key", "user", "name", "created", "expiry", "last_used_at"]
    search_fields = ["user__username", "token_key", "name"]
    readonly_fields = ["digest", "token_key", "user", "created", "expiry", "last_used_at", "name"]
    list_select_related = ["user"]

    def has_add_permission(self, request) -> bool:
        return False

    def delete_model(self, request, obj):
        api_token_revoke(user=obj.user, token_key=obj.token_key, actor=request.user)

    def delete_queryset(self, request, queryset):
        for token in queryset.select_related("user"):
            api_token_revoke(user=token.user, token_key=token.token_key, actor=request.user)
