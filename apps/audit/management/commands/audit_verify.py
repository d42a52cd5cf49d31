from django.core.management.base import BaseCommand, CommandError

from apps.audit.services import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the audit log's hash chain; exits non-zero and names the first broken link."

    def handle(self, *args, **options):
        verdict = audit_chain_verify()
        if not verdict.ok:
            raise CommandError(f"Audit chain broken at event #{verdict.broken_sequence}: {verdict.reason} "
                               f"({verdict.checked} events verified before it).")
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {verdict.checked} events."))
