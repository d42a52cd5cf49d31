"""Issuing signed certificates and moving them through their statuses (each change audited)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.checkpoints import audit_checkpoint_after_commit
from apps.audit.services import audit_record
from apps.certificates.judge import required_approvals
from apps.certificates.models import (
    Certificate,
    CertificateStatus,
    CriterionResult,
    Review,
    ReviewDecision,
    SerialCounter,
    SigningKeyStatus,
    SurveillanceRun,
    subject_columns,
)
from apps.certificates.payload import certificate_payload_build
from apps.certificates.public_reads import public_reads_changed
from apps.certificates.services.authority import reviewer_check
from apps.certificates.services.keys import signing_key_active, signing_private_key
from apps.runs.models import Campaign, CampaignState
from apps.runs.services.campaigns import campaign_transition
from apps.runs.transitions import transition_allowed
from certification.recorded_text import localize, say
from certification.verify import canonicalization_of, load_public_key, verify_payload_text
from runners.canonical import JCS, canonical_text, canonical_text_as

# Statuses a certificate can still leave; revoked, expired and superseded are final.
LIVE_STATUSES = (CertificateStatus.ACTIVE, CertificateStatus.SUSPENDED)


def serial_next(*, prefix: str, year: int) -> str:
    """The next serial, e.g. AIA-2026-000123. The counter row is locked: concurrent issues never collide."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                SerialCounter.objects.create(prefix=prefix, year=year, last=0)
        except IntegrityError:
            pass  # it exists already (or another transaction just made it)
        counter = SerialCounter.objects.select_for_update().get(prefix=prefix, year=year)
        counter.last += 1
        counter.save(update_fields=["last"])
    return f"{prefix}-{year}-{counter.last:06d}"


def _approvals(campaign: Campaign) -> int:
    return (
        Review.objects.filter(campaign=campaign, decision=ReviewDecision.APPROVE)
        .values("reviewer")
        .distinct()
        .count()
    )


@transaction.atomic
def certificate_issue(*, campaign: Campaign, actor=None) -> Certificate:
    """Sign and store the certificate of an approved campaign; the campaign moves to approved.

    Preconditions (checked here, whoever calls): the campaign awaits review, has no failed
    blocker, and has the program's number of distinct approving reviewers. A re-certification of
    the same target under the same program supersedes the certificate before it.
    """
    campaign = (
        Campaign.objects.select_for_update(of=("self",))
        .select_related("program", "vendor", "target__chip")
        .get(pk=campaign.pk)
    )
    if not transition_allowed(campaign.state, CampaignState.APPROVED):
        raise ValidationError(
            _("A campaign that is %(state)s cannot be certified.")
            % {"state": campaign.get_state_display().lower()}
        )
    if CriterionResult.objects.filter(campaign=campaign, blocker=True, outcome="fail").exists():
        raise ValidationError(_("The campaign has a failed blocker criterion; it cannot be certified."))
    if not CriterionResult.objects.filter(campaign=campaign).exists():
        raise ValidationError(_("The campaign has not been evaluated."))
    approvals = _approvals(campaign)
    needed = required_approvals(program=campaign.program, level=campaign.level)
    if approvals < needed:
        raise ValidationError(
            _(
                "%(program)s level %(level)s needs %(needed)s approving reviewers; the campaign has %(approvals)s."
            )
            % {"program": campaign.program, "level": campaign.level, "needed": needed, "approvals": approvals}
        )
    program = campaign.program
    previous = list(
        Certificate.objects.select_for_update()
        .filter(target=campaign.target, program__code=program.code, status__in=LIVE_STATUSES)
        .order_by("issued_at")
    )
    key = signing_key_active()
    issued_at = timezone.now().replace(microsecond=0)
    valid_until = issued_at + timedelta(days=program.validity_days)
    serial = serial_next(prefix=program.code.upper(), year=issued_at.year)
    payload = certificate_payload_build(
        campaign=campaign,
        serial=serial,
        key=key,
        issued_at=issued_at,
        valid_until=valid_until,
        issuer_name=settings.CERT_ISSUER_NAME or program.definition.get("publisher", ""),
        approvals=approvals,
        supersedes=previous[-1].serial if previous else None,
    )
    text = canonical_text(payload)
    signature = base64.b64encode(signing_private_key(key).sign(text.encode("utf-8"))).decode("ascii")
    certificate = Certificate.objects.create(
        serial=serial,
        campaign=campaign,
        program=program,
        level=campaign.level,
        vendor=campaign.vendor,
        chip=campaign.target.chip,
        target=campaign.target,
        issued_at=issued_at,
        valid_until=valid_until,
        signing_key=key,
        payload_json=text,
        payload_sha256=hashlib.sha256(text.encode()).hexdigest(),
        signature=signature,
        status_changed_at=issued_at,
        **subject_columns(payload),  # what was signed, for filters and lists; never updated
    )
    public_reads_changed()
    campaign_transition(
        campaign, CampaignState.APPROVED, actor=actor, reason=say("campaign.certified", serial=serial)
    )
    audit_record(
        action="certificate.issued",
        obj=certificate,
        actor=actor,
        payload={
            "serial": serial,
            "campaign": campaign.pk,
            "key_id": key.key_id,
            "payload_sha256": certificate.payload_sha256,
            "valid_until": valid_until,
        },
    )
    SurveillanceRun.objects.filter(campaign=campaign, concluded_at__isnull=True).update(
        concluded_at=issued_at, outcome=f"passed: re-certified as {serial}"
    )
    for old in previous:
        certificate_status_change(
            old,
            CertificateStatus.SUPERSEDED,
            actor=actor,
            reason=say("certificate.superseded", serial=serial),
            superseded_by=certificate,
        )
    audit_checkpoint_after_commit(f"certificate {serial}")
    return certificate


