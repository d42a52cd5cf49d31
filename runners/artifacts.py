"""Model weights for a job, on a runner host that does not share the platform's storage.

The spec names each model's weights by sha256, a path on shared storage and a URL on the platform.
When the path is not readable here, the weights are fetched from the URL into a local cache: the
request is signed with the runner's key (the platform serves a file only to a runner bound to a
target with a queued or running job that uses it), and the bytes are checked against the sha256
while they stream, before the file takes its final name.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urljoin, urlparse

from runners.signing import RunnerIdentity

CHUNK = 1 << 20


class ArtifactUnavailable(RuntimeError):
    """The weights could not be found here nor fetched intact from the platform."""


def request_signature_payload(method: str, path: str, timestamp: str) -> bytes:
    """What a runner signs to fetch an artifact; the platform rebuilds the same bytes to verify."""
    return f"{method}\n{path}\n{timestamp}".encode()


def signed_headers(identity: RunnerIdentity, method: str, path: str) -> dict[str, str]:
    timestamp = datetime.now(UTC).isoformat()
    return {
        "X-Runner": identity.name,
        "X-Runner-Key-Id": identity.key_id,
        "X-Runner-Timestamp": timestamp,
        "X-Runner-Signature": identity.sign_bytes(request_signature_payload(method, path, timestamp)),
    }


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, sha256: str, *, identity: RunnerIdentity, cache_dir: Path, timeout: float = 60) -> Path:
    """The cached file for `sha256`, downloading it from `url` when it is not cached yet."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / f"{sha256}.safetensors"
    if final.exists() and _sha256_of(final) == sha256:
        return final
    path = urlparse(url).path
    request = urllib.request.Request(url, headers=signed_headers(identity, "GET", path), method="GET")  # noqa: S310
    partial = cache_dir / f".{sha256}.{os.getpid()}.part"
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, partial.open("wb") as out:  # noqa: S310
            for chunk in iter(lambda: response.read(CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
    except (HTTPError, URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise ArtifactUnavailable(f"fetching {url}: {exc}") from None
    if digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise ArtifactUnavailable(f"{url} sent bytes whose sha256 is {digest.hexdigest()}, not {sha256}")
    partial.replace(final)
    return final


def localize_models(
    spec: dict[str, Any], *, identity: RunnerIdentity, platform_url: str | None, cache_dir: Path
) -> dict[str, Any]:
    """A copy of the spec whose models' weights_path are readable on this host."""
    models = []
    for entry in spec.get("models") or []:
        path, sha256, url = entry.get("weights_path"), entry.get("sha256"), entry.get("weights_url")
        if path and Path(path).is_file() or not (sha256 and url):
            models.append(entry)
            continue
        if not platform_url:
            raise ArtifactUnavailable(
                f"{entry.get('name')}: {path} is not on this host and PLATFORM_URL is not set to fetch it"
            )
        local = fetch(urljoin(platform_url, url), sha256, identity=identity, cache_dir=cache_dir)
        models.append({**entry, "weights_path": str(local)})
    return {**spec, "models": models} if "models" in spec else spec
