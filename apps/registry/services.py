"""Changes to the registry. Every function validates fully before it writes, in one transaction."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction

from apps.accounts.models import Organization, OrganizationKind
from apps.registry.architectures import architecture_check_weights
from apps.registry.models import PEAK_FIELDS, Chip, HardwareTarget, ModelArtifact, Runner
from apps.registry.weights import NotSafetensors, inspect_safetensors, sha256_of

CHIP_FIELDS = frozenset(
    {
        "sku", "name", "architecture", "process_node_nm", "die_area_mm2", "memory_gib",
        "memory_bandwidth_gbs", "tdp_w", "interconnect_bandwidth_gbs", "data_center", "fab_country",
        "assembly_country", "domestic_content_pct", "list_price", "currency", "spec_source",
    }
)
TARGET_FIELDS = frozenset(
    {
        "slug", "backend", "device_count", "driver_version", "runtime_version", "torch_version",
        "plugin_versions", "host_cpu", "host_memory_gib", "description",
    }
)
MAX_CONFIG_BYTES = 64 * 1024


def _apply_declared_peak(chip: Chip, declared_peak: dict[str, Any] | None) -> None:
    if declared_peak is None:
        return
    unknown = sorted(set(declared_peak) - set(PEAK_FIELDS))
    if unknown:
        raise ValidationError(
            {"declared_peak": f"Unknown dtype keys {unknown}; use {sorted(PEAK_FIELDS)}."}
        )
    for key, field in PEAK_FIELDS.items():
        if key in declared_peak:
            setattr(chip, field, declared_peak[key])


def _check_chip(chip: Chip) -> None:
    if chip.list_price is not None and not chip.currency:
        raise ValidationError({"currency": "A list price needs its currency."})
    if Chip.objects.filter(vendor_id=chip.vendor_id, sku=chip.sku).exclude(pk=chip.pk).exists():
        raise ValidationError({"sku": "Your organization already has a chip with this SKU."})


def _save(instance, *, unique_message: dict[str, str]) -> None:
    instance.full_clean()
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError:
        # A concurrent request took the same unique value between full_clean and save.
        raise ValidationError(unique_message) from None


def _require_vendor(organization: Organization) -> None:
    if organization.kind != OrganizationKind.VENDOR:
        raise ValidationError("Only vendor organizations register chips, targets and models.")


def chip_create(*, vendor: Organization, declared_peak: dict | None = None, **fields: Any) -> Chip:
    _require_vendor(vendor)
    chip = Chip(vendor=vendor, **{k: v for k, v in fields.items() if k in CHIP_FIELDS})
    _apply_declared_peak(chip, declared_peak)
    _check_chip(chip)
    _save(chip, unique_message={"sku": "Your organization already has a chip with this SKU."})
    return chip


def chip_update(*, chip: Chip, declared_peak: dict | None = None, **fields: Any) -> Chip:
    for key, value in fields.items():
        if key in CHIP_FIELDS:
            setattr(chip, key, value)
    _apply_declared_peak(chip, declared_peak)
    _check_chip(chip)
    _save(chip, unique_message={"sku": "Your organization already has a chip with this SKU."})
    return chip


def _check_plugin_versions(value: Any) -> None:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 64 for k, v in value.items()
    ):
        raise ValidationError({"plugin_versions": "Map each plugin name to its version string."})


def _check_target(target: HardwareTarget) -> None:
    _check_plugin_versions(target.plugin_versions)
    if HardwareTarget.objects.filter(slug=target.slug).exclude(pk=target.pk).exists():
        raise ValidationError({"slug": "A hardware target with this slug already exists."})


def target_create(*, chip: Chip, **fields: Any) -> HardwareTarget:
    target = HardwareTarget(chip=chip, **{k: v for k, v in fields.items() if k in TARGET_FIELDS})
    _check_target(target)
    _save(target, unique_message={"slug": "A hardware target with this slug already exists."})
    return target


def target_update(*, target: HardwareTarget, **fields: Any) -> HardwareTarget:
    for key, value in fields.items():
        if key in TARGET_FIELDS | {"chip"}:
            setattr(target, key, value)
    _check_target(target)
    _save(target, unique_message={"slug": "A hardware target with this slug already exists."})
    return target


def _check_config(config: Any) -> None:
    if not isinstance(config, dict):
        raise ValidationError({"config": "The config is a JSON object."})
    if len(json.dumps(config)) > MAX_CONFIG_BYTES:
        raise ValidationError({"config": f"The config is larger than {MAX_CONFIG_BYTES} bytes."})


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
) -> ModelArtifact:
    """Register a model; the weights must be a well-formed safetensors file (checked, never loaded) holding
    exactly the tensors its architecture and config imply (apps/registry/architectures.py)."""
    _require_vendor(owner)
    _check_config(config)
    try:
        summary = inspect_safetensors(weights, weights.size)
    except NotSafetensors as exc:
        raise ValidationError({"weights": f"Not a safetensors file: {exc}."}) from None
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
        raise ValidationError({"version": "This model version is already registered."})
    artifact.full_clean(exclude=["weights"])
    weights.seek(0)
    # Content-addressed: identical weights (another version, another vendor) share one file.
    path = artifact.weights.field.generate_filename(artifact, "weights.safetensors")
    stored_now = not artifact.weights.storage.exists(path)
    with transaction.atomic():
        if stored_now:
            artifact.weights.save(path, weights, save=False)
        else:
            artifact.weights.name = path
        try:
            artifact.save()
        except IntegrityError:
            if stored_now:
                artifact.weights.delete(save=False)
            raise ValidationError({"version": "This model version is already registered."}) from None
    return artifact


@transaction.atomic
def model_artifact_delete(*, artifact: ModelArtifact) -> None:
    """Delete a model; its weights file goes too, after commit, unless another model shares it."""
    name, storage = artifact.weights.name, artifact.weights.storage
    artifact.delete()
    if not ModelArtifact.objects.filter(weights=name).exists():
        transaction.on_commit(lambda: storage.delete(name))


def parse_ed25519_public_key(pem: str) -> tuple[str, str]:
    """Normalized PEM and key id (sha256 of the raw key) of an Ed25519 public key."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnicodeError):
        raise ValidationError({"public_key": "Not a PEM-encoded public key."}) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValidationError({"public_key": "The key must be an Ed25519 public key."})
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    normalized = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return normalized.decode(), hashlib.sha256(raw).hexdigest()


@transaction.atomic
def runner_register(*, name: str, public_key: str, targets: list[HardwareTarget]) -> Runner:
    """Register a runner host and the key it signs with (an authority action)."""
    pem, key_id = parse_ed25519_public_key(public_key)
    if Runner.objects.filter(key_id=key_id).exists():
        raise ValidationError({"public_key": "This key is already registered to another runner."})
    runner = Runner(name=name, public_key=pem, key_id=key_id)
    _save(runner, unique_message={"name": "A runner with this name already exists."})
    runner.targets.set(targets)
    return runner


@transaction.atomic
def runner_update(
    *, runner: Runner, public_key: str | None = None, targets: list[HardwareTarget] | None = None,
    status: str | None = None,
) -> Runner:
    if public_key is not None:
        pem, key_id = parse_ed25519_public_key(public_key)
        if Runner.objects.filter(key_id=key_id).exclude(pk=runner.pk).exists():
            raise ValidationError({"public_key": "This key is already registered to another runner."})
        runner.public_key, runner.key_id = pem, key_id
    if status is not None:
        runner.status = status
    _save(runner, unique_message={"name": "A runner with this name already exists."})
    if targets is not None:
        runner.targets.set(targets)
    return runner
