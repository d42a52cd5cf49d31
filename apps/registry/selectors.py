"""Registry reads, scoped to what the caller may see.

Vendors see their own organization's objects; the authority sees everything; everyone else
sees nothing here (the certified registry is published by the certificates app).
"""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.accounts.models import Membership
from apps.accounts.selectors import vendor_rows_visible_to
from apps.registry.models import Chip, HardwareTarget, ModelArtifact, Runner


def chips_visible_to(membership: Membership | None) -> QuerySet[Chip]:
    chips = Chip.objects.select_related("vendor")
    return vendor_rows_visible_to(chips, membership, owner="vendor_id")


def targets_visible_to(membership: Membership | None) -> QuerySet[HardwareTarget]:
    targets = HardwareTarget.objects.select_related("chip__vendor", "vendor")
    return vendor_rows_visible_to(targets, membership, owner="chip__vendor_id")


def model_artifacts_visible_to(membership: Membership | None) -> QuerySet[ModelArtifact]:
    artifacts = ModelArtifact.objects.select_related("owner")
    return vendor_rows_visible_to(artifacts, membership, owner="owner_id")


def runners_visible_to(membership: Membership | None) -> QuerySet[Runner]:
    runners = Runner.objects.prefetch_related(
        Prefetch("targets", HardwareTarget.objects.select_related("vendor"))
    )
    if membership is not None and membership.is_authority:
        return runners
    return runners.none()


class AmbiguousTarget(LookupError):
    """A plain slug that several vendors use; the caller must write `<vendor slug>/<target slug>`."""


def target_by_reference(
    reference: str, *, targets: QuerySet[HardwareTarget] | None = None
) -> HardwareTarget | None:
    """The target named `<vendor slug>/<target slug>`, or by its plain slug when only one vendor uses it.

    Raises AmbiguousTarget when a plain slug names targets of several vendors (an authority-side lookup;
    a vendor's own queryset never holds two targets with one slug).
    """
    targets = HardwareTarget.objects.select_related("vendor", "chip__vendor") if targets is None else targets
    vendor_slug, _, slug = reference.rpartition("/")
    found = list(targets.filter(slug=slug, **({"vendor__slug": vendor_slug} if vendor_slug else {}))[:2])
    if len(found) > 1:
        raise AmbiguousTarget(
            f"Several vendors have a target {slug!r}; write "
            + " or ".join(sorted(f"{t.vendor.slug}/{t.slug}" for t in found))
            + "."
        )
    return found[0] if found else None
