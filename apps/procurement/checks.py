"""System check of the export-control rules: every file loads, and one is in force today."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from django.core.checks import Error, register


@register()
def export_rules_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from apps.procurement.export_control import rule_load, rules_dir

    directory = rules_dir()
    paths = sorted(directory.glob("*.json")) if directory.is_dir() else []
    if not paths:
        return [Error(f"no export-control rule file in {directory}", id="procurement.E001")]
    errors, in_force = [], []
    today = date.today()
    for path in paths:
        try:
            rule = rule_load(path=path)
            effective = date.fromisoformat(rule.effective)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            errors.append(
                Error(f"export rule {path.name} is not readable JSON: {exc}", id="procurement.E002")
            )
            continue
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            errors.append(
                Error(f"export rule {path.name} is incomplete or malformed: {exc!r}", id="procurement.E003")
            )
            continue
        if effective <= today:
            in_force.append(rule)
    if not errors and not in_force:
        errors.append(
            Error(
                f"no export-control rule in {directory} is in force on {today} (every one takes effect later)",
                id="procurement.E004",
            )
        )
    return errors
