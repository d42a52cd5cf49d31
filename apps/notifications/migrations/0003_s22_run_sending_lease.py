"""A webhook delivery's claim time (the lease of its attempt), and the Celery beat row that re-queues
deliveries whose worker stopped mid-attempt every 5 minutes (editable in the admin)."""

from django.db import migrations, models
from django.utils import timezone

NAME = "notifications: re-queue webhook deliveries stuck in sending"


def create(apps, schema_editor):
    # Deliveries already stuck before this migration have no claim time: their lease starts now.
    apps.get_model("notifications", "WebhookDelivery").objects.filter(
        status="sending", claimed_at__isnull=True
    ).update(claimed_at=timezone.now())
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": "notifications.requeue_stuck",
            "interval": interval,
            "queue": "platform",
            "enabled": True,
        },
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0002_s21_i17_sweep_schedule"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookdelivery",
            name="claimed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(create, remove),
    ]
