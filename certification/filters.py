"""Filters that refuse, with a 400 naming the parameter, values the database cannot take.

SQLite raises OverflowError for an integer past 64 bits; PostgreSQL refuses a UTC offset past
+-15:59 ("time zone displacement out of range"), and a datetime near year 1 or 9999 overflows when
converted to UTC. django-filter hands all of these to the database as they come, so each was a 500.
The FilterSet here also bounds the filters django-filter generates for `Meta.fields` and
`filterset_fields` (foreign keys, integers, datetimes); the DRF backend uses it as its base.
"""

from __future__ import annotations

from datetime import UTC, timedelta

import django_filters as filters
from django import forms
from django.db import models
from django_filters import fields as filter_fields
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.rest_framework import FilterSet as RestFilterSet

MAX_ID = 2**63 - 1  # BIGINT, and SQLite's INTEGER
MIN_INT = -(2**63)
MAX_OFFSET = timedelta(hours=14)  # the largest offset in use (Kiribati, UTC+14; the lowest is UTC-12)


class IdField(forms.IntegerField):
    """A primary key: a whole number from 1 to 2**63 - 1."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class IdFilter(filters.Filter):
    """Filter on an id (`chip=12`, `campaign=3`); out of range or not a whole number is a 400."""

    field_class = IdField


class BoundedIntegerField(forms.IntegerField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", MIN_INT)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class BoundedIntegerFilter(filters.Filter):
    field_class = BoundedIntegerField


class BoundedModelChoiceField(filter_fields.ModelChoiceField):
    """A choice by primary key that refuses a key no row can have before it reaches the database."""

    def to_python(self, value):
        pk = self.queryset.model._meta.pk
        if (
            value not in self.empty_values
            and self.to_field_name is None
            and isinstance(pk, models.AutoField | models.BigAutoField | models.IntegerField)
        ):
            try:
                number = int(str(value))
            except ValueError:
                number = None
            if number is None or not MIN_INT <= number <= MAX_ID:
                raise forms.ValidationError(
                    self.error_messages["invalid_choice"], code="invalid_choice", params={"value": value}
                )
        return super().to_python(value)


class BoundedModelChoiceFilter(filters.ModelChoiceFilter):
    field_class = BoundedModelChoiceField


class BoundedIsoDateTimeField(filter_fields.IsoDateTimeField):
    """ISO 8601 with an offset no further than +-14:00, converted to UTC (a 400 if it cannot be)."""

    default_error_messages = {
        "offset": "The UTC offset must lie between -14:00 and +14:00.",
        "range": "This date and time is out of range.",
    }

    def to_python(self, value):
        try:
            moment = super().to_python(value)
        except OverflowError:
            raise forms.ValidationError(self.error_messages["range"], code="range") from None
        if moment is None:
            return None
        offset = moment.utcoffset()
        if offset is not None and abs(offset) > MAX_OFFSET:
            raise forms.ValidationError(self.error_messages["offset"], code="offset")
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError(self.error_messages["range"], code="range") from None


class BoundedIsoDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = BoundedIsoDateTimeField


def _bounded(defaults: dict) -> dict:
    """django-filter's generated-filter table, with integers, foreign keys and datetimes bounded."""
    integer_fields = (
        models.AutoField,
        models.BigAutoField,
        models.SmallAutoField,
        models.IntegerField,
        models.BigIntegerField,
        models.SmallIntegerField,
        models.PositiveIntegerField,
        models.PositiveBigIntegerField,
        models.PositiveSmallIntegerField,
    )
    return {
        **defaults,
        **{field: {"filter_class": BoundedIntegerFilter} for field in integer_fields},
        models.DateTimeField: {"filter_class": BoundedIsoDateTimeFilter},
        models.ForeignKey: {**defaults[models.ForeignKey], "filter_class": BoundedModelChoiceFilter},
        models.OneToOneField: {**defaults[models.OneToOneField], "filter_class": BoundedModelChoiceFilter},
    }


class FilterSet(filters.FilterSet):
    """django-filter's FilterSet with the filters it generates for `Meta.fields` bounded."""

    FILTER_DEFAULTS = _bounded(filters.FilterSet.FILTER_DEFAULTS)


class BoundedRestFilterSet(RestFilterSet):
    """The same for the REST flavour DRF's backend builds from a view's `filterset_fields`."""

    FILTER_DEFAULTS = _bounded(RestFilterSet.FILTER_DEFAULTS)


class FilterBackend(DjangoFilterBackend):
    """DRF's django-filter backend; filtersets it builds from `filterset_fields` are bounded."""

    filterset_base = BoundedRestFilterSet
