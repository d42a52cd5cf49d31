"""The vendors' self-service pages (issue 17, item 2): register and edit chips and hardware targets,
upload models with a progress bar, manage one's API tokens and the organization's webhook endpoints
(with their delivery log and a test event).

Every write goes through the same service the API calls (apps.registry.services,
apps.accounts.services), so the validation, the audit events and the certified-subject rule (a
refused edit of a certified chip) are the API's. A vendor's foreign object is a 404, as in the API.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import Membership
from apps.accounts.selectors import api_tokens_of
from apps.accounts.services import api_token_create, api_token_revoke
from apps.notifications.models import WebhookEndpoint
from apps.notifications.selectors import webhook_deliveries_of, webhook_endpoints_of
from apps.notifications.services import webhook_endpoint_create, webhook_endpoint_delete, webhook_test_send
from apps.portal.access import is_vendor, member_required
from apps.portal.forms import form_error_from
from apps.portal.vendor_forms import (
    ChipForm,
    ModelUploadForm,
    TargetForm,
    TokenCreateForm,
    WebhookEndpointForm,
)
from apps.registry import services
from apps.registry.selectors import chips_visible_to, targets_visible_to
from apps.registry.weights import HashingUploadHandler


def _membership(request: HttpRequest) -> Membership:
    """The member's membership, which member_required put on the request."""
    membership: Membership = request.membership  # type: ignore[attr-defined]
    return membership


