from django.core.management.base import BaseCommand, CommandError

from apps.audit.services import audit_chain_verify


class Command(BaseCommand):
    help = (
        "Verify the audit log's keyed hash chain against the signed checkpoints; exits non-zero and "
        "names the first broken link, a rewrite, or a truncated tail."
    )

    def handle(self, *args, **options):
        verdict = audit_chain_verify()
        for note in verdict.notes:
            self.stdout.write(f"note: {note}")
        if not verdict.ok:
            if verdict.broken_sequence is None:  # the checkpoints themselves fail
                raise CommandError(f"Audit checkpoints fail verification: {verdict.reason}.")
            raise CommandError(
                f"Audit chain broken at event #{verdict.broken_sequence}: {verdict.reason} "
                f"({verdict.checked} events verified before it)."
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {verdict.checked} events."))
