from django.core.management.base import BaseCommand, CommandError

from apps.audit.checkpoints import AuditChainBroken, audit_checkpoint_take


class Command(BaseCommand):
    help = "Sign the audit chain's head into a new checkpoint (refused when the chain does not verify)."

    def handle(self, *args, **options):
        try:
            checkpoint = audit_checkpoint_take()
        except AuditChainBroken as exc:
            raise CommandError(f"No checkpoint taken: {exc}.") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Checkpoint {checkpoint.name}: {checkpoint.chain_length} events, "
                f"head {checkpoint.head_hash[:16]}, "
                f"key {checkpoint.key_id[:16]}."
            )
        )
