"""The audit log in the admin (read-only), and the mixin that audits every admin write elsewhere."""

from __future__ import annotations

from django.contrib import admin
from django.db import models, transaction
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from apps.audit.models import AuditEvent
from apps.audit.services import audit_record


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the admin can list and inspect events, never add, change or delete them."""

    list_display = ["sequence", "occurred_at", "actor_label", "action", "object_type", "object_id"]
    list_filter = ["action", "object_type"]
    search_fields = ["object_id", "actor_label", "hash"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _plain(value):
    """A form value as the audit payload keeps it: objects by id, sets as sorted ids."""
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, models.QuerySet | list | tuple | set):
        return sorted((_plain(v) for v in value), key=str)
    if value is None or isinstance(value, bool | int | float | str | dict):
        return value
    return str(value)


class AuditedAdminMixin:
    """Every add, change and delete through this admin is an audit event of the acting user, in the
    same transaction (the admin's views are atomic): `<model>.created|changed|deleted` with the
    changed fields' new values and the inline rows added, changed or deleted."""

    audit_exclude: tuple[str, ...] = ()

    def _audit(self, request, obj, verb: str, payload: dict) -> None:
        audit_record(
            action=f"{obj._meta.model_name}.{verb}",
            obj=obj,
            actor=request.user,
            payload={"via": "admin", **payload},
        )

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        inlines = []
        for formset in formsets:
            for verb, objects in (("added", formset.new_objects), ("deleted", formset.deleted_objects)):
                inlines += [{verb: f"{o._meta.label_lower}:{o.pk}", "row": str(o)} for o in objects]
            inlines += [
                {"changed": f"{o._meta.label_lower}:{o.pk}", "row": str(o), "fields": fields}
                for o, fields in formset.changed_objects
            ]
        changed = {
            name: _plain(form.cleaned_data.get(name))
            for name in form.changed_data
            if name not in self.audit_exclude
        }
        if change and not changed and not inlines:
            return
        self._audit(
            request,
            form.instance,
            "changed" if change else "created",
            {"fields": changed, "inlines": inlines},
        )

    def delete_model(self, request, obj):
        self._audit(request, obj, "deleted", {"row": str(obj)})
        super().delete_model(request, obj)

    @transaction.atomic
    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self._audit(request, obj, "deleted", {"row": str(obj)})
        super().delete_queryset(request, queryset)


class AuditedPeriodicTaskAdmin(AuditedAdminMixin, beat_admin.PeriodicTaskAdmin):
    """django-celery-beat's schedule admin, with every change (and its bulk actions) audited."""

    def _audit_rows(self, request, queryset, verb: str) -> None:
        for task in queryset:
            self._audit(request, task, verb, {"name": task.name, "task": task.task, "enabled": task.enabled})

    @transaction.atomic
    def enable_tasks(self, request, queryset):
        self._audit_rows(request, queryset, "enabled")
        return super().enable_tasks(request, queryset)

    @transaction.atomic
    def disable_tasks(self, request, queryset):
        self._audit_rows(request, queryset, "disabled")
        return super().disable_tasks(request, queryset)

    @transaction.atomic
    def toggle_tasks(self, request, queryset):
        self._audit_rows(request, queryset, "toggled")
        return super().toggle_tasks(request, queryset)

    def run_tasks(self, request, queryset):
        self._audit_rows(request, queryset, "run")
        return super().run_tasks(request, queryset)


_SCHEDULE_ADMINS = {
    PeriodicTask: AuditedPeriodicTaskAdmin,
    IntervalSchedule: type(
        "AuditedIntervalScheduleAdmin", (AuditedAdminMixin, beat_admin.IntervalScheduleAdmin), {}
    ),
    CrontabSchedule: type(
        "AuditedCrontabScheduleAdmin", (AuditedAdminMixin, beat_admin.CrontabScheduleAdmin), {}
    ),
    SolarSchedule: type("AuditedSolarScheduleAdmin", (AuditedAdminMixin, beat_admin.SolarScheduleAdmin), {}),
    ClockedSchedule: type(
        "AuditedClockedScheduleAdmin", (AuditedAdminMixin, beat_admin.ClockedScheduleAdmin), {}
    ),
}
for _model, _admin_class in _SCHEDULE_ADMINS.items():
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin_class)
