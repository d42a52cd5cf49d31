from django.apps import AppConfig


class ProcurementConfig(AppConfig):
    name = "apps.procurement"
    label = "procurement"
    verbose_name = "Procurement"

    def ready(self) -> None:
        from apps.procurement import checks  # noqa: F401 - registers the system checks
