from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.certificates.models import SigningKey
from apps.certificates.services.keys import signing_key_compromise


class Command(BaseCommand):
    help = (
        "Mark a certificate signing key compromised: nothing it signed verifies any more, its live "
        "certificates are signed again with the active key (a new one if it was active), and its private "
        "file is deleted. Audited."
    )

    def add_arguments(self, parser):
        parser.add_argument("key_id", help="the key id (or a unique prefix of it)")
        parser.add_argument("--reason", required=True)

    def handle(self, *args, key_id: str, reason: str, **options):
        keys = list(SigningKey.objects.filter(key_id__startswith=key_id.lower())[:2])
        if len(keys) != 1:
            raise CommandError(f"{'No' if not keys else 'More than one'} signing key matches {key_id!r}.")
        try:
            resigned = signing_key_compromise(key=keys[0], reason=reason)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(self.style.WARNING(f"Key {keys[0].key_id} marked compromised."))
        for certificate in resigned:
            self.stdout.write(f"  re-signed {certificate.serial} with {certificate.signing_key.key_id}")
