"""Celery beat rows (django-celery-beat's DatabaseScheduler) for the certificates' scheduled work.
They are data, editable in the admin: change an interval there, not here."""

from django.db import migrations

SCHEDULES = [
    # (name, task, every, period)
    ("certificates: expire past validity", "certificates.expire", 1, "hours"),
    ("certificates: submit due surveillance runs", "certificates.surveillance_schedule", 1, "days"),
    ("certificates: suspend on failed surveillance", "certificates.surveillance_sweep", 15, "minutes"),
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
        ("certificates", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
