"""Copies of the signed subject on each certificate (chip SKU and name, target slug, backend), filled
for existing certificates from their signed payload text, never from the live registry rows."""

import json

from django.db import migrations, models


def _columns(payload: dict) -> dict[str, str]:
    # A copy of apps.certificates.models.subject_columns as of this migration.
    subject = payload.get("subject") or {}
    chip, target = subject.get("chip") or {}, subject.get("target") or {}
    return {
        "subject_chip_sku": str(chip.get("sku") or ""),
        "subject_chip_name": str(chip.get("name") or ""),
        "subject_target_slug": str(target.get("slug") or ""),
        "subject_backend": str(target.get("backend") or ""),
    }


def fill_from_signed_payload(apps, schema_editor):
    Certificate = apps.get_model("certificates", "Certificate")
    rows = Certificate.objects.only("pk", "payload_json").order_by("pk")
    batch = []
    for certificate in rows.iterator(chunk_size=500):
        for name, value in _columns(json.loads(certificate.payload_json)).items():
            setattr(certificate, name, value)
        batch.append(certificate)
        if len(batch) == 500:
            Certificate.objects.bulk_update(batch, list(_columns({})))
            batch = []
    if batch:
        Certificate.objects.bulk_update(batch, list(_columns({})))


class Migration(migrations.Migration):
    dependencies = [
        ("certificates", "0003_signing_key_compromise"),
    ]

    operations = [
        migrations.AddField(
            model_name="certificate",
            name="subject_backend",
            field=models.CharField(blank=True, help_text="Backend as signed", max_length=32),
        ),
        migrations.AddField(
            model_name="certificate",
            name="subject_chip_name",
            field=models.CharField(blank=True, help_text="Chip name as signed", max_length=200),
        ),
        migrations.AddField(
            model_name="certificate",
            name="subject_chip_sku",
            field=models.CharField(blank=True, help_text="Chip SKU as signed", max_length=64),
        ),
        migrations.AddField(
            model_name="certificate",
            name="subject_target_slug",
            field=models.CharField(blank=True, help_text="Target slug as signed", max_length=64),
        ),
        migrations.RunPython(fill_from_signed_payload, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="certificate",
            index=models.Index(fields=["subject_chip_sku"], name="certificate_subject_sku"),
        ),
        migrations.AddIndex(
            model_name="certificate",
            index=models.Index(fields=["subject_backend"], name="certificate_subject_backend"),
        ),
    ]
