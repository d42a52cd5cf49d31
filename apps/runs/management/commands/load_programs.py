import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.runs.services.programs import program_files, program_load


class Command(BaseCommand):
    help = "Load certification programs from their data files (apps/runs/programs/*.json or the given files)."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="*", type=Path)

    def handle(self, *args, files, **options):
        for path in files or program_files():
            try:
                program, created = program_load(definition=json.loads(path.read_text()))
            except (ValidationError, json.JSONDecodeError, OSError) as exc:
                raise CommandError(f"{path}: {exc}") from None
            effective = program.definition.get("effective")
            applies = f", applies from {effective}" if effective else ""
            self.stdout.write(f"{'loaded' if created else 'unchanged'}: {program} ({path.name}{applies})")
