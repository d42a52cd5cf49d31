"""One FilterSet per model, shared by the REST API and the portal's list pages."""

import django_filters as filters

from apps.registry.models import (
    Architecture,
    Chip,
    HardwareTarget,
    ModelArtifact,
    ModelTask,
    Runner,
    RunnerStatus,
)
from certification.filters import FilterSet, IdFilter


class ChipFilter(FilterSet):
    q = filters.CharFilter(method="search", label="Search SKU, name or architecture")
    vendor = filters.CharFilter(field_name="vendor__slug")
    min_memory_gib = filters.NumberFilter(field_name="memory_gib", lookup_expr="gte")
    max_tdp_w = filters.NumberFilter(field_name="tdp_w", lookup_expr="lte")

    class Meta:
        model = Chip
        fields = ["sku", "architecture", "data_center", "fab_country", "assembly_country"]

    def search(self, queryset, name, value):
        from django.db.models import Q

        return queryset.filter(
            Q(sku__icontains=value) | Q(name__icontains=value) | Q(architecture__icontains=value)
        )


class HardwareTargetFilter(FilterSet):
    chip = IdFilter(field_name="chip_id")
    vendor = filters.CharFilter(field_name="chip__vendor__slug")

    class Meta:
        model = HardwareTarget
        fields = ["backend", "slug"]


class ModelArtifactFilter(FilterSet):
    task = filters.ChoiceFilter(choices=ModelTask.choices)
    architecture = filters.ChoiceFilter(choices=Architecture.choices)
    name = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = ModelArtifact
        fields = ["task", "architecture", "name", "version"]


class RunnerFilter(FilterSet):
    status = filters.ChoiceFilter(choices=RunnerStatus.choices)
    target = filters.CharFilter(field_name="targets__slug")

    class Meta:
        model = Runner
        fields = ["status", "target"]
