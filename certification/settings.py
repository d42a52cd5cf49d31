"""Settings of the certification platform, read from the environment (see certification/env.py).

The embedded default (no environment at all) is a SQLite file under var/ and a broker in files under
var/broker served by background worker processes (`manage.py embedded_worker`); production sets DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY and ALLOWED_HOSTS.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from certification.env import (
    ImproperlyConfiguredEnv,
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_path,
    env_str,
    read_secret_file,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("CERT_VAR_DIR", BASE_DIR / "var")

DEBUG = env_bool("DEBUG", False)
# SECRET_KEY from the environment, or from a file outside the repository (`make` writes
# var/secret_key once with a random value for the embedded set-up).
SECRET_KEY = env_str("SECRET_KEY") or read_secret_file(env_path("SECRET_KEY_FILE", VAR_DIR / "secret_key"))
if SECRET_KEY is None:
    if not DEBUG:
        raise ImproperlyConfiguredEnv("SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off")
    SECRET_KEY = "debug-only-insecure-key"  # noqa: S105 - DEBUG on a developer's machine only
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "apps.accounts",
    "apps.audit",
    "apps.registry",
    "apps.runs",
    "apps.certificates",
    "apps.procurement",
    "apps.portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "certification.urls"
WSGI_APPLICATION = "certification.wsgi.application"
ASGI_APPLICATION = "certification.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.portal.context_processors.portal",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'certification.sqlite3'}")
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "certification" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Uploaded model weights and stored result documents: data only, never executed or unpickled.
MEDIA_ROOT = env_path("ARTIFACT_STORAGE_DIR", VAR_DIR / "artifacts")
MEDIA_URL = "/artifacts/"
ARTIFACT_MAX_UPLOAD_BYTES = env_int("ARTIFACT_MAX_UPLOAD_BYTES", 2 * 1024**3, minimum=1024)
# Request bodies other than file uploads stay small; files stream to disk past 2.5 MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024**2, minimum=1024)
FILE_UPLOAD_TEMP_DIR = None

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "certification.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "certification.api.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_THROTTLE_ANON", "120/min"),
        "user": env_str("API_THROTTLE_USER", "2000/min"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Bearer",
    "TOKEN_PREFIX": "acp_",
    "TOKEN_TTL": timedelta(days=env_int("API_TOKEN_TTL_DAYS", 90, minimum=1)),
    "AUTO_REFRESH": False,
}
KNOX_TOKEN_MODEL = "accounts.ApiToken"
# knox's own migrations create its default token table even though the model is swapped for
# accounts.ApiToken; an orphan table that references auth_user would also block test flushes.
MIGRATION_MODULES = {"knox": None}

SPECTACULAR_SETTINGS = {
    "TITLE": "AI Accelerator Certification API",
    "DESCRIPTION": "Vendors register chips, hardware targets and models and request certification; "
    "anyone verifies certificates.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "state" or "status": name each choice set after its model.
    "ENUM_NAME_OVERRIDES": {
        "CampaignStateEnum": "apps.runs.models.CampaignState",
        "JobStateEnum": "apps.runs.models.JobState",
        "ProgramStatusEnum": "apps.runs.models.ProgramStatus",
        "RunnerStatusEnum": "apps.registry.models.RunnerStatus",
        "CertificateStatusEnum": "apps.certificates.models.CertificateStatus",
        "SigningKeyStatusEnum": "apps.certificates.models.SigningKeyStatus",
    },
}

# Celery. Without CELERY_BROKER_URL, the embedded default: a broker made of files under var/broker
# (kombu's filesystem transport, no server) served by the worker processes that
# `manage.py embedded_worker` starts (`make run` does): the same tasks and queues as with Redis or
# RabbitMQ, and never a suite inside a web request.
CELERY_EMBEDDED = env_str("CELERY_BROKER_URL") is None
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "filesystem://localhost//"
EMBEDDED_BROKER_DIR = env_path("EMBEDDED_BROKER_DIR", VAR_DIR / "broker")
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "data_folder_in": str(EMBEDDED_BROKER_DIR / "queue"), "data_folder_out": str(EMBEDDED_BROKER_DIR / "queue"),
    "control_folder": str(EMBEDDED_BROKER_DIR / "control"), "store_processed": False, "polling_interval": 0.5,
} if CELERY_EMBEDDED else {}
# Progress and results travel as messages to the platform queue; no result backend is needed.
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND")
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
# Only tests set this: dispatch then runs the runner in process (apps/runs/dispatch.py).
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "platform"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
CELERY_TASK_ROUTES = {"runs.*": {"queue": "platform"}, "certificates.*": {"queue": "platform"}}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG and env_bool("HTTPS", False):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Campaigns: the evaluation step is the certificates app's, called through this one function.
CAMPAIGN_EVALUATOR = env_str("CAMPAIGN_EVALUATOR", "apps.certificates.services.campaign_evaluate")
RUNNER_STALE_AFTER_S = env_int("RUNNER_STALE_AFTER_S", 180, minimum=10)
JOB_SILENCE_S = env_int("JOB_SILENCE_S", 900, minimum=30)
# The embedded default runs this machine's own runner worker; its private key stays in var/.
EMBEDDED_RUNNER_NAME = env_str("EMBEDDED_RUNNER_NAME", "local-runner")
EMBEDDED_RUNNER_KEY_FILE = env_path("EMBEDDED_RUNNER_KEY_FILE", VAR_DIR / "keys" / "local-runner.pem")
# Certificates: the authority's Ed25519 signing keys. Private halves are files <key_id>.pem (mode 0600)
# in this directory, outside the database and the repository; only public keys are stored.
CERT_SIGNING_KEY_DIR = env_path("CERT_SIGNING_KEY_DIR", VAR_DIR / "keys" / "signing")
CERT_ISSUER_NAME = env_str("CERT_ISSUER_NAME", "")
