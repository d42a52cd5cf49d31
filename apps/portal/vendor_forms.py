"""The vendors' self-service forms: chips, hardware targets, models and API tokens (issue 17, item 2).

The forms check only the shape of the input, with the model's own field types and validators; the
registry and accounts services (the same the API calls) decide, and their refusals are put back on
the form in place (`form_error_from`). A form never touches a model instance: the services compare
the row before and after an edit (certified subjects), so the instance they get must be the stored one.
"""

from __future__ import annotations

import json
from typing import Any, cast

from django import forms
from django.db.models import Field, Model
from django.forms.models import fields_for_model
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Membership
from apps.notifications.models import EventType
from apps.notifications.services import SUBSCRIBABLE
from apps.registry.models import PEAK_FIELDS, Architecture, Chip, HardwareTarget, ModelTask
from apps.registry.selectors import chips_visible_to
from apps.registry.services import CHIP_FIELDS, TARGET_FIELDS

CHIP_LABELS = {
    "sku": _("SKU"),
    "name": _("Name"),
    "architecture": _("Architecture"),
    "process_node_nm": _("Process node (nm)"),
    "die_area_mm2": _("Die area (mm²)"),
    "memory_gib": _("Memory (GiB)"),
    "memory_bandwidth_gbs": _("Memory bandwidth (GB/s)"),
    "tdp_w": _("TDP (W)"),
    "interconnect_bandwidth_gbs": _("Interconnect bandwidth (GB/s)"),
    "data_center": _("Designed for data centers"),
    "fab_country": _("Fab country (ISO code)"),
    "assembly_country": _("Assembly country (ISO code)"),
    "domestic_content_pct": _("Domestic content (%)"),
    "list_price": _("List price"),
    "currency": _("Currency (ISO code)"),
    "spec_source": _("Source of the declared figures"),
    "peak_fp32_tflops": _("Declared FP32 peak (TFLOP/s)"),
    "peak_tf32_tflops": _("Declared TF32 peak (TFLOP/s)"),
    "peak_bf16_tflops": _("Declared BF16 peak (TFLOP/s)"),
    "peak_fp16_tflops": _("Declared FP16 peak (TFLOP/s)"),
    "peak_fp8_tflops": _("Declared FP8 peak (TFLOP/s)"),
    "peak_int8_tops": _("Declared INT8 peak (TOP/s)"),
}
# The API's order (apps/registry/api/serializers.py), the peaks after the memory figures.
CHIP_ORDER = [
    "sku",
    "name",
    "architecture",
    "process_node_nm",
    "die_area_mm2",
    "memory_gib",
    "memory_bandwidth_gbs",
    "tdp_w",
    "interconnect_bandwidth_gbs",
    *PEAK_FIELDS.values(),
    "data_center",
    "fab_country",
    "assembly_country",
    "domestic_content_pct",
    "list_price",
    "currency",
    "spec_source",
]

TARGET_LABELS = {
    "chip": _("Chip"),
    "slug": _("Slug"),
    "backend": _("Backend"),
    "device_count": _("Number of devices"),
    "interconnect": _("Interconnect"),
    "driver_version": _("Driver version"),
    "runtime_version": _("Runtime version"),
    "torch_version": _("PyTorch version"),
    "plugin_versions": _("Plugin versions (JSON)"),
    "device_identity": _("Device identity (JSON)"),
    "host_cpu": _("Host CPU"),
    "host_memory_gib": _("Host memory (GiB)"),
    "description": _("Description"),
}
TARGET_HELP = {
    "slug": _("Lower-case letters, digits and inner hyphens; it names the runner queue."),
    "backend": _("The PyTorch device type: cpu, cuda, xpu, mps, npu, mlu, ..."),
    "runtime_version": _("CUDA toolkit, ROCm, CANN, ..."),
    "interconnect": _(
        "How the devices are connected, e.g. NVLink 4 (18 links), HCCS, PCIe 5.0 x16; empty for one device."
    ),
    "plugin_versions": _('Each backend plugin and its version, e.g. {"torch_npu": "2.1.0"}.'),
    "device_identity": _(
        "What the runner must read from the device: name, pci_bus_id, uuid, serial (each optional)."
    ),
}
TARGET_ORDER = ["chip", *sorted(TARGET_FIELDS, key=list(TARGET_LABELS).index)]


class ModelValidatorsMixin:
    """Run the model fields' own validators (a country code, a range) on the form, as a ModelForm
    would, so that every refusable value is marked at once rather than after the service's turn."""

    model: type[Model]

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean()  # type: ignore[misc]
        for name, value in list(data.items()):
            if value in (None, "") or name not in {f.name for f in self.model._meta.fields}:
                continue
            field = self.model._meta.get_field(name)
            if not isinstance(field, Field):
                continue
            try:
                field.run_validators(value)
            except forms.ValidationError as error:
                self.add_error(name, error)  # type: ignore[attr-defined]
        return data


