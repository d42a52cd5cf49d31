"""Ed25519 keys of a runner host and the signed envelope a result document travels in.

The envelope carries the canonical JSON text itself, so the bytes that were signed are the
bytes that are verified: {"document_json", "document_sha256", "signature", "key_id", "runner"}.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ENVELOPE_VERSION = "1"


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def keygen(private_path: Path, public_path: Path) -> str:
    """Write a new key pair (private key readable by the owner only); return the key id."""
    key = Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_id_of(key.public_key())


@dataclass(frozen=True)
class RunnerIdentity:
    """Who signs: the runner's registered name and its private key (kept on the runner host)."""

    name: str
    private_key: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        return key_id_of(self.private_key.public_key())

    @classmethod
    def from_file(cls, name: str, key_file: Path) -> RunnerIdentity:
        key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{key_file} does not hold an Ed25519 private key")
        return cls(name=name, private_key=key)

    @classmethod
    def from_env(cls) -> RunnerIdentity:
        name = os.environ.get("RUNNER_NAME")
        key_file = os.environ.get("RUNNER_KEY_FILE")
        if not name or not key_file:
            raise RuntimeError(
                "RUNNER_NAME and RUNNER_KEY_FILE must name this runner and its private key file"
            )
        return cls.from_file(name, Path(key_file))

    def sign_bytes(self, payload: bytes) -> str:
        return base64.b64encode(self.private_key.sign(payload)).decode()

    def envelope(self, canonical_document: bytes) -> dict[str, Any]:
        return {
            "envelope_version": ENVELOPE_VERSION,
            "runner": self.name,
            "key_id": self.key_id,
            "document_json": canonical_document.decode("utf-8"),
            "document_sha256": hashlib.sha256(canonical_document).hexdigest(),
            "signature": self.sign_bytes(canonical_document),
        }


def verify_signature(public_key_pem: str, payload: bytes, signature_b64: str) -> bool:
    """True when `signature_b64` is a valid Ed25519 signature of `payload` by the PEM public key."""
    from cryptography.exceptions import InvalidSignature

    key = serialization.load_pem_public_key(public_key_pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        return False
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), payload)
    except (InvalidSignature, ValueError):
        return False
    return True
