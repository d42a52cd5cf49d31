"""The public registry (no login): certified chips filtered with the API's CertificateFilter,
sortable and paginated; the printable certificate page with its verification; comparisons; and
the reviewers' suspend / reinstate / revoke forms on the certificate page."""

from __future__ import annotations

import json
from typing import Any

import segno
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.selectors import membership_of
from apps.certificates.evidence_bundle import (
    EvidenceAltered,
    EvidenceNotPublic,
    certificate_evidence_bundle,
    evidence_is_public,
)
from apps.certificates.filters import CertificateFilter
from apps.certificates.models import Certificate, CertificateStatus
from apps.certificates.public_reads import anonymous_page_cached
from apps.certificates.selectors import certificate_by_serial, certificate_status_history
from apps.certificates.services import (
    certificate_check,
    certificate_reinstate,
    certificate_revoke,
    certificate_suspend,
)
from apps.certificates.serving import serving_rows
from apps.portal.access import is_authority, is_reviewer, member_required
from apps.portal.charts import compare_svg
from apps.portal.forms import ReasonForm, form_error_from
from apps.portal.selectors import (
    REGISTRY_ORDERING,
    certificates_compared,
    registry_certificates,
    registry_facets,
    registry_ordering,
)
from apps.registry.models import PEAK_FIELDS
from certification.spreadsheet import csv_writer

PAGE_SIZE = 50
REGISTRY_EXPORT_MAX = 10_000  # rows in one export; the API pages beyond
COMPARE_MIN, COMPARE_MAX = 2, 4


def _registry_rows(
    request: HttpRequest,
) -> tuple[CertificateFilter, QuerySet[Certificate], dict[str, Any] | None, str]:
    """The filtered, sorted certificates of the registry page and its exports, with the filter errors."""
    filterset = CertificateFilter(request.GET, queryset=registry_certificates())
    if filterset.is_valid():
        certificates, errors = filterset.qs, None
    else:  # a bad parameter shows its error above an empty table, as the API answers 400
        certificates, errors = Certificate.objects.none(), filterset.errors
    sort, ordering = registry_ordering(request.GET.get("ordering"))
    return filterset, certificates.order_by(*ordering), errors, sort