def certificate_status_change(
    certificate: Certificate, status: str, *, actor, reason: str, superseded_by=None
) -> Certificate:
    """Set the status of a locked certificate and audit it; callers check the state they come from."""
    before = certificate.status
    certificate.status, certificate.status_reason = status, reason
    certificate.status_changed_at = timezone.now()
    certificate.superseded_by = superseded_by or certificate.superseded_by
    certificate.save(update_fields=["status", "status_reason", "status_changed_at", "superseded_by"])
    public_reads_changed()
    audit_record(
        action=f"certificate.{status}",
        obj=certificate,
        actor=actor,
        payload={"serial": certificate.serial, "from": before, "reason": reason},
    )
    return certificate


def _locked(certificate: Certificate) -> Certificate:
    return Certificate.objects.select_for_update().get(pk=certificate.pk)


@transaction.atomic
def certificate_resign(*, certificate: Certificate, key, reason: str, actor=None) -> Certificate:
    """Sign a certificate again with `key` (its old key is no longer trusted): the same serial and
    content, the new issuer key id, and a `resigned` note naming the previous payload's sha256."""
    from apps.certificates.payload import iso
    from certification.verify import strict_loads

    certificate = _locked(certificate)
    previous_sha256, previous_key = certificate.payload_sha256, certificate.signing_key.key_id
    payload = strict_loads(certificate.payload_json)
    payload["issuer"] = {**payload["issuer"], "key_id": key.key_id, "algorithm": key.algorithm}
    payload["resigned"] = {
        "at": iso(timezone.now()),
        "reason": reason,
        "previous_payload_sha256": previous_sha256,
    }
    # A new signature is always over RFC 8785, whatever form the certificate was first signed in.
    payload["canonicalization"] = JCS
    text = canonical_text(payload)
    certificate.payload_json = text
    certificate.payload_sha256 = hashlib.sha256(text.encode()).hexdigest()
    certificate.signature = base64.b64encode(signing_private_key(key).sign(text.encode("utf-8"))).decode(
        "ascii"
    )
    certificate.signing_key = key
    certificate.save(update_fields=["payload_json", "payload_sha256", "signature", "signing_key"])
    public_reads_changed()
    audit_record(
        action="certificate.resigned",
        obj=certificate,
        actor=actor,
        payload={
            "serial": certificate.serial,
            "reason": reason,
            "previous_key_id": previous_key,
            "key_id": key.key_id,
            "previous_payload_sha256": previous_sha256,
            "payload_sha256": certificate.payload_sha256,
        },
    )
    return certificate


