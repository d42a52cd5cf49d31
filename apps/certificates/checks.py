"""System check of the signing key directory: private keys are readable by this user alone."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Error, register


@register()
def signing_key_dir_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """CERT_SIGNING_KEY_DIR (when it exists) and the keys in it give no access to group or others.

    The service makes it 0700 and each key 0600; a directory made or copied by hand may not be."""
    directory = Path(settings.CERT_SIGNING_KEY_DIR)
    if not directory.exists():
        return []  # made, with mode 0700, when the first key is
    if not directory.is_dir():
        return [Error(f"CERT_SIGNING_KEY_DIR {directory} is not a directory", id="certificates.E001")]
    # (path, what it is, the mode it should have, the check's id)
    paths = [(directory, f"CERT_SIGNING_KEY_DIR {directory}", "700", "certificates.E002")]
    paths += [
        (key, f"signing key {key}", "600", "certificates.E003") for key in sorted(directory.glob("*.pem"))
    ]
    errors = []
    for path, name, wanted, check_id in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            errors.append(
                Error(
                    f"{name} has mode {mode:04o}: group or others can reach a private key",
                    hint=f"chmod {wanted} {path}",
                    id=check_id,
                )
            )
    return errors
