"""Hardware target slugs are unique per vendor (and name the queue `target.<vendor>.<slug>`)."""

import django.db.models.deletion
from django.db import migrations, models

import apps.registry.models


def vendor_from_chip(apps, schema_editor):
    HardwareTarget = apps.get_model("registry", "HardwareTarget")
    for target in HardwareTarget.objects.select_related("chip").only("pk", "chip__vendor_id").iterator():
        HardwareTarget.objects.filter(pk=target.pk).update(vendor_id=target.chip.vendor_id)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("registry", "0002_chip_sku_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="hardwaretarget",
            name="vendor",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="targets",
                to="accounts.organization",
            ),
        ),
        migrations.RunPython(vendor_from_chip, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="hardwaretarget",
            name="vendor",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="targets",
                to="accounts.organization",
            ),
        ),
        migrations.AlterField(
            model_name="hardwaretarget",
            name="slug",
            field=models.CharField(max_length=64, validators=[apps.registry.models.slug_validator]),
        ),
        migrations.AddConstraint(
            model_name="hardwaretarget",
            constraint=models.UniqueConstraint(
                fields=("vendor", "slug"), name="target_slug_unique_per_vendor"
            ),
        ),
    ]
