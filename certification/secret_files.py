"""Secret files beside the signing keys (the audit chain key, the webhook secrets' key): made once,
atomically, readable by their owner only, and refused when others can read them."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def secret_file(path: Path, make: Callable[[], bytes]) -> bytes:
    """The bytes of `path`, written first from `make()` in a 0600 file if it does not exist yet.

    The first write goes to a scratch name and is hard-linked into place, so concurrent first uses
    all read the one that won; a file that group or others may read is refused."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        scratch = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(make())
        try:
            os.link(scratch, path)  # atomic: a concurrent first use keeps the one that won
        except FileExistsError:
            pass
        finally:
            scratch.unlink(missing_ok=True)
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ImproperlyConfigured(f"{path} is readable by other users; chmod 600 it.")
    return path.read_bytes()
