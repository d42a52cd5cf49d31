"""Input and output serializers of the registry API. Semantic checks live in services."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.registry.architectures import architecture_layouts
from apps.registry.models import MAX_PEAK_TFLOPS, PEAK_FIELDS, Chip, HardwareTarget, ModelArtifact, Runner
from certification.api import BoundedJSONField


class StrictFieldsMixin:
    """Refuse fields the serializer does not know, so a typo is an error rather than silently ignored."""

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class DeclaredPeakField(serializers.DictField):
    """Declared dense peak per dtype: {"fp32": 67, "bf16": 989.4, ...} in TFLOP/s (int8: TOP/s)."""

    child = serializers.FloatField(min_value=0, max_value=MAX_PEAK_TFLOPS)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        unknown = sorted(set(value) - set(PEAK_FIELDS))
        if unknown:
            raise serializers.ValidationError(f"Unknown dtype keys {unknown}; use {sorted(PEAK_FIELDS)}.")
        return value


class ChipSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    vendor = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    declared_peak = DeclaredPeakField(source="declared_peaks", required=False)

    class Meta:
        model = Chip
        fields = [
            "id",
            "vendor",
            "sku",
            "name",
            "architecture",
            "process_node_nm",
            "die_area_mm2",
            "memory_gib",
            "memory_bandwidth_gbs",
            "tdp_w",
            "interconnect_bandwidth_gbs",
            "declared_peak",
            "data_center",
            "fab_country",
            "assembly_country",
            "domestic_content_pct",
            "list_price",
            "currency",
            "spec_source",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "vendor", "created_at", "updated_at"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["declared_peak"] = instance.declared_peaks()
        return data


class HardwareTargetSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    queue = serializers.CharField(read_only=True)
    vendor = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = HardwareTarget
        fields = [
            "id",
            "chip",
            "vendor",
            "slug",
            "queue",
            "backend",
            "device_count",
            "interconnect",
            "driver_version",
            "runtime_version",
            "torch_version",
            "plugin_versions",
            "device_identity",
            "host_cpu",
            "host_memory_gib",
            "description",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "vendor", "queue", "created_at", "updated_at"]

    def __init__(self, *args, chips=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the caller's own chips resolve; a foreign chip id reads as "does not exist".
        if chips is not None:
            self.fields["chip"].queryset = chips


class ModelArtifactSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = ModelArtifact
        fields = [
            "id",
            "owner",
            "name",
            "version",
            "task",
            "architecture",
            "config",
            "weights_sha256",
            "weights_size",
            "tensor_count",
            "license",
            "created_at",
        ]
        read_only_fields = fields


class ModelArtifactUploadSerializer(StrictFieldsMixin, serializers.Serializer):
    """Multipart upload: the weights file plus its metadata; `config` is a JSON object (or its text)."""

    name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$", max_length=100)
    version = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._+\-]*$", max_length=50)
    task = serializers.ChoiceField(choices=ModelArtifact._meta.get_field("task").choices)
    architecture = serializers.ChoiceField(
        choices=ModelArtifact._meta.get_field("architecture").choices,
        help_text="The runners' architecture the weights are data for. The weights must hold exactly the "
        "tensors it implies for the config (extra optional ones aside); the upload is refused with the "
        "first mismatch otherwise. Expected tensors (name pattern: shape):\n\n" + architecture_layouts(),
    )
    config = BoundedJSONField(  # depth, NUL and long-integer limits, also in form text
        binary=True,
        help_text="The architecture's config (a Hugging Face config.json works): its dimensions decide the "
        "expected tensor shapes. No key of it changes which weights run: the uploaded file always does.",
    )
    license = serializers.CharField(max_length=100)
    weights = serializers.FileField(
        allow_empty_file=False,
        use_url=False,
        help_text="A safetensors file (never a pickle) holding the tensors the architecture expects.",
    )


@extend_schema_field(OpenApiTypes.STR)
class TargetReferenceField(serializers.RelatedField):
    """A target as `<vendor slug>/<target slug>` (or its plain slug where only one vendor uses it)."""

    default_error_messages = {
        "does_not_exist": "No hardware target {value}.",
        "invalid": "A target is written <vendor slug>/<target slug>.",
    }

    def to_internal_value(self, data):
        from apps.registry.selectors import AmbiguousTarget, target_by_reference

        if not isinstance(data, str) or not data:
            self.fail("invalid")
        try:
            target = target_by_reference(data, targets=self.get_queryset())
        except AmbiguousTarget as exc:
            raise serializers.ValidationError(str(exc)) from None
        if target is None:
            self.fail("does_not_exist", value=data)
        return target

    def to_representation(self, value):
        return value.reference


class RunnerSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    targets = TargetReferenceField(many=True, queryset=HardwareTarget.objects.select_related("vendor"))

    class Meta:
        model = Runner
        fields = [
            "id",
            "name",
            "targets",
            "public_key",
            "key_id",
            "status",
            "last_heartbeat_at",
            "last_fingerprint",
            "created_at",
        ]
        read_only_fields = ["id", "key_id", "last_heartbeat_at", "last_fingerprint", "created_at"]
