"""Writes of procurement: tenders with their requirements, and saved (audited) evaluations."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from apps.accounts.models import Organization, OrganizationKind
from apps.audit.services import audit_record
from apps.procurement import selectors
from apps.procurement.eligibility import evaluation_build
from apps.procurement.export_control import rule_current
from apps.procurement.models import Evaluation, Requirement, Tender, default_currency
from apps.procurement.requirements import requirements_clean
from apps.procurement.scoring import scoring_clean
from runners.canonical import canonical_json

SNAPSHOT_FORMAT = "procurement-evaluation/1"


def _clean(*, requirements: list[dict], scoring: list[dict]) -> tuple[list[dict], list[dict]]:
    """Both parts checked, so one answer lists every problem of the request."""
    errors: dict[str, list[str]] = {}
    cleaned_requirements, cleaned_scoring = [], []
    try:
        cleaned_requirements = requirements_clean(
            rows=requirements, vocabulary=selectors.requirement_vocabulary()
        )
    except ValidationError as error:
        errors.update(error.message_dict)
    try:
        # A serving weight without its own bound compares at the requirements' (when they are clean).
        cleaned_scoring = scoring_clean(
            rows=scoring, requirements=None if "requirements" in errors else cleaned_requirements
        )
    except ValidationError as error:
        errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)
    return cleaned_requirements, cleaned_scoring


def _save_requirements(tender: Tender, requirements: list[dict]) -> None:
    tender.requirements.all().delete()
    Requirement.objects.bulk_create(
        [
            Requirement(tender=tender, position=i, kind=r["kind"], params=r["params"])
            for i, r in enumerate(requirements, 1)
        ]
    )


@transaction.atomic
def tender_create(
    *,
    organization: Organization,
    title: str,
    reference: str,
    deadline: datetime,
    requirements: list[dict],
    scoring: list[dict],
    description: str = "",
    currency: str | None = None,
    created_by=None,
) -> Tender:
    """A buyer organization's tender. Requirements must be consistent and the deadline ahead."""
    if organization.kind != OrganizationKind.BUYER:
        raise ValidationError(gettext("Only a buyer organization issues tenders."))
    if deadline <= timezone.now():
        raise ValidationError({"deadline": [gettext("The deadline must be in the future.")]})
    if Tender.objects.filter(organization=organization, reference=reference).exists():
        raise ValidationError(
            {
                "reference": [
                    gettext("Your organization already has a tender %(reference)s.")
                    % {"reference": reference}
                ]
            }
        )
    requirements, scoring = _clean(requirements=requirements, scoring=scoring)
    tender = Tender(
        organization=organization,
        title=title,
        reference=reference,
        deadline=deadline,
        description=description,
        currency=currency or default_currency(),
        scoring=scoring,
        created_by=created_by,
    )
    tender.full_clean()
    tender.save()
    _save_requirements(tender, requirements)
    audit_record(
        action="procurement.tender_created",
        obj=tender,
        actor=created_by,
        payload={"reference": reference, "requirements": requirements, "scoring": scoring},
    )
    return tender


@transaction.atomic
def tender_update(*, tender: Tender, actor=None, **changes) -> Tender:
    """Change fields and/or replace requirements and scoring (validated as a whole, as on creation)."""
    requirements = changes.pop("requirements", None)
    scoring = changes.pop("scoring", None)
    if requirements is not None or scoring is not None:
        requirements, scoring = _clean(
            requirements=requirements
            if requirements is not None
            else selectors.tender_requirements(tender=tender),
            scoring=scoring if scoring is not None else tender.scoring,
        )
        tender.scoring = scoring
    reference = changes.get("reference")
    if (
        reference
        and Tender.objects.filter(organization=tender.organization, reference=reference)
        .exclude(pk=tender.pk)
        .exists()
    ):
        raise ValidationError(
            {
                "reference": [
                    gettext("Your organization already has a tender %(reference)s.")
                    % {"reference": reference}
                ]
            }
        )
    for name, value in changes.items():
        if name not in {"title", "reference", "deadline", "description", "currency"}:
            raise ValidationError(gettext("%(name)s cannot be changed.") % {"name": name})
        setattr(tender, name, value)
    tender.full_clean()
    tender.save()
    if requirements is not None:
        _save_requirements(tender, requirements)
    audit_record(
        action="procurement.tender_updated",
        obj=tender,
        actor=actor,
        payload={"fields": sorted(changes), "requirements": requirements, "scoring": scoring},
    )
    return tender


@transaction.atomic
def tender_delete(*, tender: Tender, actor=None) -> None:
    """A tender with saved evaluations is kept (they are the audit trail of a decision): ProtectedError."""
    audit_record(
        action="procurement.tender_deleted", obj=tender, actor=actor, payload={"reference": tender.reference}
    )
    tender.delete()


def snapshot_sha256(snapshot: dict) -> str:
    """sha256 of the snapshot's RFC 8785 form, as stored (JSON types: Django's encoder writes the rest)."""
    return hashlib.sha256(canonical_json(json.loads(json.dumps(snapshot, cls=DjangoJSONEncoder)))).hexdigest()


@transaction.atomic
def evaluation_create(*, tender: Tender, actor=None) -> Evaluation:
    """Evaluate the tender against every active certificate now, and save the result as a snapshot.

    The snapshot holds the serials, figures, sources and classifications it used, so it reads the
    same after any certificate changes; its sha256 goes into the audit chain.
    """
    rule = rule_current()
    candidates = selectors.certified_candidates(rule=rule)
    result = evaluation_build(
        requirements=selectors.tender_requirements(tender=tender),
        scoring=tender.scoring,
        currency=tender.currency,
        candidates=candidates,
    )
    now = timezone.now()
    snapshot = {
        "format": SNAPSHOT_FORMAT,
        "tender": {
            "id": tender.pk,
            "reference": tender.reference,
            "title": tender.title,
            "deadline": tender.deadline.isoformat(),
            "organization": tender.organization.name,
        },
        "evaluated_at": now.isoformat(),
        "rule": {"id": rule.id, "date": rule.date, "notice": rule.notice},
        **result,
    }
    evaluation = Evaluation.objects.create(
        tender=tender,
        created_by=actor if actor is not None and actor.is_authenticated else None,
        rule_id=rule.id,
        candidate_count=result["candidate_count"],
        eligible_count=result["eligible_count"],
        snapshot=snapshot,
        snapshot_sha256=snapshot_sha256(snapshot),
    )
    audit_record(
        action="procurement.evaluation_saved",
        obj=evaluation,
        actor=actor,
        payload={
            "tender": tender.reference,
            "snapshot_sha256": evaluation.snapshot_sha256,
            "candidates": evaluation.candidate_count,
            "eligible": evaluation.eligible_count,
            "ranked": [row["serial"] for row in result["rows"] if row["eligible"]][:50],
        },
    )
    return evaluation
