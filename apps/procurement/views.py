"""Portal pages of procurement. Thin: forms in, services and selectors, templates out.

Tender pages belong to buyers (another organization's tender is 404); the certified registry and
the classification pages are for every signed-in member."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_POST

from apps.accounts.guards import is_buyer, member_required
from apps.procurement import reports, selectors, services
from apps.procurement.export_control import rule_current
from apps.procurement.filters import TenderFilter
from apps.procurement.forms import RequirementRows, ScoringRows, TenderForm
from apps.procurement.models import RequirementKind, ScoreMetric
from apps.procurement.reports import evaluation_csv_response
from apps.procurement.requirements import (
    SERVING_PERCENTILE_DEFAULT,
    SERVING_PERCENTILE_SOURCE,
    tender_requirements_described,
)

CHARTS = {
    "measured-vs-declared": reports.chart_measured_vs_declared,
    "perf-per-watt": reports.chart_perf_per_watt,
}


buyer_required = member_required(is_buyer, message=gettext_lazy("Only buyers use tenders."))
# Every signed-in member of an organization (the registry and the classification are not buyers' alone).
organization_member_required = member_required(
    message=gettext_lazy("Your account does not belong to any organization.")
)


@buyer_required
def tender_list(request):
    membership = request.membership
    tenders = TenderFilter(request.GET, queryset=selectors.tenders_of(membership)).qs
    return render(
        request, "procurement/tender_list.html", {"tenders": tenders, "q": request.GET.get("q", "")}
    )


def _formsets(request):
    if request.method == "POST":
        return (
            TenderForm(request.POST),
            RequirementRows(request.POST, prefix="req"),
            ScoringRows(request.POST, prefix="score"),
        )
    return TenderForm(), RequirementRows(prefix="req"), ScoringRows(prefix="score")


@buyer_required
def tender_create(request):
    membership = request.membership
    form, rows, weights = _formsets(request)
    errors: list[str] = []
    if request.method == "POST" and all(f.is_valid() for f in (form, rows, weights)):
        requirements = [r for r in (row.requirement() for row in rows) if r]
        scoring = [s for s in (row.item() for row in weights) if s]
        if "more_rows" in request.POST:  # no JavaScript: the same form again, with more empty rows
            rows = RequirementRows(
                prefix="req", initial=[row.cleaned_data for row in rows if row.cleaned_data.get("kind")]
            )
            weights = ScoringRows(
                prefix="score", initial=[w.cleaned_data for w in weights if w.cleaned_data.get("metric")]
            )
        else:
            try:
                tender = services.tender_create(
                    organization=membership.organization,
                    created_by=request.user,
                    requirements=requirements,
                    scoring=scoring,
                    **form.cleaned_data,
                )
            except ValidationError as error:
                # A form field's problem under its label; a requirement's or a weight's names its row.
                labels = {name: field.label for name, field in form.fields.items()}
                errors = [
                    gettext("%(field)s: %(message)s") % {"field": labels[field], "message": m}
                    if field in labels
                    else m
                    for field, msgs in error.message_dict.items()
                    for m in msgs
                ]
            else:
                messages.success(
                    request, gettext("Tender %(reference)s created.") % {"reference": tender.reference}
                )
                return redirect("procurement:tender-detail", pk=tender.pk)
    vocabulary = selectors.requirement_vocabulary()
    return render(
        request,
        "procurement/tender_form.html",
        {
            "form": form,
            "rows": rows,
            "weights": weights,
            "errors": errors,
            "vocabulary": vocabulary,
            "kinds": RequirementKind.choices,
            "metrics": ScoreMetric.choices,
            "percentile_default": SERVING_PERCENTILE_DEFAULT,
            "percentile_source": SERVING_PERCENTILE_SOURCE,
        },
    )


@buyer_required
def tender_detail(request, pk: int):
    tender = get_object_or_404(selectors.tenders_of(request.membership), pk=pk)
    evaluations = selectors.evaluations_of(request.membership).filter(tender=tender)
    return render(
        request,
        "procurement/tender_detail.html",
        {
            "tender": tender,
            "requirements": tender_requirements_described(tender),
            "evaluations": evaluations,
        },
    )


@buyer_required
@require_POST
def tender_evaluate(request, pk: int):
    tender = get_object_or_404(selectors.tenders_of(request.membership), pk=pk)
    evaluation = services.evaluation_create(tender=tender, actor=request.user)
    return redirect("procurement:evaluation-detail", pk=evaluation.pk)


@buyer_required
@require_POST
def tender_delete(request, pk: int):
    tender = get_object_or_404(selectors.tenders_of(request.membership), pk=pk)
    try:
        services.tender_delete(tender=tender, actor=request.user)
    except ProtectedError:
        messages.error(request, gettext("This tender has saved evaluations (an audit trail); it is kept."))
        return redirect("procurement:tender-detail", pk=pk)
    messages.success(request, gettext("Tender %(reference)s deleted.") % {"reference": tender.reference})
    return redirect("procurement:tender-list")


def _evaluation(request, pk: int):
    return get_object_or_404(selectors.evaluations_of(request.membership), pk=pk)


@buyer_required
def evaluation_detail(request, pk: int):
    evaluation = _evaluation(request, pk)
    return render(
        request,
        "procurement/evaluation_detail.html",
        {
            "evaluation": evaluation,
            "s": evaluation.snapshot,
            "chart_rows": reports.chart_rows(snapshot=evaluation.snapshot),
        },
    )


@buyer_required
def evaluation_report(request, pk: int):
    """Printable: the same matrix, the ranking and the charts, on paper-friendly CSS."""
    evaluation = _evaluation(request, pk)
    charts = [chart(snapshot=evaluation.snapshot) for chart in CHARTS.values()]
    return render(
        request,
        "procurement/evaluation_report.html",
        {
            "evaluation": evaluation,
            "s": evaluation.snapshot,
            "charts": charts,
            "chart_rows": reports.chart_rows(snapshot=evaluation.snapshot),
        },
    )


@buyer_required
def evaluation_csv(request, pk: int):
    return evaluation_csv_response(_evaluation(request, pk))


@buyer_required
def evaluation_chart(request, pk: int, name: str):
    chart = CHARTS.get(name)
    if chart is None:
        return HttpResponse(status=404)
    return HttpResponse(chart(snapshot=_evaluation(request, pk).snapshot), content_type="image/svg+xml")


@organization_member_required
def registry(request):
    candidates = selectors.certified_candidates()
    return render(request, "procurement/registry.html", {"candidates": candidates})


@organization_member_required
def classification_list(request):
    rule = rule_current()
    entries = selectors.chip_classifications(
        chips=selectors.classifiable_chips(request.membership), rule=rule
    )
    return render(request, "procurement/classification_list.html", {"entries": entries, "rule": rule})


@organization_member_required
def chip_classification(request, pk: int):
    chip = get_object_or_404(selectors.classifiable_chips(request.membership), pk=pk)
    rule = rule_current()
    entry = selectors.chip_classifications(chips=[chip], rule=rule)[0]
    return render(request, "procurement/classification.html", {"e": entry, "rule": rule})
