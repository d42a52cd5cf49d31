from django.apps import AppConfig


class CertificatesConfig(AppConfig):
    name = "apps.certificates"
    label = "certificates"
    verbose_name = "Certificates"

    def ready(self) -> None:
        from apps.certificates import checks  # noqa: F401 - registers the system checks
