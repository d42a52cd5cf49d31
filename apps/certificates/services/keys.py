"""The authority's signing keys: public halves in the database, private halves in files.

A private key is written once, with mode 0600, to <CERT_SIGNING_KEY_DIR>/<key_id>.pem and read
only to sign. Rotation makes a new active key and retires the old one, which keeps verifying the
certificates it signed. A key reported compromised verifies nothing any more: the live certificates
it signed are signed again with the active key (same serial and content, a new issuer key id and a
note of the re-signing), and its private file is deleted.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.checkpoints import audit_checkpoint_after_commit
from apps.audit.services import audit_record
from apps.certificates.models import SigningKey, SigningKeyStatus
from certification.recorded_text import say
from certification.verify import public_key_id


def signing_key_dir() -> Path:
    return Path(settings.CERT_SIGNING_KEY_DIR)


def signing_key_path(key_id: str) -> Path:
    return signing_key_dir() / f"{key_id}.pem"


def _write_private_key(private_key: Ed25519PrivateKey, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)


def signing_private_key(key: SigningKey) -> Ed25519PrivateKey:
    """The private key of `key`, refused when its file is missing, readable by others, or not the pair."""
    path = signing_key_path(key.key_id)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ImproperlyConfigured(f"The private key of signing key {key.key_id} is not at {path}.") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ImproperlyConfigured(f"{path} is readable by other users; chmod 600 it.")
    private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if (
        not isinstance(private_key, Ed25519PrivateKey)
        or public_key_id(private_key.public_key()) != key.key_id
    ):
        raise ImproperlyConfigured(f"{path} does not hold the private key of signing key {key.key_id}.")
    return private_key


def _signing_key_create(*, actor=None, action: str) -> SigningKey:
    private_key = Ed25519PrivateKey.generate()
    public_key = private_key.public_key()
    key_id = public_key_id(public_key)
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    path = signing_key_path(key_id)
    _write_private_key(private_key, path)
    try:
        key = SigningKey.objects.create(key_id=key_id, public_key_pem=pem, status=SigningKeyStatus.ACTIVE)
        audit_record(action=action, obj=key, actor=actor, payload={"key_id": key_id})
    except Exception:
        path.unlink(missing_ok=True)  # no orphan private key for a row that never existed
        raise
    return key


@transaction.atomic
def signing_key_rotate(*, actor=None) -> SigningKey:
    """Retire the active key (if any) and make a new active one. Audited."""
    now = timezone.now()
    retired = list(SigningKey.objects.select_for_update().filter(status=SigningKeyStatus.ACTIVE))
    for old in retired:
        old.status, old.retired_at = SigningKeyStatus.RETIRED, now
        old.save(update_fields=["status", "retired_at"])
        audit_record(action="signing_key.retired", obj=old, actor=actor, payload={"key_id": old.key_id})
    return _signing_key_create(
        actor=actor, action="signing_key.rotated" if retired else "signing_key.created"
    )


def signing_key_active() -> SigningKey:
    """The active key; the first one is made on first use so a fresh installation can issue."""
    key = SigningKey.objects.filter(status=SigningKeyStatus.ACTIVE).first()
    if key is not None:
        return key
    try:
        with transaction.atomic():
            return _signing_key_create(action="signing_key.created")
    except IntegrityError:  # another process made it first (one active key is a constraint)
        return SigningKey.objects.get(status=SigningKeyStatus.ACTIVE)


@transaction.atomic
def signing_key_compromise(*, key: SigningKey, reason: str, actor=None) -> list:
    """Mark `key` compromised and re-sign every live certificate it signed with the active key
    (a fresh one when `key` was the active one). Returns the re-signed certificates. Audited."""
    from apps.certificates.services.certificates import certificate_resign

    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say how the key was compromised."})
    key = SigningKey.objects.select_for_update().get(pk=key.pk)
    if key.status == SigningKeyStatus.COMPROMISED:
        raise ValidationError("This key is already marked compromised.")
    was_active = key.status == SigningKeyStatus.ACTIVE
    now = timezone.now()
    key.status, key.compromised_at, key.compromise_reason = SigningKeyStatus.COMPROMISED, now, reason
    key.retired_at = key.retired_at or now
    key.save(update_fields=["status", "compromised_at", "compromise_reason", "retired_at"])
    audit_record(
        action="signing_key.compromised",
        obj=key,
        actor=actor,
        payload={"key_id": key.key_id, "reason": reason},
    )
    replacement = (
        _signing_key_create(actor=actor, action="signing_key.created") if was_active else signing_key_active()
    )
    resigned = [
        certificate_resign(
            certificate=certificate,
            key=replacement,
            reason=say("certificate.key_compromised", key=key.key_id[:16], reason=reason),
            actor=actor,
        )
        for certificate in key.certificates.filter(status__in=("active", "suspended")).order_by("pk")
    ]
    # Nothing may sign with it again, even by mistake.
    transaction.on_commit(lambda: signing_key_path(key.key_id).unlink(missing_ok=True))
    # Checkpoints signed with the leaked key are no longer trusted: anchor the chain again with the new one.
    audit_checkpoint_after_commit(f"compromise of signing key {key.key_id[:16]}")
    return resigned
