from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "apps.runs"
    label = "runs"
    verbose_name = "Certification programs, campaigns, jobs and evidence"

    def ready(self) -> None:
        # Configure the platform's Celery app in every Django process, so shared tasks bind to it.
        import certification.celery  # noqa: F401
        from apps.runs import checks  # noqa: F401 - registers the system checks
