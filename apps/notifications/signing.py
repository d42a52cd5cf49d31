"""Standard Webhooks signatures (https://www.standardwebhooks.com, spec v1) and the encryption of
the endpoints' secrets at rest.

A signature is `v1,` + base64(HMAC-SHA256(key, f"{webhook-id}.{webhook-timestamp}.{body}")), the
key being the base64 part of the `whsec_` secret; it is made by the spec's `standardwebhooks` package,
with which receivers verify it. The secret must be recoverable to sign, so it is not hashed: it is
encrypted (Fernet) under a key in a 0600 file beside the audit chain key, outside the database.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet
from django.conf import settings
from standardwebhooks import Webhook

from certification.secret_files import secret_file

SECRET_PREFIX = "whsec_"  # noqa: S105  # the spec's prefix, not a secret
SECRET_BYTES = 24  # the spec: between 24 and 64 bytes
_fernets: dict[str, Fernet] = {}


def secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The spec's reference library signs; the tests check it against the formula written out."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return str(Webhook(secret).sign(msg_id, moment, body.decode("utf-8")))


def signed_headers(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body),
        "content-type": "application/json",
    }


def secrets_key_path() -> Path:
    """Beside the signing keys and the audit chain key (<CERT_SIGNING_KEY_DIR>/..)."""
    return Path(settings.CERT_SIGNING_KEY_DIR).parent / "webhook-secrets.key"


def _fernet() -> Fernet:
    path = secrets_key_path()
    cached = _fernets.get(str(path))
    if cached is not None:
        return cached
    fernet = Fernet(secret_file(path, Fernet.generate_key).strip())
    _fernets[str(path)] = fernet
    return fernet


def secret_encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def secret_decrypt(ciphertext: str) -> str:
    return _fernet().decrypt(ciphertext.encode()).decode()