def _reason(reason: str, missing: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": missing})
    return reason


def _cannot(message: str, certificate: Certificate) -> ValidationError:
    """A refused status change, in the reader's language, naming the status the certificate is in."""
    return ValidationError(message % {"status": str(certificate.get_status_display()).lower()})


@transaction.atomic
def certificate_suspend(*, certificate: Certificate, reason: str, actor=None) -> Certificate:
    """Active -> suspended (e.g. a failed surveillance run); `actor` None means the platform itself."""
    reason = _reason(reason, _("Suspending a certificate needs a written reason."))
    if actor is not None:
        reviewer_check(actor)
    certificate = _locked(certificate)
    if certificate.status != CertificateStatus.ACTIVE:
        raise _cannot(_("A %(status)s certificate cannot be suspended."), certificate)
    return certificate_status_change(certificate, CertificateStatus.SUSPENDED, actor=actor, reason=reason)


@transaction.atomic
def certificate_reinstate(*, certificate: Certificate, reason: str, actor) -> Certificate:
    """Suspended -> active, by a reviewer, while the certificate is still within its validity."""
    reason = _reason(reason, _("Reinstating a certificate needs a written reason."))
    reviewer_check(actor)
    certificate = _locked(certificate)
    if certificate.status != CertificateStatus.SUSPENDED:
        raise _cannot(_("A %(status)s certificate cannot be reinstated."), certificate)
    if certificate.valid_until <= timezone.now():
        raise ValidationError(_("The certificate is past its validity; it cannot be reinstated."))
    return certificate_status_change(certificate, CertificateStatus.ACTIVE, actor=actor, reason=reason)


@transaction.atomic
def certificate_revoke(*, certificate: Certificate, reason: str, actor) -> Certificate:
    """Active or suspended -> revoked, for good, by a reviewer with a written reason."""
    reason = _reason(reason, _("Revoking a certificate needs a written reason."))
    reviewer_check(actor)
    certificate = _locked(certificate)
    if certificate.status not in LIVE_STATUSES:
        raise _cannot(_("A %(status)s certificate cannot be revoked."), certificate)
    return certificate_status_change(certificate, CertificateStatus.REVOKED, actor=actor, reason=reason)


def certificates_expire(*, now: datetime | None = None) -> int:
    """Active and suspended certificates past valid_until become expired; returns how many."""
    now = now or timezone.now()
    count = 0
    for pk in Certificate.objects.filter(status__in=LIVE_STATUSES, valid_until__lte=now).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            certificate = Certificate.objects.select_for_update().get(pk=pk)
            if certificate.status in LIVE_STATUSES and certificate.valid_until <= now:
                certificate_status_change(
                    certificate,
                    CertificateStatus.EXPIRED,
                    actor=None,
                    reason=say("certificate.validity_ended", date=certificate.valid_until.date().isoformat()),
                )
                count += 1
    return count


@dataclass(frozen=True)
class CertificateCheck:
    serial: str
    status: str
    signature_valid: bool
    key_id: str
    checked_at: datetime
    reason: str


def certificate_check(*, certificate: Certificate, now: datetime | None = None) -> CertificateCheck:
    """The signature of the stored text under the issuing key, and the status as of now."""
    now = now or timezone.now()
    key = certificate.signing_key
    verdict = verify_payload_text(
        certificate.payload_json, certificate.signature, load_public_key(key.public_key_pem)
    )
    status = certificate.status
    if status in LIVE_STATUSES and certificate.valid_until <= now:
        status = CertificateStatus.EXPIRED  # the sweep has not run yet; the date decides
    if verdict.ok and verdict.serial != certificate.serial:
        verdict = type(verdict)(False, say("verify.serial_differs"), verdict.serial)
    if verdict.ok and key.status == SigningKeyStatus.COMPROMISED:
        # A valid signature by a leaked key proves nothing: anyone holding it could have made it.
        verdict = type(verdict)(
            False,
            say("verify.key_compromised", key=key.key_id[:16], date=key.compromised_at.date().isoformat()),
            verdict.serial,
        )
    # In the reader's language (the verification page and the API answer in it): the verifier's message and
    # the status reason are recorded texts shown in the reader's language (a reason a reviewer typed stays
    # as typed).
    if not verdict.ok:
        reason = _("Signature invalid: %(why)s.") % {"why": localize(verdict.message)}
    elif status == CertificateStatus.ACTIVE:
        reason = _("Authentic and active until %(date)s.") % {
            "date": certificate.valid_until.date().isoformat()
        }
    elif certificate.status_reason:
        reason = _("Authentic, but %(status)s: %(reason)s") % {
            "status": str(CertificateStatus(status).label).lower(),
            "reason": localize(certificate.status_reason),
        }
    else:
        reason = _("Authentic, but %(status)s.") % {"status": str(CertificateStatus(status).label).lower()}
    return CertificateCheck(certificate.serial, status, verdict.ok, key.key_id, now, reason)


def certificate_document(*, certificate: Certificate) -> str:
    """The downloadable document the offline verifier checks, as canonical JSON text plus a newline."""
    from certification.verify import strict_loads

    document = {
        "certificate": strict_loads(certificate.payload_json),
        "key_id": certificate.signing_key.key_id,
        "signature": certificate.signature,
    }
    return canonical_text_as(document, canonicalization_of(document["certificate"])) + "\n"
