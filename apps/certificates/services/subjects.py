"""What was certified stays what it says: the rule for editing a chip or target that has a live
certificate. The registry calls `certified_subject_edit` (settings.REGISTRY_CERTIFIED_EDIT) inside
its update's transaction, after saving, with the fields whose value changed.

- A field the certificate signed about the chip (every declaration) or the target (chip, slug,
  backend, device count, host CPU) cannot change while a certificate of it is live (active or
  suspended, within its validity): the update is refused as a conflict (HTTP 409) naming the
  certificates. To certify something else, register a new chip or target and certify it.
- The target's software stack (driver, runtime, torch, plugins) may change: the vendor must be able
  to update its driver. Each live certificate of the target is then re-tested at once: a
  surveillance campaign on the new stack is submitted in the same transaction and audited. Passing
  and approved, it issues a new certificate naming the new stack that supersedes the old one;
  failing, it suspends it. If no re-test can be submitted (program retired, models gone) the
  certificate is suspended at once, with the reason. Until then the certificate keeps saying the
  stack it was certified on.
- While a campaign of the target (or of any target of the chip) is open (queued, running,
  evaluating, awaiting review), neither certified fields nor the stack may change (409 naming the
  campaign): the certificate it may end in signs the registry rows as they are at approval, so
  they must be the ones the evidence was measured and judged against.
- Free text that no certificate signs (description, host memory) changes freely.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.certificates.models import Certificate, CertificateStatus
from apps.certificates.services.certificates import LIVE_STATUSES, certificate_status_change
from apps.certificates.services.surveillance import surveillance_submit
from apps.registry.models import PEAK_FIELDS, Chip, HardwareTarget
from apps.runs.models import Campaign
from apps.runs.transitions import OPEN_STATES
from certification.recorded_text import say

CERTIFIED_CHIP_FIELDS = frozenset(
    {
        "sku",
        "name",
        "architecture",
        "process_node_nm",
        "die_area_mm2",
        "memory_gib",
        "memory_bandwidth_gbs",
        "tdp_w",
        "interconnect_bandwidth_gbs",
        "data_center",
        "fab_country",
        "assembly_country",
        "domestic_content_pct",
        "list_price",
        "currency",
        "spec_source",
        *PEAK_FIELDS.values(),
    }
)
CERTIFIED_TARGET_FIELDS = frozenset({"chip_id", "slug", "backend", "device_count", "host_cpu"})
# The device identity is here too: a replaced board is the same product, re-tested on the new device.
STACK_FIELDS = frozenset(
    {"driver_version", "runtime_version", "torch_version", "plugin_versions", "device_identity"}
)
# The API's names for the model's fields, in messages.
_FIELD_NAMES = {"chip_id": "chip", **{field: f"declared_peak.{key}" for key, field in PEAK_FIELDS.items()}}


def certificates_live_of(
    *, chip: Chip | None = None, target: HardwareTarget | None = None
) -> list[Certificate]:
    """Certificates that still certify the chip (any of its targets) or the target: active or
    suspended, and within their validity."""
    certificates = Certificate.objects.filter(status__in=LIVE_STATUSES, valid_until__gt=timezone.now())
    certificates = certificates.filter(chip=chip) if chip is not None else certificates.filter(target=target)
    return list(
        certificates.select_for_update(of=("self",))
        .select_related("program", "vendor", "target")
        .order_by("serial")
    )


def _names(fields) -> str:
    return ", ".join(sorted(_FIELD_NAMES.get(field, field) for field in fields))


@transaction.atomic
def certified_subject_edit(*, obj: Chip | HardwareTarget, changes: dict[str, tuple]) -> None:
    """Apply the rule above to a saved edit of `obj`; `changes` maps each changed model field to
    (before, after). Raises ValidationError with code "conflict" (409) to refuse the edit, which
    the caller's transaction then rolls back."""
    is_chip = isinstance(obj, Chip)
    locked = set(changes) & (CERTIFIED_CHIP_FIELDS if is_chip else CERTIFIED_TARGET_FIELDS)
    stack = set() if is_chip else set(changes) & STACK_FIELDS
    if not locked and not stack:
        return
    what = "chip" if is_chip else "hardware target"
    campaigns = Campaign.objects.filter(state__in=OPEN_STATES).filter(
        **({"target__chip": obj} if is_chip else {"target": obj})
    )
    open_ids = sorted(campaigns.values_list("pk", flat=True))
    if open_ids:
        raise ValidationError(
            f"This {what} is under certification (campaign {', '.join(map(str, open_ids))}): "
            f"{_names(locked | stack)} cannot change until the campaign ends, because its evidence is "
            f"judged against them.",
            code="conflict",
        )
    live = certificates_live_of(chip=obj) if is_chip else certificates_live_of(target=obj)
    if not live:
        return
    serials = ", ".join(c.serial for c in live)
    if locked:
        raise ValidationError(
            f"This {what} is certified ({serials}): {_names(locked)} cannot change while a certificate "
            f"of it is live, because the certificate signed them. Register a new {what} and certify it.",
            code="conflict",
        )
    now = timezone.now()
    reason = "the target's software stack changed: " + "; ".join(
        f"{_FIELD_NAMES.get(field, field)} {changes[field][0]!r} -> {changes[field][1]!r}"
        for field in sorted(stack)
    )
    for certificate in live:
        audit_record(
            action="certificate.retest_required",
            obj=certificate,
            payload={
                "serial": certificate.serial,
                "target": obj.slug,
                "changes": {field: list(changes[field]) for field in sorted(stack)},
                "at": now.isoformat(),
            },
        )
        run = surveillance_submit(certificate=certificate)
        if run is None and certificate.status == CertificateStatus.ACTIVE:
            # The certified stack is gone from the target and nothing can re-test the new one.
            certificate_status_change(
                certificate,
                CertificateStatus.SUSPENDED,
                actor=None,
                reason=say("certificate.retest_impossible", reason=reason),
            )
