"""The home page: a dashboard per role, or the public welcome for visitors."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from apps.accounts.selectors import membership_of, vendor_rows_visible_to
from apps.certificates.models import Certificate
from apps.portal.selectors import campaigns_running, registry_certificates, review_queue, runner_rows
from apps.registry.selectors import (
    chips_visible_to,
    model_artifacts_visible_to,
    runners_visible_to,
    targets_visible_to,
)
from apps.runs.selectors import campaigns_visible_to

RECENT = 10


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    membership = membership_of(request.user)
    recent_certificates = list(registry_certificates().order_by("-issued_at", "-id")[:RECENT])
    if membership is None:
        return render(
            request,
            "portal/home_public.html",
            {
                "certificates": recent_certificates,
                "signed_in": request.user.is_authenticated,
            },
        )
    if membership.is_authority:
        return _authority(request, membership, recent_certificates)
    if membership.is_vendor:
        return _vendor(request, membership)
    return render(
        request, "portal/home_buyer.html", {"membership": membership, "certificates": recent_certificates}
    )


def _authority(request, membership, recent_certificates) -> HttpResponse:
    now = timezone.now()
    queue = list(review_queue()[:RECENT])
    for campaign in queue:
        campaign.age = now - campaign.waiting_since
    visible = campaigns_visible_to(membership)
    runners = runner_rows(
        runners=runners_visible_to(membership), stale_after_s=settings.RUNNER_STALE_AFTER_S, now=now
    )
    return render(
        request,
        "portal/home_authority.html",
        {
            "queue": queue,
            "queue_count": review_queue().count(),
            "running": list(campaigns_running(visible)[:RECENT]),
            "certificates": recent_certificates,
            "runners": runners,
            "stale_runners": [r for r in runners if r.stale],
        },
    )


def _vendor(request, membership) -> HttpResponse:
    campaigns = campaigns_visible_to(membership)
    certificates = list(
        vendor_rows_visible_to(Certificate.objects.all(), membership, owner="vendor_id")
        .select_related("program", "vendor", "chip", "target")
        .order_by("-issued_at")[:RECENT]
    )
    return render(
        request,
        "portal/home_vendor.html",
        {
            "campaigns": list(campaigns.order_by("-created_at")[:RECENT]),
            "running": list(campaigns_running(campaigns)[:RECENT]),
            "certificates": certificates,
            "chip_count": chips_visible_to(membership).count(),
            "target_count": targets_visible_to(membership).count(),
            "model_count": model_artifacts_visible_to(membership).count(),
        },
    )
