"""Campaign pages: the reviewers' work queue, campaign lists and the evidence page with its review
forms, live progress as JSON, and the vendors' submission form."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.certificates.models import Certificate
from apps.certificates.selectors import campaign_criterion_results, campaign_reviews
from apps.certificates.services import criterion_waive, review_approve, review_reject
from apps.portal.access import (
    is_authority,
    is_vendor,
    is_vendor_or_authority,
    member_required,
    review_refusal,
)
from apps.portal.evidence import campaign_evidence
from apps.portal.forms import CampaignSubmitForm, ReasonForm, WaiveForm, form_error_from
from apps.portal.selectors import review_queue
from apps.runs.filters import CampaignFilter
from apps.runs.models import Campaign, CampaignState
from apps.runs.selectors import campaigns_visible_to
from apps.runs.services.campaigns import campaign_cancel, campaign_submit
from apps.runs.transitions import campaign_can_cancel, campaign_in_progress
from certification.recorded_text import localize

PAGE_SIZE = 50


@require_GET
@member_required(is_authority)
def queue(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    campaigns = list(review_queue()[:200])
    for campaign in campaigns:
        campaign.age = now - campaign.waiting_since
    return render(request, "portal/queue.html", {"campaigns": campaigns})


@require_GET
@member_required(is_vendor_or_authority)
def campaign_list(request: HttpRequest) -> HttpResponse:
    visible = (
        campaigns_visible_to(request.membership)
        .prefetch_related(None)
        .select_related("target__chip", "program", "vendor")
    )
    filterset = CampaignFilter(request.GET or None, queryset=visible)
    campaigns = filterset.qs if filterset.is_bound and filterset.is_valid() else visible
    page = Paginator(campaigns.order_by("-created_at", "-pk"), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "portal/campaign_list.html",
        {
            "page": page,
            "filterset": filterset,
            "states": CampaignState.choices,
            "query": query.urlencode(),
            "selected_states": request.GET.getlist("state"),
        },
    )


def _campaign_or_404(request: HttpRequest, pk: int) -> Campaign:
    """The campaign if the member may see it; a foreign vendor's campaign reads as missing."""
    campaign = campaigns_visible_to(request.membership).filter(pk=pk).first()
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


def _campaign_page(
    request: HttpRequest, campaign: Campaign, *, forms: dict | None = None, status: int = 200
) -> HttpResponse:
    criteria = campaign_criterion_results(campaign=campaign)
    reviews = campaign_reviews(campaign=campaign)
    refusal = review_refusal(
        membership=request.membership,
        user=request.user,
        campaign=campaign,
        reviewed=any(r.reviewer_id == request.user.pk for r in reviews),
    )
    failed_blockers = [c for c in criteria if c.is_failed_blocker]
    forms = forms or {}
    certificate = Certificate.objects.filter(campaign=campaign).only("serial", "status").first()
    waive_forms = {
        c.criterion_id: forms.get(f"waive-{c.criterion_id}")
        or WaiveForm(prefix=f"waive-{c.criterion_id}", initial={"criterion": c.criterion_id})
        for c in criteria
        if c.outcome == "fail" and not c.blocker and not c.waived
    }
    # Forms the panel shows with their fields; any other bound form (a refused action the page no
    # longer offers) still shows its errors at the top of the panel.
    in_place = set()
    if refusal is None:
        in_place = {"reject", *(f"waive-{c}" for c in waive_forms)} | (
            {"approve"} if not failed_blockers else set()
        )
    can_cancel = bool(request.membership and request.membership.is_vendor) and campaign_can_cancel(campaign)
    if can_cancel:
        in_place.add("cancel")
    context = {
        "error_forms": [form for key, form in forms.items() if key not in in_place],
        "campaign": campaign,
        "chip": campaign.target.chip,
        "jobs": list(campaign.jobs.all()),
        "criteria": criteria,
        "reviews": reviews,
        "evidence": campaign_evidence(campaign=campaign, criteria=criteria),
        "certificate": certificate,
        "is_active": campaign_in_progress(campaign),
        "review_refusal": refusal,
        "can_review": refusal is None,
        "can_approve": refusal is None and not failed_blockers,
        "failed_blockers": failed_blockers,
        "approve_form": forms.get("approve") or ReasonForm(prefix="approve"),
        "reject_form": forms.get("reject") or ReasonForm(prefix="reject"),
        "waive_forms": waive_forms,
        "can_cancel": can_cancel,
        "cancel_form": forms.get("cancel") or ReasonForm(prefix="cancel"),
    }
    return render(request, "portal/campaign_detail.html", context, status=status)