def _render_form(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    status = 400 if request.method == "POST" else 200
    return render(request, template, context, status=status)


@require_http_methods(["GET", "POST"])
@member_required(is_vendor)
def chip_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Register a chip (no pk) or edit one of the vendor's own chips."""
    chip = None
    if pk is not None:
        chip = chips_visible_to(_membership(request)).filter(pk=pk).first()
        if chip is None:
            raise Http404("No such chip.")
    initial = ChipForm.initial_of(chip) if chip is not None else None
    form = ChipForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            if chip is None:
                chip = services.chip_create(
                    vendor=_membership(request).organization, actor=request.user, **form.service_arguments()
                )
                done = _("Chip %(sku)s registered.")
            else:
                chip = services.chip_update(chip=chip, actor=request.user, **form.service_arguments())
                done = _("Chip %(sku)s saved.")
        except (ValidationError, PermissionDenied) as error:
            form_error_from(form, error)
            if pk is not None:  # the refused edit was rolled back: show the stored chip's figures
                chip = chips_visible_to(_membership(request)).get(pk=pk)
        else:
            messages.success(request, done % {"sku": chip.sku})
            return redirect("portal:chips")
    return _render_form(request, "portal/chip_form.html", {"form": form, "chip": chip})


@require_http_methods(["GET", "POST"])
@member_required(is_vendor)
def target_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Register a hardware target of one of the vendor's chips (no pk), or edit one."""
    target = None
    if pk is not None:
        target = targets_visible_to(_membership(request)).select_related("chip").filter(pk=pk).first()
        if target is None:
            raise Http404("No such hardware target.")
    initial = TargetForm.initial_of(target) if target is not None else None
    form = TargetForm(request.POST or None, initial=initial, membership=_membership(request))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            if target is None:
                target = services.target_create(actor=request.user, **data)
                done = _("Hardware target %(slug)s registered; its runner queue is %(queue)s.")
            else:
                target = services.target_update(target=target, actor=request.user, **data)
                done = _("Hardware target %(slug)s saved.")
        except (ValidationError, PermissionDenied) as error:
            form_error_from(form, error)
        else:
            messages.success(request, done % {"slug": target.slug, "queue": target.queue})
            return redirect("portal:targets")
    has_chips = form.fields["chip"].queryset.exists()  # type: ignore[attr-defined]
    return _render_form(
        request, "portal/target_form.html", {"form": form, "target": target, "has_chips": has_chips}
    )


@csrf_exempt  # checked below, once the upload handler is in place (reading the token reads the body)
@require_http_methods(["GET", "POST"])
@member_required(is_vendor)
def model_upload(request: HttpRequest) -> HttpResponse:
    """Upload a model: the weights are hashed while they stream to disk, as in the API."""
    request.upload_handlers = [HashingUploadHandler(request)]
    return _model_upload(request)


@csrf_protect
def _model_upload(request: HttpRequest) -> HttpResponse:
    limit = settings.ARTIFACT_MAX_UPLOAD_BYTES
    declared_length = int(request.META.get("CONTENT_LENGTH") or 0)
    if request.method == "POST" and declared_length > limit + 1024 * 1024:
        # Refused before the body is read, as the API does (413).
        form = ModelUploadForm(max_bytes=limit)
        form.add_error(None, _("Uploads are limited to %(limit)s bytes.") % {"limit": limit})
        return render(request, "portal/model_form.html", {"form": form, "limit": limit}, status=413)
    form = ModelUploadForm(request.POST or None, request.FILES or None, max_bytes=limit)
    if request.method == "POST" and form.is_valid():
        try:
            artifact = services.model_artifact_create(
                owner=_membership(request).organization, actor=request.user, **form.cleaned_data
            )
        except (ValidationError, PermissionDenied) as error:
            form_error_from(form, error)
        else:
            messages.success(
                request,
                _("Model %(name)s %(version)s registered (%(count)s tensors, sha256 %(sha)s).")
                % {
                    "name": artifact.name,
                    "version": artifact.version,
                    "count": artifact.tensor_count,
                    "sha": artifact.weights_sha256[:16],
                },
            )
            return redirect("portal:models")
    return _render_form(request, "portal/model_form.html", {"form": form, "limit": limit})


@require_http_methods(["GET", "POST"])
@member_required()
def api_tokens(request: HttpRequest) -> HttpResponse:
    """The member's API tokens with their last use; a created token's secret is shown once, here."""
    form = TokenCreateForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data["ttl_days"]
        try:
            token, secret = api_token_create(
                user=request.user,
                name=form.cleaned_data["name"],
                ttl=None if days is None else timedelta(days=days),
                actor=request.user,
            )
        except ValidationError as error:
            form_error_from(form, error)
        else:
            form = TokenCreateForm()
    status = 400 if request.method == "POST" and secret is None else 200
    response = render(
        request,
        "portal/tokens.html",
        {"form": form, "secret": secret, "tokens": api_tokens_of(user=request.user)},
        status=status,
    )
    if secret is not None:
        response["Cache-Control"] = "no-store"  # the secret is on this page only
    return response


@require_POST
@member_required()
def api_token_revoke_view(request: HttpRequest, key: str) -> HttpResponse:
    if api_token_revoke(user=request.user, token_key=key, actor=request.user):
        messages.success(request, _("Token %(key)s revoked; it can no longer authenticate.") % {"key": key})
    else:
        messages.error(request, _("No token of yours starts with %(key)s.") % {"key": key})
    return redirect("portal:tokens")


# Webhook endpoints ------------------------------------------------------------------------------


def _endpoint_or_404(request: HttpRequest, pk: int) -> WebhookEndpoint:
    endpoint = webhook_endpoints_of(organization=_membership(request).organization).filter(pk=pk).first()
    if endpoint is None:
        raise Http404("No such webhook endpoint.")
    return endpoint


@require_http_methods(["GET", "POST"])
@member_required(is_vendor)
def webhooks(request: HttpRequest) -> HttpResponse:
    """The organization's webhook endpoints; a new one's signing secret is shown once, here."""
    form = WebhookEndpointForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        try:
            _, secret = webhook_endpoint_create(
                organization=_membership(request).organization, actor=request.user, **form.cleaned_data
            )
        except ValidationError as error:
            form_error_from(form, error)
        else:
            form = WebhookEndpointForm()
    response = render(
        request,
        "portal/webhooks.html",
        {
            "form": form,
            "secret": secret,
            "endpoints": webhook_endpoints_of(organization=_membership(request).organization),
        },
        status=400 if request.method == "POST" and secret is None else 200,
    )
    if secret is not None:
        response["Cache-Control"] = "no-store"
    return response


@require_GET
@member_required(is_vendor)
def webhook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint_or_404(request, pk)
    return render(
        request,
        "portal/webhook_detail.html",
        {"endpoint": endpoint, "deliveries": webhook_deliveries_of(endpoint=endpoint)},
    )


@require_POST
@member_required(is_vendor)
def webhook_test(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint_or_404(request, pk)
    event = webhook_test_send(endpoint=endpoint, actor=request.user)
    messages.success(
        request, _("Test event %(id)s queued; its delivery appears below.") % {"id": event.msg_id}
    )
    return redirect("portal:webhook-detail", pk=endpoint.pk)


@require_POST
@member_required(is_vendor)
def webhook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint_or_404(request, pk)
    webhook_endpoint_delete(endpoint=endpoint, actor=request.user)
    messages.success(request, _("Webhook endpoint %(url)s deleted.") % {"url": endpoint.url})
    return redirect("portal:webhooks")
