"""What each architecture expects of an uploaded weights file, checked at upload from the header alone.

The expectations are the runners' own (runners/models/loading.py): the tensor names and shapes
the module built from the config holds. An upload whose weights would not load for its
architecture and config is refused with the first mismatch, instead of being registered and
failing (or, worse, being replaced) on the runner.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _


def architecture_check_weights(
    *, architecture: str, config: dict[str, Any], tensors: dict[str, dict]
) -> None:
    """Raise ValidationError unless ``tensors`` (name -> {"dtype", "shape"}, from the safetensors
    header) are exactly what ``architecture`` with ``config`` expects (optional extras allowed)."""
    from runners.models.errors import ConfigMismatchError, UnknownArchitectureError
    from runners.models.loading import expected_tensors, first_tensor_mismatch

    try:
        expected, optional = expected_tensors(architecture, config)
    except UnknownArchitectureError:
        raise ValidationError(
            {"architecture": _("The runners do not implement %(name)r.") % {"name": architecture}}
        ) from None
    except ConfigMismatchError as exc:
        raise ValidationError({"config": _("Not a valid config: %(error)s.") % {"error": exc}}) from None
    stored = {name: tuple(entry["shape"]) for name, entry in tensors.items()}
    mismatch = first_tensor_mismatch(stored, expected, optional)
    if mismatch is not None:
        raise ValidationError(
            {
                "weights": _("The weights do not match %(name)s with this config: %(mismatch)s.")
                % {"name": architecture, "mismatch": mismatch}
            }
        )


def architecture_layouts() -> str:
    """Every architecture's expected tensors, as text for the API schema."""
    from runners.models.layouts import LAYOUTS, layout_text

    return "\n\n".join(layout_text(name) for name in sorted(LAYOUTS))
