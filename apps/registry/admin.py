from django import forms
from django.contrib import admin

from apps.audit.admin import AuditedAdminMixin
from apps.registry.models import Chip, HardwareTarget, ModelArtifact, Runner
from apps.registry.services import parse_ed25519_public_key


class RunnerAdminForm(forms.ModelForm):
    """Checks the public key in the form, so a bad key is an error beside the field, not a 500."""

    class Meta:
        model = Runner
        fields = ["name", "targets", "public_key", "status"]

    def clean_public_key(self) -> str:
        from django.core.exceptions import ValidationError

        try:
            pem, key_id = parse_ed25519_public_key(self.cleaned_data["public_key"])
        except ValidationError as exc:
            raise forms.ValidationError(exc.message_dict.get("public_key", exc.messages)) from None
        if Runner.objects.filter(key_id=key_id).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("This key is already registered to another runner.")
        self.instance.key_id = key_id
        return pem


@admin.register(Chip)
class ChipAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "sku",
        "name",
        "vendor",
        "architecture",
        "memory_gib",
        "tdp_w",
        "peak_bf16_tflops",
        "data_center",
    ]
    list_filter = ["data_center", "fab_country", "vendor"]
    search_fields = ["sku", "name", "architecture", "vendor__name"]
    list_select_related = ["vendor"]


@admin.register(HardwareTarget)
class HardwareTargetAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["slug", "vendor", "chip", "backend", "torch_version", "driver_version", "runtime_version"]
    list_filter = ["backend"]
    search_fields = ["slug", "chip__sku", "chip__name", "vendor__slug"]
    list_select_related = ["chip__vendor", "vendor"]
    readonly_fields = ["vendor"]  # always the chip's vendor

    def save_model(self, request, obj, form, change):
        obj.vendor_id = obj.chip.vendor_id
        super().save_model(request, obj, form, change)


@admin.register(ModelArtifact)
class ModelArtifactAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "version", "owner", "task", "architecture", "weights_size", "weights_sha256"]
    list_filter = ["task", "architecture"]
    search_fields = ["name", "weights_sha256"]
    readonly_fields = ["weights_sha256", "weights_size", "tensor_count"]
    list_select_related = ["owner"]


@admin.register(Runner)
class RunnerAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Registering a runner's public key is an authority action; the key id is derived, never typed."""

    list_display = ["name", "status", "last_heartbeat_at", "key_id"]
    list_filter = ["status"]
    search_fields = ["name", "key_id"]
    readonly_fields = ["key_id", "last_heartbeat_at", "last_fingerprint"]
    filter_horizontal = ["targets"]
    form = RunnerAdminForm