@require_GET
@member_required(is_vendor_or_authority)
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _campaign_page(request, _campaign_or_404(request, pk))


@require_GET
@member_required(is_vendor_or_authority)
def campaign_progress(request: HttpRequest, pk: int) -> JsonResponse:
    """What the progress bars poll: the campaign's state and each job's progress (no challenges)."""
    campaign = _campaign_or_404(request, pk)
    return JsonResponse(
        {
            "id": campaign.pk,
            "state": campaign.state,
            "state_display": campaign.get_state_display(),
            "active": campaign_in_progress(campaign),
            "jobs": [
                {
                    "id": job.pk,
                    "suite": job.suite,
                    "state": job.state,
                    "state_display": job.get_state_display(),
                    "progress": round(job.progress or 0.0, 4),
                    "message": localize(job.progress_message),
                    "eta_seconds": job.eta_seconds,
                }
                for job in campaign.jobs.all()
            ],
        }
    )


def _decide(request: HttpRequest, pk: int, key: str, act) -> HttpResponse:
    """Run one review service from a bound form; on refusal, the campaign page with the error in place."""
    campaign = _campaign_or_404(request, pk)
    form_class = WaiveForm if key.startswith("waive") else ReasonForm
    if key == "waive":
        key = f"waive-{request.POST.get('criterion', '')}"
    form = form_class(request.POST, prefix=key)
    if form.is_valid():
        try:
            message = act(campaign, form.cleaned_data)
        except (ValidationError, PermissionDenied) as error:
            form_error_from(form, error)
        else:
            messages.success(request, message)
            return redirect("portal:campaign-detail", pk=campaign.pk)
    campaign = _campaign_or_404(request, pk)  # re-read: a refused service may have seen a newer state
    return _campaign_page(request, campaign, forms={key: form}, status=400)


@require_POST
@member_required(is_authority)
def campaign_approve(request: HttpRequest, pk: int) -> HttpResponse:
    def act(campaign, data):
        review_approve(campaign=campaign, reviewer=request.user, reason=data["reason"])
        campaign.refresh_from_db()
        if campaign.state == CampaignState.APPROVED:
            return gettext("Approved. Certificate %(serial)s issued.") % {
                "serial": campaign.certificate.serial
            }
        return gettext("Approval recorded; the program needs another reviewer's approval.")

    return _decide(request, pk, "approve", act)


@require_POST
@member_required(is_authority)
def campaign_reject(request: HttpRequest, pk: int) -> HttpResponse:
    def act(campaign, data):
        review_reject(campaign=campaign, reviewer=request.user, reason=data["reason"])
        return gettext("Rejected. The vendor sees your reason.")

    return _decide(request, pk, "reject", act)


@require_POST
@member_required(is_authority)
def criterion_waive_view(request: HttpRequest, pk: int) -> HttpResponse:
    def act(campaign, data):
        criterion_waive(
            campaign=campaign, criterion_id=data["criterion"], reviewer=request.user, reason=data["reason"]
        )
        return gettext("Criterion %(criterion)s waived; it stays a note on the certificate.") % {
            "criterion": data["criterion"]
        }

    return _decide(request, pk, "waive", act)


@require_POST
@member_required(is_vendor)
def campaign_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    def act(campaign, data):
        campaign_cancel(campaign=campaign, actor=request.user, reason=data["reason"])
        return gettext("Campaign cancelled; its queued jobs will not run.")

    return _decide(request, pk, "cancel", act)


@require_http_methods(["GET", "POST"])
@member_required(is_vendor)
def campaign_submit_view(request: HttpRequest) -> HttpResponse:
    form = CampaignSubmitForm(request.POST or None, membership=request.membership)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                campaign = campaign_submit(
                    vendor=request.membership.organization,
                    target=data["target"],
                    program=data["program"],
                    level=data["level"],
                    model_artifacts=list(data["models"]),
                    submitted_by=request.user,
                )
        except ValidationError as error:
            form_error_from(form, error)
        else:
            messages.success(
                request,
                gettext("Campaign %(pk)s submitted; its jobs are queued on %(target)s.")
                % {"pk": campaign.pk, "target": campaign.target.slug},
            )
            return redirect("portal:campaign-detail", pk=campaign.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "portal/campaign_submit.html", {"form": form}, status=status)
