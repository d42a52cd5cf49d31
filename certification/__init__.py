"""The Django project. The Celery app is loaded when Django starts (apps.runs' AppConfig.ready), not
on import of this package, so `python -m certification.verify` needs nothing but `cryptography`."""


def __getattr__(name: str):
    # `celery -A certification` and `from certification import celery_app` still find the app.
    if name == "celery_app":
        from certification.celery import app

        return app
    raise AttributeError(name)
