"""Portal forms: a tender with requirement rows and weight rows that work without JavaScript.

Every requirement row has the same inputs; each kind reads the ones it needs (listed beside the
form) and the service validates the meaning, so the form and the API refuse the same things.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.procurement.models import RequirementKind, ScoreMetric, default_currency
from apps.procurement.requirements import (
    DTYPES,
    ENERGY_METRICS,
    MODEL_METRICS,
    OPS,
    ORIGIN_FIELDS,
    SERVING_BOUNDS,
)

BLANK = [("", "—")]


def _choices(values) -> list[tuple[str, str]]:
    return BLANK + [(v, v) for v in values]


class TenderForm(forms.Form):
    title = forms.CharField(max_length=200, label=_("Title"))
    reference = forms.CharField(max_length=64, label=_("Reference"))
    description = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label=_("Description")
    )
    deadline = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    currency = forms.CharField(max_length=3, initial=default_currency, label=_("Currency"))  # CNY in zh-hans

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A datetime-local value has no zone: Django reads it in the viewer's zone; say which.
        self.fields["deadline"].label = _("Deadline (%(zone)s)") % {
            "zone": timezone.get_current_timezone_name()
        }


class RequirementRowForm(forms.Form):
    kind = forms.ChoiceField(choices=BLANK + list(RequirementKind.choices), required=False, label=_("Kind"))
    program = forms.CharField(required=False, max_length=32, label=_("Program"))
    level = forms.CharField(required=False, max_length=32, label=_("Level"))
    dtype = forms.ChoiceField(choices=_choices(DTYPES), required=False, label=_("Dtype"))
    model = forms.CharField(required=False, max_length=100, label=_("Model"))
    metric = forms.ChoiceField(
        choices=_choices((*MODEL_METRICS, *ENERGY_METRICS)), required=False, label=_("Metric")
    )
    op = forms.ChoiceField(choices=_choices(OPS), required=False, label=_("Op"))
    value = forms.FloatField(required=False, label=_("Value / bound"))
    bound = forms.FloatField(required=False, label=_("Bound (ms)"))
    # A serving requirement's percentile (a fraction); blank: MLPerf's Server percentile (requirements.py).
    percentile = forms.FloatField(required=False, label=_("Percentile"))
    field = forms.ChoiceField(choices=_choices(ORIGIN_FIELDS), required=False, label=_("Country of"))
    mode = forms.ChoiceField(choices=_choices(("in", "not_in")), required=False, label=_("Mode"))
    items = forms.CharField(required=False, max_length=300, label=_("Countries / classes / backends"))

    def requirement(self) -> dict | None:
        """{kind, params} for the service, or None for an empty row."""
        d = self.cleaned_data
        kind = d.get("kind")
        if not kind:
            return None
        items = [part for part in re.split(r"[\s,]+", d.get("items") or "") if part]
        params = {
            RequirementKind.CERTIFICATE_LEVEL: {"program": d["program"], "level": d["level"]},
            RequirementKind.CONFORMANCE_DTYPE: {"dtype": d["dtype"]},
            RequirementKind.MODEL_PERFORMANCE: {
                "model": d["model"],
                "dtype": d["dtype"],
                "metric": d["metric"],
                "bound": d["value"],
            },
            RequirementKind.ORIGIN_COUNTRY: {"field": d["field"], "countries": items},
            RequirementKind.EXPORT_CLASS: {"mode": d["mode"], "classes": items},
            RequirementKind.BACKEND: {"backends": items},
            RequirementKind.MEASURED_TFLOPS: {"dtype": d["dtype"], "min_tflops": d["value"]},
            RequirementKind.SERVING_QPS: {
                "model": d["model"],
                "dtype": d["dtype"],
                "min_qps": d["value"],
                "max_latency_ms": d.get("bound"),
                "percentile": d.get("percentile"),
            },
            RequirementKind.SERVING_TOKENS: {
                "model": d["model"],
                "dtype": d["dtype"],
                "min_tokens_per_s": d["value"],
                "max_tpot_ms": d.get("bound"),
                "percentile": d.get("percentile"),
            },
            RequirementKind.SERVING_ENERGY: {
                "model": d["model"],
                "dtype": d["dtype"],
                "metric": d["metric"],
                "bound": d["value"],
            },
        }.get(kind, {"op": d["op"], "value": d["value"]})
        return {"kind": kind, "params": params}


class ScoringRowForm(forms.Form):
    metric = forms.ChoiceField(choices=BLANK + list(ScoreMetric.choices), required=False, label=_("Metric"))
    weight = forms.FloatField(required=False, label=_("Weight"))
    model = forms.CharField(required=False, max_length=100, label=_("Model"))
    dtype = forms.ChoiceField(choices=_choices(DTYPES), required=False, label=_("Dtype"))
    # A serving weight's bound: the latency (Server QPS) or TPOT (tokens/s) bound its figures must meet.
    bound = forms.FloatField(required=False, label=_("Bound (ms)"))

    def item(self) -> dict | None:
        d = self.cleaned_data
        if not d.get("metric"):
            return None
        item = {"metric": d["metric"], "weight": d["weight"]}
        if d.get("model"):
            item.update(model=d["model"], dtype=d["dtype"])
        if d["metric"] in SERVING_BOUNDS and d.get("bound") is not None:
            item[SERVING_BOUNDS[d["metric"]][1]] = d["bound"]
        elif d.get("dtype"):  # a GEMM metric of one dtype
            item.update(dtype=d["dtype"])
        return item


RequirementRows = forms.formset_factory(RequirementRowForm, extra=6, max_num=40)
ScoringRows = forms.formset_factory(ScoringRowForm, extra=3, max_num=12)
