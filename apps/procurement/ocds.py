"""A tender and its latest saved evaluation as an OCDS 1.1 release package (Open Contracting Data Standard).

One release per tender (`ocid` = OCDS_OCID_PREFIX + "-tender-" + id) with:

- `tender`: reference, title, description, the submission deadline as tenderPeriod.endDate, the
  requirements as `eligibilityCriteria` (one numbered line each, as the platform words them; OCDS
  1.1's core schema has no structured criteria, which live in an extension this export does not
  claim) and the ranking formula as `awardCriteriaDetails`;
- `awards`: the latest evaluation's eligible candidates in rank order (status "pending": the
  evaluation ranks, it does not award), each naming the chip's vendor as supplier and linking the
  certificate it rests on (its signed document and its verifiable credential) as documents;
- `parties`: the buyer organization and every vendor that appears in an award.

Validated in the tests against the OCDS 1.1.5 release-package schema vendored in
apps/procurement/schemas/ocds-1.1.5/ (from open-contracting/standard at tag 1__1__5).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from apps.procurement.models import Evaluation, Tender

OCDS_VERSION = "1.1"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _party_id(prefix: str, name: str) -> str:
    return f"{prefix}-" + (re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() or "unnamed")


def ocid_of(tender: Tender) -> str:
    return f"{settings.OCDS_OCID_PREFIX}-tender-{tender.pk}"


def tender_release_package(*, tender: Tender, evaluation: Evaluation | None, base_url: str) -> dict[str, Any]:
    """The OCDS 1.1 release package of `tender` (and `evaluation`, its newest saved one, if any)."""
    organization = tender.organization
    buyer = {"id": _party_id("buyer", organization.slug), "name": organization.name}
    parties: dict[str, dict[str, Any]] = {buyer["id"]: {**buyer, "roles": ["buyer", "procuringEntity"]}}
    requirements = tender.requirements.order_by("position")
    snapshot = evaluation.snapshot if evaluation is not None else {}
    texts = {r["position"]: r["text"] for r in snapshot.get("requirements", [])}
    if not texts:
        from apps.procurement.requirements import requirement_describe

        texts = {r.position: requirement_describe(kind=r.kind, params=r.params) for r in requirements}
    deadline_passed = tender.deadline <= timezone.now()
    ocds_tender = {
        "id": tender.reference,
        "title": tender.title,
        "status": "complete" if deadline_passed and evaluation is not None else "active",
        "procuringEntity": buyer,
        "mainProcurementCategory": "goods",
        "tenderPeriod": {"endDate": _iso(tender.deadline)},
        "awardCriteria": "ratedCriteria",
        "eligibilityCriteria": "\n".join(f"{position}. {text}" for position, text in sorted(texts.items())),
    }
    if tender.description:
        ocds_tender["description"] = tender.description
    formula = (snapshot.get("scoring") or {}).get("formula")
    if formula:
        ocds_tender["awardCriteriaDetails"] = f"Eligible certified accelerators ranked by {formula}"
    awards = []
    for row in snapshot.get("rows", []):
        if evaluation is None or not row.get("eligible"):  # rows come from the evaluation's snapshot
            continue
        vendor = row["chip"]["vendor"]
        supplier = {"id": _party_id("vendor", vendor), "name": vendor}
        parties.setdefault(supplier["id"], {**supplier, "roles": []})
        if "supplier" not in parties[supplier["id"]]["roles"]:
            parties[supplier["id"]]["roles"].append("supplier")
        serial = row["serial"]
        awards.append(
            {
                "id": f"{evaluation.pk}-{row['rank']}",
                "title": f"Rank {row['rank']}: {row['chip']['sku']} {row['chip']['name']} ({row['target']})",
                "description": f"Score {row['score']:g} under certificate {serial} "
                f"({row['program']} level {row['level']}, valid until {row['valid_until']}).",
                "status": "pending",
                "date": _iso(evaluation.created_at),
                "suppliers": [supplier],
                "documents": [
                    {
                        "id": f"{serial}-document",
                        "documentType": "evaluationReports",
                        "title": f"Certificate {serial} (signed document)",
                        "url": base_url + reverse("certificate-document", kwargs={"serial": serial}),
                        "format": "application/json",
                    },
                    {
                        "id": f"{serial}-credential",
                        "documentType": "evaluationReports",
                        "title": f"Certificate {serial} (W3C verifiable credential)",
                        "url": base_url + reverse("certificate-credential", kwargs={"serial": serial}),
                        "format": "application/vc",
                    },
                ],
            }
        )
    released_at = max([tender.updated_at] + ([evaluation.created_at] if evaluation is not None else []))
    release = {
        "ocid": ocid_of(tender),
        "id": f"{ocid_of(tender)}-{_iso(released_at)}",
        "date": _iso(released_at),
        "tag": ["tender", "award"] if awards else ["tender"],
        "initiationType": "tender",
        "language": "en",
        "parties": list(parties.values()),
        "buyer": buyer,
        "tender": ocds_tender,
    }
    if awards:
        release["awards"] = awards
    return {
        "uri": base_url + reverse("tender-ocds", kwargs={"pk": tender.pk}),
        "version": OCDS_VERSION,
        "publishedDate": _iso(released_at),
        "publisher": {"name": settings.CERT_ISSUER_NAME or organization.name},
        "releases": [release],
    }
