"""Changes to the registry. Every function validates fully before it writes, in one transaction."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, models, transaction
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.accounts.models import Organization, OrganizationKind
from apps.audit.services import audit_record
from apps.registry.architectures import architecture_check_weights
from apps.registry.models import PEAK_FIELDS, Chip, HardwareTarget, ModelArtifact, Runner
from apps.registry.plausibility import declared_peak_problems
from apps.registry.weights import NotSafetensors, inspect_safetensors, sha256_of
from certification.json_limits import JSONLimitExceeded, check_json_value

CHIP_FIELDS = frozenset(
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
    }
)
TARGET_FIELDS = frozenset(
    {
        "slug",
        "backend",
        "device_count",
        "interconnect",
        "driver_version",
        "runtime_version",
        "torch_version",
        "plugin_versions",
        "device_identity",
        "host_cpu",
        "host_memory_gib",
        "description",
    }
)
MAX_CONFIG_BYTES = 64 * 1024


def _apply_declared_peak(chip: Chip, declared_peak: dict[str, Any] | None) -> None:
    if declared_peak is None:
        return
    unknown = sorted(set(declared_peak) - set(PEAK_FIELDS))
    if unknown:
        raise ValidationError(
            {
                "declared_peak": _("Unknown dtype keys %(unknown)s; use %(known)s.")
                % {"unknown": unknown, "known": sorted(PEAK_FIELDS)}
            }
        )
    for key, field in PEAK_FIELDS.items():
        if key in declared_peak:
            setattr(chip, field, declared_peak[key])


def _check_chip(chip: Chip) -> None:
    if chip.list_price is not None and not chip.currency:
        raise ValidationError({"currency": _("A list price needs its currency.")})
    if Chip.objects.filter(vendor_id=chip.vendor_id, sku__iexact=chip.sku).exclude(pk=chip.pk).exists():
        raise ValidationError(SKU_TAKEN)


def _check_peaks_plausible(chip: Chip) -> None:
    """Refuse a declared peak no silicon can reach for the chip's die area and TDP (apps/registry/plausibility.py)."""
    problems = declared_peak_problems(
        declared_peak=chip.declared_peaks(), die_area_mm2=chip.die_area_mm2, tdp_w=chip.tdp_w
    )
    if problems:
        raise ValidationError({"declared_peak": problems})


def _save(instance, *, unique_message: dict[str, Any]) -> None:
    instance.full_clean()
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError:
        # A concurrent request took the same unique value between full_clean and save.
        raise ValidationError(unique_message) from None


def _audited(fields: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    """The fields a change set, as the audit event records them (a related object by its id)."""
    return {k: v.pk if isinstance(v, models.Model) else v for k, v in fields.items() if k in allowed}


def _require_vendor(organization: Organization) -> None:
    if organization.kind != OrganizationKind.VENDOR:
        raise ValidationError(_("Only vendor organizations register chips, targets and models."))


@transaction.atomic
def chip_create(
    *, vendor: Organization, declared_peak: dict | None = None, actor=None, **fields: Any
) -> Chip:
    _require_vendor(vendor)
    chip = Chip(vendor=vendor, **{k: v for k, v in fields.items() if k in CHIP_FIELDS})
    _apply_declared_peak(chip, declared_peak)
    _check_chip(chip)
    _check_peaks_plausible(chip)
    _save(chip, unique_message=SKU_TAKEN)
    audit_record(
        action="chip.created",
        obj=chip,
        actor=actor,
        payload={
            "vendor": vendor.pk,
            "fields": _audited(fields, CHIP_FIELDS),
            "declared_peak": declared_peak,
        },
    )
    return chip


def _certified_edit(instance: Chip | HardwareTarget, before: dict[str, Any]) -> None:
    """A certified chip or target: the certificates app refuses (409) or schedules a re-test."""
    changes = {k: (v, getattr(instance, k)) for k, v in before.items() if getattr(instance, k) != v}
    if changes:
        import_string(settings.REGISTRY_CERTIFIED_EDIT)(obj=instance, changes=changes)


@transaction.atomic
def chip_update(*, chip: Chip, declared_peak: dict | None = None, actor=None, **fields: Any) -> Chip:
    before = {k: getattr(chip, k) for k in CHIP_FIELDS | set(PEAK_FIELDS.values())}
    for key, value in fields.items():
        if key in CHIP_FIELDS:
            setattr(chip, key, value)
    _apply_declared_peak(chip, declared_peak)
    _check_chip(chip)
    _save(chip, unique_message=SKU_TAKEN)
    _certified_edit(chip, before)  # a certified chip's edit is a conflict (409) whatever its figures
    _check_peaks_plausible(chip)  # raised inside the transaction: the saved row is rolled back
    audit_record(
        action="chip.updated",
        obj=chip,
        actor=actor,
        payload={"fields": _audited(fields, CHIP_FIELDS), "declared_peak": declared_peak},
    )
    return chip


@transaction.atomic
def chip_delete(*, chip: Chip, actor=None) -> None:
    """Delete a chip (refused with ProtectedError while targets or certificates cite it). Audited."""
    audit_record(
        action="chip.deleted", obj=chip, actor=actor, payload={"vendor": chip.vendor_id, "sku": chip.sku}
    )
    chip.delete()


def _check_plugin_versions(value: Any) -> None:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 64 for k, v in value.items()
    ):
        raise ValidationError({"plugin_versions": _("Map each plugin name to its version string.")})