class ChipForm(ModelValidatorsMixin, forms.Form):
    """A chip with its declared specifications; the declared peaks are the API's `declared_peak`."""

    model = Chip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields.update(fields_for_model(Chip, fields=CHIP_ORDER, labels=CHIP_LABELS))  # type: ignore[arg-type]
        self.fields["spec_source"].help_text = _("A datasheet URL or document the figures come from.")
        self.fields["data_center"].help_text = ""
        for field in PEAK_FIELDS.values():
            self.fields[field].help_text = ""

    @classmethod
    def initial_of(cls, chip: Chip) -> dict[str, Any]:
        return {name: getattr(chip, name) for name in CHIP_ORDER}

    def service_arguments(self) -> dict[str, Any]:
        """The services' keyword arguments: the chip fields and `declared_peak` (a blank peak clears it)."""
        data = self.cleaned_data
        return {
            **{name: data[name] for name in CHIP_FIELDS},
            "declared_peak": {dtype: data[field] for dtype, field in PEAK_FIELDS.items()},
        }


class JSONObjectField(forms.JSONField):
    """A JSON object typed in a text area (blank is {}); the services check its keys and values."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 2}))
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        if value in self.empty_values:
            return {}
        result = super().to_python(value)
        if not isinstance(result, dict):
            raise forms.ValidationError(_("Enter a JSON object, such as {}."), code="invalid")
        return result


class ChipChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.sku} — {obj.name}"


class TargetForm(ModelValidatorsMixin, forms.Form):
    """A hardware target (chip plus software stack); only the vendor's own chips are offered."""

    model = HardwareTarget

    def __init__(self, *args: Any, membership: Membership, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fields = fields_for_model(
            HardwareTarget,
            fields=TARGET_ORDER,
            labels=TARGET_LABELS,  # type: ignore[arg-type]
            help_texts=TARGET_HELP,  # type: ignore[arg-type]
            field_classes={
                "chip": ChipChoiceField,
                "plugin_versions": JSONObjectField,
                "device_identity": JSONObjectField,
            },
        )
        self.fields.update(fields)
        chip = cast(ChipChoiceField, self.fields["chip"])
        chip.queryset = chips_visible_to(membership).order_by("sku")
        chip.empty_label = _("Choose a chip")
        self.fields["plugin_versions"].required = False
        self.fields["device_identity"].required = False

    @classmethod
    def initial_of(cls, target: HardwareTarget) -> dict[str, Any]:
        initial = {name: getattr(target, name) for name in TARGET_FIELDS}
        initial["chip"] = target.chip_id
        return initial


class ModelUploadForm(forms.Form):
    """A model to certify with: safetensors weights plus a config for a known architecture."""

    name = forms.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$", max_length=100, label=_("Name"))
    version = forms.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._+\-]*$", max_length=50, label=_("Version"))
    task = forms.ChoiceField(choices=ModelTask.choices, label=_("Task"))
    architecture = forms.ChoiceField(
        choices=Architecture.choices,
        label=_("Architecture"),
        help_text=_("The weights must hold exactly the tensors this architecture implies for the config."),
    )
    config = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        label=_("Config (JSON)"),
        help_text=_("The architecture's config (a Hugging Face config.json works)."),
    )
    license = forms.CharField(max_length=100, label=_("Licence"))
    weights = forms.FileField(
        allow_empty_file=False,
        label=_("Weights (safetensors)"),
        help_text=_("A safetensors file, never a pickle; it is checked, never loaded."),
    )

    def __init__(self, *args: Any, max_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_bytes = max_bytes

    def clean_config(self) -> dict[str, Any]:
        try:
            config = json.loads(self.cleaned_data["config"])
        except ValueError as exc:
            raise forms.ValidationError(_("Not valid JSON: %(error)s") % {"error": exc}) from None
        if not isinstance(config, dict):
            raise forms.ValidationError(_("The config is a JSON object."))
        return config

    def clean_weights(self) -> Any:
        weights = self.cleaned_data["weights"]
        if weights.size > self.max_bytes:
            raise forms.ValidationError(
                _("Uploads are limited to %(limit)s bytes.") % {"limit": self.max_bytes}
            )
        return weights


class TokenCreateForm(forms.Form):
    """A new API token: a name to recognise it by and its lifetime."""

    name = forms.CharField(max_length=100, initial="api", label=_("Name"))
    ttl_days = forms.IntegerField(
        min_value=1,
        max_value=365,
        required=False,
        label=_("Lifetime (days)"),
        help_text=_("Blank: the platform's default lifetime."),
    )


class WebhookEndpointForm(forms.Form):
    """An HTTPS receiver of the organization's events, signed per Standard Webhooks."""

    url = forms.URLField(
        max_length=500,
        assume_scheme="https",
        label=_("URL"),
        help_text=_("An https:// address that accepts a POST of JSON."),
    )
    description = forms.CharField(max_length=200, required=False, label=_("Description"))
    event_types = forms.MultipleChoiceField(
        choices=[(value, label) for value, label in EventType.choices if value in SUBSCRIBABLE],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=_("Events"),
        help_text=_("None ticked: every event."),
    )