# Anonymous visitors without a session get it from the public reads' cache, per language and zone; the
# language switcher's CSRF token is each visitor's own and is put into the shared body per answer.
@require_GET
@anonymous_page_cached
def registry(request: HttpRequest) -> HttpResponse:
    filterset, certificates, errors, sort = _registry_rows(request)
    page = Paginator(certificates, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    for key in ("page", "ordering", "serial"):
        query.pop(key, None)
    for key in [k for k, values in query.lists() if not any(values)]:
        query.pop(key)  # an empty filter means "any": keep links and the API example short
    export_query = request.GET.copy()
    export_query.pop("page", None)
    page_query = query.copy()
    if request.GET.get("ordering"):
        page_query["ordering"] = sort
    columns = [
        ("serial", _("Serial")),
        ("chip", _("Chip")),
        ("vendor", _("Vendor")),
        (None, _("Backend")),
        (None, _("Program")),
        ("level", _("Level")),
        ("status", _("Status")),
        ("issued_at", _("Issued")),
        ("valid_until", _("Valid until")),
    ]
    headers = []
    for key, label in columns:
        if key is None:
            headers.append({"label": label})
            continue
        current = sort.lstrip("-") == key
        descending = sort.startswith("-")
        headers.append(
            {
                "label": label,
                "key": key,
                "next": f"-{key}" if current and not descending else key,
                "aria_sort": ("descending" if descending else "ascending") if current else None,
            }
        )
    return render(
        request,
        "portal/registry.html",
        {
            "page": page,
            "filterset": filterset,
            "errors": errors,
            "facets": registry_facets(),
            "statuses": [*CertificateStatus.choices, ("all", _("All"))],
            "params": request.GET,
            "query": query.urlencode(),
            "page_query": page_query.urlencode(),
            "sort": sort,
            "headers": headers,
            "sortable": sorted(REGISTRY_ORDERING),
            "export_query": export_query.urlencode(),
        },
    )


# The exports' columns: what the registry page shows, from the signed subject (never the live rows).
EXPORT_COLUMNS = [
    ("serial", _("Serial")),
    ("chip_sku", _("Chip SKU")),
    ("chip_name", _("Chip name")),
    ("vendor", _("Vendor")),
    ("target", _("Hardware target")),
    ("backend", _("Backend")),
    ("program", _("Program")),
    ("level", _("Level")),
    ("status", _("Status")),
    ("issued_at", _("Issued")),
    ("valid_until", _("Valid until")),
    ("url", _("Certificate page")),
]


def _export_rows(request: HttpRequest, certificates: QuerySet[Certificate]) -> list[dict[str, Any]]:
    return [
        {
            "serial": c.serial,
            "chip_sku": c.subject_chip_sku,
            "chip_name": c.subject_chip_name,
            "vendor": c.vendor.name,
            "target": c.subject_target_slug,
            "backend": c.subject_backend,
            "program": f"{c.program.code} {c.program.version}",
            "level": c.level,
            "status": c.status,
            "issued_at": c.issued_at.isoformat(),
            "valid_until": c.valid_until.isoformat(),
            "url": request.build_absolute_uri(reverse("portal:certificate", kwargs={"serial": c.serial})),
        }
        for c in certificates[:REGISTRY_EXPORT_MAX]
    ]


@require_GET
def registry_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The registry's filtered, sorted list as CSV (UTF-8 with a BOM, for Excel) or JSON: the page's
    filters and ordering, every page at once (up to REGISTRY_EXPORT_MAX rows)."""
    if fmt not in ("csv", "json"):
        raise Http404("Exports are .csv or .json.")
    _, certificates, errors, _sort = _registry_rows(request)
    if errors:
        return JsonResponse({"errors": errors}, status=400)
    rows = _export_rows(request, certificates)
    stamp = timezone.now().strftime("%Y%m%d")
    if fmt == "json":
        response: HttpResponse = JsonResponse(
            {"count": len(rows), "filters": request.GET.dict(), "results": rows},
            json_dumps_params={"ensure_ascii": False},
        )
    else:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response.write("\ufeff")  # the BOM: Excel then reads the Chinese titles as UTF-8
        writer = csv_writer(response)  # vendor-given names never reach a spreadsheet as formulas
        writer.writerow([str(label) for _key, label in EXPORT_COLUMNS])
        for row in rows:
            writer.writerow([row[key] for key, _label in EXPORT_COLUMNS])
    response["Content-Disposition"] = f'attachment; filename="certified-registry-{stamp}.{fmt}"'
    return response


def _certificate_or_404(serial: str) -> Certificate:
    certificate = certificate_by_serial(serial=serial)
    if certificate is None:
        raise Http404("No certificate with this serial.")
    return certificate


def verification_qr_svg(url: str) -> str:
    """The printed certificate's QR code of its verification URL: inline SVG made by segno (ISO/IEC
    18004, error correction M), path data only, so the markup carries nothing a visitor could inject."""
    return mark_safe(segno.make(url, error="m").svg_inline(scale=3, dark="#000"))  # noqa: S308


def _certificate_page(
    request: HttpRequest, certificate: Certificate, *, forms: dict | None = None, status: int = 200
) -> HttpResponse:
    payload = json.loads(certificate.payload_json)
    forms = forms or {}
    may_act = is_reviewer(membership_of(request.user))
    verify_path = reverse("portal:certificate-verify", kwargs={"serial": certificate.serial})
    public_url = (settings.CERT_PUBLIC_URL or "").rstrip("/")
    verify_absolute_url = public_url + verify_path if public_url else request.build_absolute_uri(verify_path)
    context = {
        "certificate": certificate,
        "payload": payload,
        "check": certificate_check(certificate=certificate),
        "document_url": reverse("certificate-document", kwargs={"serial": certificate.serial}),
        "verify_url": reverse("portal:certificate-verify", kwargs={"serial": certificate.serial}),
        "verify_absolute_url": verify_absolute_url,
        "verify_qr_svg": verification_qr_svg(verify_absolute_url),
        "api_verify_url": reverse("certificate-verify", kwargs={"serial": certificate.serial}),
        "history": _history_shown(certificate),
        "keys_url": reverse("certification-keys"),
        "evidence_public": evidence_is_public(certificate),
        "may_suspend": may_act and certificate.status == CertificateStatus.ACTIVE,
        "may_reinstate": may_act and certificate.status == CertificateStatus.SUSPENDED,
        "may_revoke": may_act
        and certificate.status in (CertificateStatus.ACTIVE, CertificateStatus.SUSPENDED),
        "forms": {
            name: forms.get(name) or ReasonForm(prefix=name) for name in ("suspend", "reinstate", "revoke")
        },
        "issuer": settings.CERT_ISSUER_NAME or payload.get("issuer", {}).get("name", ""),
        "serving_rows": serving_rows(payload),
    }
    return render(request, "portal/certificate.html", context, status=status)


def _status_label(status: str | None) -> str | None:
    """A status as the history names it, lower case like its "issued" and "reinstated" (English reads
    "active → suspended" as before; zh-hans gets its label)."""
    return str(CertificateStatus(status).label).lower() if status in CertificateStatus.values else status


def _history_shown(certificate: Certificate) -> list[dict[str, Any]]:
    """The status history with each status named in the reader's language (the record keeps the codes)."""
    return [
        {**change, "from_label": _status_label(change["from"]), "to_label": _status_label(change["to"])}
        for change in certificate_status_history(certificate=certificate)
    ]


