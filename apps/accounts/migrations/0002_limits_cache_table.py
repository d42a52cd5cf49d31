"""The shared cache's table (settings.CACHE_TABLE): throttle counters and single-use request nonces.

Created whatever the cache backend is now, so switching from Redis to the database later needs no
extra command; `createcachetable` skips a table that already exists.
"""

from django.core.management import call_command
from django.db import migrations

CACHE_TABLE = "cache_entries"  # settings.CACHE_TABLE; literal here so the migration never changes


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", CACHE_TABLE, database=schema_editor.connection.alias, verbosity=0)


def drop_cache_table(apps, schema_editor):
    schema_editor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(CACHE_TABLE)}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunPython(create_cache_table, drop_cache_table)]