# Slugs are unique per vendor: the message speaks only of the caller's own targets, so another
# vendor's slug is neither refused nor revealed.
TARGET_SLUG_TAKEN = {"slug": gettext_lazy("Your organization already has a hardware target with this slug.")}
SKU_TAKEN = {"sku": gettext_lazy("Your organization already has a chip with this SKU.")}


DEVICE_IDENTITY_KEYS = ("name", "pci_bus_id", "uuid", "serial")  # runners/backends: device_identity


def _check_device_identity(value: Any) -> None:
    if not isinstance(value, dict) or not all(
        k in DEVICE_IDENTITY_KEYS and isinstance(v, str) and len(v) <= 200 for k, v in value.items()
    ):
        raise ValidationError(
            {
                "device_identity": _(
                    "An object of device facts as the runner reads them, each a string of at most 200 "
                    "characters, with keys among %(keys)s."
                )
                % {"keys": ", ".join(DEVICE_IDENTITY_KEYS)}
            }
        )


def _check_target(target: HardwareTarget) -> None:
    _check_plugin_versions(target.plugin_versions)
    _check_device_identity(target.device_identity)
    if target.chip.vendor_id != target.vendor_id:
        raise ValidationError({"chip": _("A target's chip belongs to the target's vendor.")})
    if (
        HardwareTarget.objects.filter(vendor_id=target.vendor_id, slug=target.slug)
        .exclude(pk=target.pk)
        .exists()
    ):
        raise ValidationError(TARGET_SLUG_TAKEN)


@transaction.atomic
def target_create(*, chip: Chip, actor=None, **fields: Any) -> HardwareTarget:
    target = HardwareTarget(
        chip=chip, vendor_id=chip.vendor_id, **{k: v for k, v in fields.items() if k in TARGET_FIELDS}
    )
    _check_target(target)
    _save(target, unique_message=TARGET_SLUG_TAKEN)
    audit_record(
        action="target.created",
        obj=target,
        actor=actor,
        payload={"chip": chip.pk, "fields": _audited(fields, TARGET_FIELDS)},
    )
    return target


@transaction.atomic
def target_update(*, target: HardwareTarget, actor=None, **fields: Any) -> HardwareTarget:
    before = {k: getattr(target, k) for k in TARGET_FIELDS | {"chip_id"}}
    for key, value in fields.items():
        if key in TARGET_FIELDS | {"chip"}:
            setattr(target, key, value)
    _check_target(target)
    _save(target, unique_message=TARGET_SLUG_TAKEN)
    _certified_edit(target, before)
    audit_record(
        action="target.updated",
        obj=target,
        actor=actor,
        payload={"fields": _audited(fields, TARGET_FIELDS | {"chip"})},
    )
    return target


@transaction.atomic
def target_delete(*, target: HardwareTarget, actor=None) -> None:
    """Delete a hardware target (refused with ProtectedError while campaigns cite it). Audited."""
    audit_record(
        action="target.deleted",
        obj=target,
        actor=actor,
        payload={"chip": target.chip_id, "slug": target.slug},
    )
    target.delete()


def _check_config(config: Any) -> None:
    if not isinstance(config, dict):
        raise ValidationError({"config": _("The config is a JSON object.")})
    try:
        check_json_value(config)  # depth, and no NUL (which PostgreSQL's jsonb refuses)
    except JSONLimitExceeded as exc:
        raise ValidationError({"config": str(exc)}) from None
    if len(json.dumps(config)) > MAX_CONFIG_BYTES:
        raise ValidationError(
            {"config": _("The config is larger than %(limit)s bytes.") % {"limit": MAX_CONFIG_BYTES}}
        )


