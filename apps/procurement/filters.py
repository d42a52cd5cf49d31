"""FilterSets shared by the API and the portal lists, so both accept the same query parameters."""

from __future__ import annotations

import django_filters as filters
from django.db.models import Q

from apps.procurement.models import Tender
from certification.filters import BoundedIsoDateTimeFilter, FilterSet


class TenderFilter(FilterSet):
    q = filters.CharFilter(method="search", label="Search title or reference")
    deadline_after = BoundedIsoDateTimeFilter(field_name="deadline", lookup_expr="gte")
    deadline_before = BoundedIsoDateTimeFilter(field_name="deadline", lookup_expr="lte")

    class Meta:
        model = Tender
        fields = ["q", "deadline_after", "deadline_before", "currency"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(title__icontains=value) | Q(reference__icontains=value))
