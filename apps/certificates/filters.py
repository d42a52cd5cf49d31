"""The certificate FilterSet, shared by the public API and the portal's certificate list.

Chip, target and backend filter on what was signed (the certificate's subject_* columns), never on
the live registry rows, which a vendor may have edited since.
"""

from __future__ import annotations

import django_filters as filters
from django.db.models import Q
from django.utils import timezone

from apps.certificates.models import Certificate, CertificateStatus


class CertificateFilter(filters.FilterSet):
    """Without a `status` parameter only active certificates are listed; `status=all` lists every one."""

    vendor = filters.CharFilter(field_name="vendor__slug")
    backend = filters.CharFilter(field_name="subject_backend")
    target = filters.CharFilter(field_name="subject_target_slug")
    program = filters.CharFilter(field_name="program__code", lookup_expr="iexact")
    version = filters.CharFilter(field_name="program__version")
    level = filters.CharFilter()
    status = filters.ChoiceFilter(choices=[*CertificateStatus.choices, ("all", "All")], method="by_status")
    chip = filters.CharFilter(field_name="subject_chip_sku", lookup_expr="iexact", label="Chip SKU")
    q = filters.CharFilter(method="search", label="Search chip SKU or name, or serial")

    class Meta:
        model = Certificate
        fields = ["vendor", "backend", "target", "program", "version", "level", "status", "chip"]

    def __init__(self, data=None, *args, **kwargs):
        data = data.copy() if data is not None else {}
        if not data.get("status"):
            data["status"] = CertificateStatus.ACTIVE
        super().__init__(data, *args, **kwargs)

    def by_status(self, queryset, name, value):
        if value == "all":
            return queryset
        if value == CertificateStatus.ACTIVE:  # past its date is expired, even before the nightly sweep
            return queryset.filter(status=value, valid_until__gt=timezone.now())
        return queryset.filter(status=value)

    def search(self, queryset, name, value):
        return queryset.filter(
            Q(subject_chip_sku__icontains=value)
            | Q(subject_chip_name__icontains=value)
            | Q(serial__iexact=value)
        )
