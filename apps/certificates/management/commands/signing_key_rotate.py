from django.core.management.base import BaseCommand

from apps.certificates.services.keys import signing_key_path, signing_key_rotate


class Command(BaseCommand):
    help = (
        "Make a new active certificate signing key and retire the old one (audited). "
        "Certificates signed by the old key still verify with it."
    )

    def handle(self, *args, **options):
        key = signing_key_rotate(actor=None)
        self.stdout.write(self.style.SUCCESS(f"New active signing key {key.key_id}"))
        self.stdout.write(
            f"Private key: {signing_key_path(key.key_id)} (mode 0600; back it up, never commit it)"
        )
