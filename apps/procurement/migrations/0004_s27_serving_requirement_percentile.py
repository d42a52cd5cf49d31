"""Session 27: a serving requirement states the percentile its bound holds at.

Requirements saved before did not, and were met by a figure certified at any percentile (a p90 figure
met a bound the buyer may have meant at p99). They are read at MLPerf's Server percentile, the default
for a requirement that states none (apps/procurement/requirements.py SERVING_PERCENTILE_DEFAULT, with
its source); this writes it into their params, marked as the default, so that their stored params, the
API and their requirement line say so. Saved evaluations keep their snapshots (what was judged then).
The value is written here as a literal, as the default was when this migration was written.
"""

from django.db import migrations

SERVING_KINDS = ("serving_qps", "serving_tokens")
PERCENTILE = 0.99  # runners/serving_bound.py MLPERF_SERVER_PERCENTILE in session 27


def forwards(apps, schema_editor):
    Requirement = apps.get_model("procurement", "Requirement")
    for requirement in Requirement.objects.filter(kind__in=SERVING_KINDS).iterator():
        params = dict(requirement.params or {})
        if params.get("percentile") is not None:
            continue
        params.update(percentile=PERCENTILE, percentile_default=True)
        requirement.params = params
        requirement.save(update_fields=["params"])


def backwards(apps, schema_editor):
    Requirement = apps.get_model("procurement", "Requirement")
    for requirement in Requirement.objects.filter(kind__in=SERVING_KINDS).iterator():
        params = dict(requirement.params or {})
        if params.pop("percentile_default", None) is True:
            params.pop("percentile", None)
            requirement.params = params
            requirement.save(update_fields=["params"])


class Migration(migrations.Migration):
    dependencies = [("procurement", "0003_s21_i15_serving_energy_requirement")]

    operations = [migrations.RunPython(forwards, backwards)]
