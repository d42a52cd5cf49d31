"""Celery beat rows (django-celery-beat's DatabaseScheduler) for the runs' sweeps; editable in the admin."""

from django.db import migrations

SCHEDULES = [
    # (name, task, every, period)
    (
        "runs: runner health (stale heartbeat -> offline, jobs requeued)",
        "runs.sweep_runner_health",
        1,
        "minutes",
    ),
    ("runs: stuck jobs (deadline passed, silent runner)", "runs.sweep_stuck_jobs", 2, "minutes"),
]


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, every, period in SCHEDULES:
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
        PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "interval": interval, "queue": "platform", "enabled": True}
        )


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, *_ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
