"""System checks of what runs owns: the evaluator it calls through a settings string, and the
certification programs it loads (checked at every start, in `manage.py check` and in CI)."""

from __future__ import annotations

import inspect
import json
from typing import Any

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string


@register()
def evaluator_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """CAMPAIGN_EVALUATOR names a callable taking `campaign_id` (runs calls certificates through it)."""
    path = getattr(settings, "CAMPAIGN_EVALUATOR", "")
    try:
        evaluate = import_string(path)
    except ImportError as exc:
        return [
            Error(
                f"CAMPAIGN_EVALUATOR {path!r} cannot be imported: {exc}",
                hint="Name a function as 'package.module.function' (default "
                "apps.certificates.services.campaign_evaluate).",
                id="runs.E001",
            )
        ]
    if not callable(evaluate):
        return [Error(f"CAMPAIGN_EVALUATOR {path!r} is not callable", id="runs.E002")]
    try:
        inspect.signature(evaluate).bind(campaign_id=0)
    except TypeError:
        return [Error(f"CAMPAIGN_EVALUATOR {path!r} does not take campaign_id=<int>", id="runs.E002")]
    except ValueError:  # a builtin without a signature: nothing more to check
        pass
    return []


@register()
def programs_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Every program file is JSON the platform can load, and no two share a code and version."""
    from apps.runs.services.programs import program_definition_check, program_files

    errors: list[Error] = []
    seen: dict[tuple[str, str], str] = {}
    for path in program_files():
        try:
            definition = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            errors.append(Error(f"program {path.name} is not readable JSON: {exc}", id="runs.E003"))
            continue
        if not isinstance(definition, dict):
            errors.append(Error(f"program {path.name} is not a JSON object", id="runs.E003"))
            continue
        try:
            program_definition_check(definition)
        except ValidationError as exc:
            errors.append(Error(f"program {path.name} is invalid: {'; '.join(exc.messages)}", id="runs.E004"))
            continue
        key = (str(definition["code"]), str(definition["version"]))
        if key in seen:
            errors.append(
                Error(f"programs {seen[key]} and {path.name} are both {key[0]} {key[1]}", id="runs.E005")
            )
        seen[key] = path.name
    return errors
