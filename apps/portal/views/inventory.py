"""Registry objects as lists: a vendor's own chips, targets and models (the authority sees all),
filtered by the API's FilterSets; the runners and the beat schedules for the authority."""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.portal.access import is_authority, is_vendor_or_authority, member_required
from apps.portal.selectors import periodic_tasks, runner_rows
from apps.registry.filters import ChipFilter, HardwareTargetFilter, ModelArtifactFilter
from apps.registry.models import PEAK_FIELDS
from apps.registry.selectors import (
    chips_visible_to,
    model_artifacts_visible_to,
    runners_visible_to,
    targets_visible_to,
)

PAGE_SIZE = 50


def _listing(request: HttpRequest, template: str, filter_class, queryset, **extra) -> HttpResponse:
    filterset = filter_class(request.GET or None, queryset=queryset)
    rows = filterset.qs if filterset.is_bound and filterset.is_valid() else queryset
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request, template, {"page": page, "filterset": filterset, "query": query.urlencode(), **extra}
    )


@require_GET
@member_required(is_vendor_or_authority)
def chips(request: HttpRequest) -> HttpResponse:
    return _listing(
        request,
        "portal/chips.html",
        ChipFilter,
        chips_visible_to(request.membership),
        peak_fields=list(PEAK_FIELDS.items()),
    )


@require_GET
@member_required(is_vendor_or_authority)
def targets(request: HttpRequest) -> HttpResponse:
    return _listing(
        request,
        "portal/targets.html",
        HardwareTargetFilter,
        targets_visible_to(request.membership).prefetch_related("runners"),
    )


@require_GET
@member_required(is_vendor_or_authority)
def models(request: HttpRequest) -> HttpResponse:
    return _listing(
        request,
        "portal/models.html",
        ModelArtifactFilter,
        model_artifacts_visible_to(request.membership).defer("config"),
    )


@require_GET
@member_required(is_authority)
def runners(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "portal/runners.html",
        {
            "runners": runner_rows(
                runners=runners_visible_to(request.membership), stale_after_s=settings.RUNNER_STALE_AFTER_S
            ),
            "stale_after_s": settings.RUNNER_STALE_AFTER_S,
            "schedules": periodic_tasks(),
            "show_admin": request.user.is_staff,
        },
    )
