"""Does this host match the operating environment the job was registered for?"""

from __future__ import annotations

import re
from typing import Any


def _base_version(text: str) -> str:
    return str(text).split("+", 1)[0].strip()


def fingerprint_mismatches(actual: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Every way the runner's fingerprint differs from the target's registered stack.

    Empty expected values are not checked. Torch versions compare without the local build tag
    (2.13.0 == 2.13.0+cpu), because vendors' builds add their own tags.
    """
    problems: list[str] = []
    backend = expected.get("backend")
    aliases = {"rocm": "cuda"}
    if backend and aliases.get(backend, backend) != aliases.get(
        str(actual.get("backend")), actual.get("backend")
    ):
        problems.append(f"backend is {actual.get('backend')!r}, the target registers {backend!r}")
    if not actual.get("available", False):
        problems.append(f"device unavailable: {actual.get('unavailable_reason')}")
    torch_version = expected.get("torch_version")
    if torch_version and _base_version(torch_version) != _base_version(actual.get("torch_version", "")):
        problems.append(
            f"torch {actual.get('torch_version')} runs here, the target registers {torch_version}"
        )
    not_checkable = set(actual.get("not_checkable") or [])
    for key in ("driver_version", "runtime_version"):
        wanted = expected.get(key)
        if not wanted:
            continue
        if key in not_checkable or not actual.get(key):
            problems.append(
                f"the target registers {key} {wanted!r}, but the {actual.get('backend')} backend "
                f"cannot report {key} on this host, so it is not checkable: clear the field on the "
                "target or install what reports it"
            )
        elif str(actual.get(key)) != str(wanted):
            problems.append(f"{key} is {actual.get(key)!r}, the target registers {wanted!r}")
    for plugin, version in (expected.get("plugin_versions") or {}).items():
        have = (actual.get("plugin_versions") or {}).get(plugin)
        if str(have or "") != str(version):
            problems.append(f"plugin {plugin} is {have!r}, the target registers {version!r}")
    problems += device_identity_mismatches(actual.get("device_identity"), expected.get("device_identity"))
    count = expected.get("device_count")
    have_count = actual.get("device_count")
    if count and isinstance(have_count, int) and have_count < count:
        problems.append(f"{have_count} device(s) present, the target registers {count}")
    return problems


def _pci(text: str) -> str:
    """A PCI address in one spelling: NVML writes 00000000:1B:00.0, the device properties 0000:1b:00.0."""
    match = re.fullmatch(
        r"\s*(?:([0-9a-fA-F]+):)?([0-9a-fA-F]+):([0-9a-fA-F]+)(?:\.([0-9a-fA-F]+))?\s*", text
    )
    if not match:
        return text.strip().lower()
    domain, bus, device, function = (int(part or "0", 16) for part in match.groups())
    return f"{domain:04x}:{bus:02x}:{device:02x}.{function:x}"


def _identity_value(key: str, value: Any) -> str:
    text = str(value)
    if key == "pci_bus_id":
        return _pci(text)
    return " ".join(text.split()).casefold()


def device_identity_mismatches(actual: Any, expected: Any) -> list[str]:
    """Every registered identity fact (name, pci_bus_id, uuid, serial) the runner's device does not
    show. A fact the target registers but the runner cannot read is a mismatch too: the device would
    otherwise go unidentified. Empty registered values are not checked."""
    if not isinstance(expected, dict) or not expected:
        return []
    have = actual if isinstance(actual, dict) else {}
    problems = []
    for key, wanted in sorted(expected.items()):
        if wanted in (None, ""):
            continue
        got = have.get(key)
        if got in (None, ""):
            problems.append(
                f"the target registers device {key} {wanted!r}, but this runner cannot read the "
                f"device's {key}, so the device is not identified"
            )
        elif _identity_value(key, got) != _identity_value(key, wanted):
            problems.append(f"device {key} is {got!r}, the target registers {wanted!r}")
    return problems