def model_artifact_create(
    *,
    owner: Organization,
    name: str,
    version: str,
    task: str,
    architecture: str,
    config: dict,
    weights: UploadedFile,
    license: str,
    actor=None,
) -> ModelArtifact:
    """Register a model; the weights must be a well-formed safetensors file (checked, never loaded) holding
    exactly the tensors its architecture and config imply (apps/registry/architectures.py)."""
    _require_vendor(owner)
    _check_config(config)
    try:
        summary = inspect_safetensors(weights, weights.size)
    except NotSafetensors as exc:
        raise ValidationError({"weights": _("Not a safetensors file: %(error)s.") % {"error": exc}}) from None
    architecture_check_weights(architecture=architecture, config=config, tensors=summary.tensors)
    artifact = ModelArtifact(
        owner=owner,
        name=name,
        version=version,
        task=task,
        architecture=architecture,
        config=config,
        license=license,
        weights_sha256=sha256_of(weights),
        weights_size=weights.size,
        tensor_count=summary.tensor_count,
    )
    # Before full_clean, whose unique-constraint message would name no field.
    if ModelArtifact.objects.filter(owner=owner, name=name, version=version).exists():
        raise ValidationError({"version": _("This model version is already registered.")})
    artifact.full_clean(exclude=["weights"])
    weights.seek(0)
    # Content-addressed: identical weights (another version, another vendor) share one file.
    path = artifact.weights.field.generate_filename(artifact, "weights.safetensors")
    stored_now = not artifact.weights.storage.exists(path)
    written = None
    try:
        with transaction.atomic():
            if stored_now:
                artifact.weights.save(path, weights, save=False)
                written = artifact.weights.name
            else:
                artifact.weights.name = path
            artifact.save()
            audit_record(
                action="model.created",
                obj=artifact,
                actor=actor,
                payload={
                    "owner": owner.pk,
                    "name": name,
                    "version": version,
                    "architecture": architecture,
                    "weights_sha256": artifact.weights_sha256,
                    "weights_size": artifact.weights_size,
                },
            )
    except BaseException as exc:
        # Whatever the database refused (a duplicate, or on PostgreSQL a NUL it cannot store), the
        # file written for this row must not outlive it.
        if written is not None:
            artifact.weights.storage.delete(written)
        if isinstance(exc, IntegrityError):
            raise ValidationError({"version": _("This model version is already registered.")}) from None
        raise
    return artifact


@transaction.atomic
def model_artifact_delete(*, artifact: ModelArtifact, actor=None) -> None:
    """Delete a model; its weights file goes too, after commit, unless another model shares it."""
    name, storage = artifact.weights.name, artifact.weights.storage
    audit_record(
        action="model.deleted",
        obj=artifact,
        actor=actor,
        payload={
            "owner": artifact.owner_id,
            "name": artifact.name,
            "version": artifact.version,
            "weights_sha256": artifact.weights_sha256,
        },
    )
    artifact.delete()
    if not ModelArtifact.objects.filter(weights=name).exists():
        transaction.on_commit(lambda: storage.delete(name))


def parse_ed25519_public_key(pem: str) -> tuple[str, str]:
    """Normalized PEM and key id (sha256 of the raw key) of an Ed25519 public key."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnicodeError):
        raise ValidationError({"public_key": _("Not a PEM-encoded public key.")}) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValidationError({"public_key": _("The key must be an Ed25519 public key.")})
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    normalized = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return normalized.decode(), hashlib.sha256(raw).hexdigest()


@transaction.atomic
def runner_register(*, name: str, public_key: str, targets: list[HardwareTarget], actor=None) -> Runner:
    """Register a runner host and the key it signs with (an authority action)."""
    pem, key_id = parse_ed25519_public_key(public_key)
    if Runner.objects.filter(key_id=key_id).exists():
        raise ValidationError({"public_key": _("This key is already registered to another runner.")})
    runner = Runner(name=name, public_key=pem, key_id=key_id)
    _save(runner, unique_message={"name": _("A runner with this name already exists.")})
    runner.targets.set(targets)
    audit_record(
        action="runner.registered",
        obj=runner,
        actor=actor,
        payload={"name": name, "key_id": key_id, "targets": _bindings(targets)},
    )
    return runner


def _bindings(targets) -> list[dict[str, Any]]:
    """Each bound target with its vendor, so a binding across vendors stands out in the record."""
    return [
        {"target": t.pk, "slug": t.slug, "vendor": t.chip.vendor_id}
        for t in sorted(targets, key=lambda t: t.pk)
    ]


@transaction.atomic
def runner_update(
    *,
    runner: Runner,
    public_key: str | None = None,
    targets: list[HardwareTarget] | None = None,
    status: str | None = None,
    actor=None,
) -> Runner:
    before_key, before_status = runner.key_id, runner.status
    before_targets = list(runner.targets.select_related("chip")) if runner.pk else []
    if public_key is not None:
        pem, key_id = parse_ed25519_public_key(public_key)
        if Runner.objects.filter(key_id=key_id).exclude(pk=runner.pk).exists():
            raise ValidationError({"public_key": _("This key is already registered to another runner.")})
        runner.public_key, runner.key_id = pem, key_id
    if status is not None:
        runner.status = status
    _save(runner, unique_message={"name": _("A runner with this name already exists.")})
    if targets is not None:
        runner.targets.set(targets)
    after_targets = list(runner.targets.select_related("chip"))
    audit_record(
        action="runner.updated",
        obj=runner,
        actor=actor,
        payload={
            "key_id": {"before": before_key, "after": runner.key_id},
            "status": {"before": before_status, "after": runner.status},
            "targets": {"before": _bindings(before_targets), "after": _bindings(after_targets)},
            "key_changed": before_key != runner.key_id,
            "bindings_changed": {t.pk for t in before_targets} != {t.pk for t in after_targets},
        },
    )
    return runner


@transaction.atomic
def runner_delete(*, runner: Runner, actor=None) -> None:
    """Remove a runner host and its key. Audited with the targets it was bound to."""
    audit_record(
        action="runner.deleted",
        obj=runner,
        actor=actor,
        payload={
            "name": runner.name,
            "key_id": runner.key_id,
            "targets": _bindings(runner.targets.select_related("chip")),
        },
    )
    runner.delete()
