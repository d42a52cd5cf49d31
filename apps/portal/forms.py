"""Portal forms. They check the shape of the input; the services decide (and their refusals are
shown on the same form, in place)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Membership
from apps.registry.selectors import model_artifacts_visible_to, targets_visible_to
from apps.runs.models import Program, ProgramStatus

REASON_MAX = 2000


class ReasonForm(forms.Form):
    """A decision with its written reason (approve, reject, suspend, reinstate, revoke)."""

    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=REASON_MAX,
        strip=True,
        help_text=_("Recorded in the audit log and shown to the vendor."),
    )


class WaiveForm(ReasonForm):
    criterion = forms.CharField(max_length=16, widget=forms.HiddenInput)


def form_error_from(form: forms.Form, error: Exception) -> None:
    """Put a service's refusal (ValidationError with or without fields, PermissionDenied) on the form."""
    if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
        for field_name, messages in error.message_dict.items():
            visible = field_name in form.fields and not form.fields[field_name].widget.is_hidden
            form.add_error(field_name if visible else None, messages)
    elif isinstance(error, ValidationError):
        form.add_error(None, error.messages)
    else:
        form.add_error(None, str(error) or "You may not do this.")


class CampaignSubmitForm(forms.Form):
    """A vendor's request to certify one of its targets under an active program at a level."""

    target = forms.ModelChoiceField(
        queryset=None, label=_("Hardware target"), empty_label=_("Choose a hardware target")
    )
    program = forms.ModelChoiceField(queryset=None, label=_("Program"), empty_label=_("Choose a program"))
    level = forms.ChoiceField(label=_("Level"), help_text=_("Higher levels need more suites and models."))
    models = forms.ModelMultipleChoiceField(
        queryset=None,
        required=False,
        label=_("Models"),
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The models to run; a level states how many it needs."),
    )

    def __init__(self, *args, membership: Membership, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].queryset = targets_visible_to(membership).order_by("slug")
        programs = Program.objects.filter(status=ProgramStatus.ACTIVE).order_by("code", "version")
        self.fields["program"].queryset = programs
        self.fields["models"].queryset = model_artifacts_visible_to(membership).order_by("name", "version")
        levels: dict[str, str] = {}
        for program in programs:
            for level in program.definition.get("levels", []):
                levels.setdefault(level["code"], level.get("title", level["code"]))
        self.fields["level"].choices = [("", _("Choose a level")), *levels.items()]

    def clean(self):
        data = super().clean()
        program, level = data.get("program"), data.get("level")
        if program is not None and level and program.level(level) is None:
            self.add_error(
                "level", f"{program} has no level {level!r}; use one of {', '.join(program.level_codes())}."
            )
        return data