@require_GET
def certificate_detail(request: HttpRequest, serial: str) -> HttpResponse:
    return _certificate_page(request, _certificate_or_404(serial))


@require_GET
def certificate_verify_page(request: HttpRequest, serial: str) -> HttpResponse:
    """The human verification page (where the printed certificate's URL leads): what was checked, and
    how to check it again without trusting this site."""
    certificate = _certificate_or_404(serial)
    payload = json.loads(certificate.payload_json)
    return render(
        request,
        "portal/certificate_verify.html",
        {
            "certificate": certificate,
            "payload": payload,
            "check": certificate_check(certificate=certificate),
            "history": _history_shown(certificate),
            "document_url": reverse("certificate-document", kwargs={"serial": certificate.serial}),
            "api_verify_url": reverse("certificate-verify", kwargs={"serial": certificate.serial}),
            "keys_url": reverse("certification-keys"),
        },
    )


@require_GET
def certificate_evidence(request: HttpRequest, serial: str) -> HttpResponse:
    """The evidence bundle (zip), where the certificate's program makes evidence public."""
    certificate = _certificate_or_404(serial)
    try:
        bundle = certificate_evidence_bundle(certificate=certificate)
    except EvidenceNotPublic:
        raise Http404("This certificate's program does not publish its evidence.") from None
    except EvidenceAltered as exc:
        return HttpResponse(
            f"The stored evidence no longer matches the certificate: {exc}.",
            status=409,
            content_type="text/plain",
        )
    response = HttpResponse(bundle, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{certificate.serial}-evidence.zip"'
    return response


STATUS_SERVICES = {
    "suspend": (certificate_suspend, _("Certificate %(serial)s suspended.")),
    "reinstate": (certificate_reinstate, _("Certificate %(serial)s reinstated.")),
    "revoke": (certificate_revoke, _("Certificate %(serial)s revoked.")),
}


@require_POST
@member_required(is_authority)
def certificate_status(request: HttpRequest, serial: str, action: str) -> HttpResponse:
    if action not in STATUS_SERVICES:
        raise Http404
    service, done = STATUS_SERVICES[action]
    certificate = _certificate_or_404(serial)
    form = ReasonForm(request.POST, prefix=action)
    if form.is_valid():
        try:
            service(certificate=certificate, reason=form.cleaned_data["reason"], actor=request.user)
        except (ValidationError, PermissionDenied) as error:
            form_error_from(form, error)
        else:
            messages.success(request, done % {"serial": certificate.serial})
            return redirect("portal:certificate", serial=certificate.serial)
    return _certificate_page(request, _certificate_or_404(serial), forms={action: form}, status=400)


@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    serials = list(dict.fromkeys(s.strip() for s in request.GET.getlist("serial") if s.strip()))
    error = None
    certificates: list[Certificate] = []
    if not COMPARE_MIN <= len(serials) <= COMPARE_MAX:
        error = _("Choose %(min)s to %(max)s certificates to compare (you chose %(n)s).") % {
            "min": COMPARE_MIN,
            "max": COMPARE_MAX,
            "n": len(serials),
        }
    else:
        certificates = certificates_compared(serials=serials)
        missing = [s for s in serials if s not in {c.serial for c in certificates}]
        if missing:
            error = _("No certificate with serial %(serials)s.") % {"serials": ", ".join(missing)}
    columns = []
    for certificate in certificates:
        payload = json.loads(certificate.payload_json)
        subject = payload.get("subject", {})
        columns.append(
            {
                "certificate": certificate,
                # What was certified, as signed; the live chip and target rows may have changed since.
                "chip": subject.get("chip", {}),
                "target": subject.get("target", {}),
                "best": payload.get("headline", {}).get("best_gemm_tflops", {}),
                "accuracy": payload.get("headline", {}).get("model_accuracy", []),
                "notes": payload.get("notes", []),
            }
        )
    peak_rows = [
        (key, [(c["chip"].get("declared_peak_tflops") or {}).get(key) for c in columns])
        for key in PEAK_FIELDS
    ]
    dtypes = sorted({d for c in columns for d in c["best"]})
    best_rows = [(dtype, [c["best"].get(dtype) for c in columns]) for dtype in dtypes]
    return render(
        request,
        "portal/compare.html",
        {
            "columns": columns,
            "error": error,
            "peak_rows": [r for r in peak_rows if any(v is not None for v in r[1])],
            "best_rows": best_rows,
            "best_chart": compare_svg(series=[c["certificate"].serial for c in columns], groups=best_rows),
        },
        status=400 if error else 200,
    )
