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
    "apps.notifications",
    "apps.procurement",
    "apps.portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # After the session (the switcher's choice is kept there), before CommonMiddleware (Django's order).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "certification.timezones.TimezoneMiddleware",  # after LocaleMiddleware: the zone follows the language
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
                "django.template.context_processors.i18n",
                "django.template.context_processors.tz",
                "apps.portal.context_processors.portal",
            ],
            # {% load recorded %}: texts recorded in English, shown in the reader's language.
            "libraries": {"recorded": "certification.recorded_tags"},
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
TIME_ZONE = "UTC"  # stored and computed in UTC; shown in the viewer's zone (certification.timezones)
USE_I18N = True
USE_TZ = True
# English and Simplified Chinese. A browser's zh-CN (or zh-SG) falls back to zh-hans (Django's LANG_INFO).
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]  # the .po files are committed; the .mo are compiled (make install)
# The zone times are shown in when the viewer chose none (certification.timezones.TimezoneMiddleware).
DISPLAY_TIME_ZONES = {"zh-hans": "Asia/Shanghai"}
DISPLAY_TIME_ZONE_DEFAULT = "UTC"
# The currency a new tender starts with (forms and API), by the language of the request.
TENDER_DEFAULT_CURRENCY = {"zh-hans": "CNY"}
TENDER_DEFAULT_CURRENCY_FALLBACK = "USD"

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
        "apps.accounts.throttles.AuthenticatedUserRateThrottle",  # DRF's user rate, members only
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
KNOX_TOKEN_MODEL = "accounts.ApiToken"  # noqa: S105 - a model label, not a secret
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
    # Tags per resource, summaries, and every operation's error responses with the one error body.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "certification.openapi.errors_and_tags",
    ],
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
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(EMBEDDED_BROKER_DIR / "queue"),
        "data_folder_out": str(EMBEDDED_BROKER_DIR / "queue"),
        "control_folder": str(EMBEDDED_BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.5,
    }
    if CELERY_EMBEDDED
    else {}
)
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
CELERY_TASK_ROUTES = {
    "runs.*": {"queue": "platform"},
    "certificates.*": {"queue": "platform"},
    "notifications.*": {"queue": "platform"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}

# Campaigns: the evaluation step is the certificates app's, called through this one function.
CAMPAIGN_EVALUATOR = env_str("CAMPAIGN_EVALUATOR", "apps.certificates.services.campaign_evaluate")
# Registry edits of a certified chip or target: the certificates app's rule (409 or re-test), called
# by name because the registry must not import the certificates app.
REGISTRY_CERTIFIED_EDIT = "apps.certificates.services.subjects.certified_subject_edit"
RUNNER_STALE_AFTER_S = env_int("RUNNER_STALE_AFTER_S", 180, minimum=10)
JOB_SILENCE_S = env_int("JOB_SILENCE_S", 900, minimum=30)
# Commit–reveal (apps/runs/services/reveal.py): the time a runner has to reveal the sampled outputs,
# on top of the hard limits of the jobs queued before the request on its target's queue.
REVEAL_ANSWER_S = env_int("REVEAL_ANSWER_S", 600, minimum=10)
# The embedded default runs this machine's own runner worker; its private key stays in var/.
EMBEDDED_RUNNER_NAME = env_str("EMBEDDED_RUNNER_NAME", "local-runner")
EMBEDDED_RUNNER_KEY_FILE = env_path("EMBEDDED_RUNNER_KEY_FILE", VAR_DIR / "keys" / "local-runner.pem")
# Certificates: the authority's Ed25519 signing keys. Private halves are files <key_id>.pem (mode 0600)
# in this directory, outside the database and the repository; only public keys are stored.
CERT_SIGNING_KEY_DIR = env_path("CERT_SIGNING_KEY_DIR", VAR_DIR / "keys" / "signing")
CERT_ISSUER_NAME = env_str("CERT_ISSUER_NAME", "")
# The platform's public URL (https://certification.example): the verifiable credentials' issuer is
# did:web of its host, and their status lists live under it. Empty: taken from each request.
CERT_PUBLIC_URL = env_str("CERT_PUBLIC_URL", "")
# OCDS: the prefix of the tenders' open contracting ids, "ocds-" and the six characters the Open
# Contracting Partnership registered for the publisher.
OCDS_OCID_PREFIX = env_str("OCDS_OCID_PREFIX", "ocds-accel0")

# ---------------------------------------------------------------------------------------------
# Limits and security: abuse limits (login lockout, API throttles in a shared cache), transport
# security with HTTPS=1, the Content-Security-Policy, and password reset only with mail.
# ---------------------------------------------------------------------------------------------

# The cache holds throttle counters and single-use request nonces, so
# every web process must see the same one: Redis when CACHE_URL names it (a database of its own:
# clearing the cache empties that database, never point it at the broker's), else a table in the
# platform's database (created by the accounts migration `0002_limits_cache_table`).
# A culled entry would reset a throttle or let a nonce be replayed: the table keeps up to a million
# rows (expired ones go first); a Redis cache must not evict keys that have a time to live.
CACHE_TABLE = "cache_entries"
CACHE_URL = env_str("CACHE_URL")
if CACHE_URL is not None:
    if not CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfiguredEnv(f"CACHE_URL={CACHE_URL!r} is not a redis:// URL")
    CACHES = {
        "default": {
            "BACKEND": "certification.cache.RedisCache",  # Django's, reusing one client per pool
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "certification",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": CACHE_TABLE,
            "OPTIONS": {"MAX_ENTRIES": 1_000_000},
        }
    }

# Behind N reverse proxies the client's address is the N-th from the right of X-Forwarded-For
# (DRF's NUM_PROXIES); with 0 it is the connection's own address. Throttles and lockouts key on it.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
REST_FRAMEWORK["NUM_PROXIES"] = TRUSTED_PROXY_COUNT or None
# Failed Bearer authentications per client address; past it every Bearer request from there is a 429.
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["failed_auth"] = env_str("API_THROTTLE_FAILED_AUTH", "20/min")

# Login lockout (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one username, or from one
# address, logins from there are refused (429) for LOGIN_LOCKOUT_MINUTES, before any password hashing
# (`manage.py axes_reset` lifts lockouts). Locking by username lets anyone lock a known account for
# that long: the price of stopping password guessing spread over many addresses.
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "apps.accounts.throttles.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

# Transport security: behind a TLS-terminating proxy that sets X-Forwarded-Proto.
HTTPS = env_bool("HTTPS", False)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", False)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# Content-Security-Policy (django-csp): the portal loads only its own scripts, styles and images;
# no inline script, style or event handler anywhere. The API docs' bundles are served locally too.
INSTALLED_APPS += ["csp"]
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "csp.middleware.CSPMiddleware"
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "worker-src": ["'self'", "blob:"],  # Redoc's search runs in a worker made from a blob
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Mail: password reset is offered only when the platform can send mail (EMAIL_HOST set);
# otherwise the reset pages say to ask the platform administrator.
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "certification@localhost")
PASSWORD_RESET_ENABLED = bool(EMAIL_HOST)
# Without a mail host (the demo), notification e-mails are written as files under var/mail.
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.filebased.EmailBackend"
)
EMAIL_FILE_PATH = VAR_DIR / "mail"

# Notifications (issue 17, item 3; apps/notifications). Every audit event is offered to these
# listeners inside its transaction; the notifications app turns the ones that concern an
# organization into events, webhooks (Standard Webhooks) and e-mail.
AUDIT_LISTENERS = ["apps.notifications.services.audit_event_notify"]
# Webhook receivers: https only, and never a private, loopback or link-local address (SSRF), unless
# these switches say otherwise (a test receiver on 127.0.0.1, a closed network).
WEBHOOK_ALLOW_HTTP = env_bool("WEBHOOK_ALLOW_HTTP", False)
WEBHOOK_ALLOW_PRIVATE_HOSTS = env_bool("WEBHOOK_ALLOW_PRIVATE_HOSTS", False)
WEBHOOK_TIMEOUT_S = env_int("WEBHOOK_TIMEOUT_S", 10, minimum=1)
# Attempts and their exponential backoff: 10 s, 40 s, 160 s, 11 min, 43 min between the six tries
# (Standard Webhooks asks for retries with exponential backoff and leaves the schedule to the sender).
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 6, minimum=1)
WEBHOOK_BACKOFF_BASE_S = env_int("WEBHOOK_BACKOFF_BASE_S", 10, minimum=1)
# A delivery still "sending" this long after its attempt claimed it lost that attempt (its worker
# stopped: a crash, a kill, a lost host) and is re-queued (notifications.requeue_stuck, every 5 min).
# No attempt outlives CELERY_TASK_TIME_LIMIT (Celery's task_time_limit: the worker process running
# the task is killed and replaced when it is exceeded), so the lease is that limit and a minute for
# the clocks of two worker hosts; it can never be set below the limit.
WEBHOOK_SENDING_LEASE_S = env_int(
    "WEBHOOK_SENDING_LEASE_S", CELERY_TASK_TIME_LIMIT + 60, minimum=CELERY_TASK_TIME_LIMIT
)
# Certificates are announced as expiring this many days before their end (issue 17: 30 days).
NOTIFY_EXPIRY_NOTICE_DAYS = env_int("NOTIFY_EXPIRY_NOTICE_DAYS", 30, minimum=1)

# Open campaigns (queued, running, evaluating or awaiting review) a vendor may have on one target.
MAX_OPEN_CAMPAIGNS_PER_TARGET = env_int("MAX_OPEN_CAMPAIGNS_PER_TARGET", 3, minimum=1)

# --- Bad input (issue 12.8): the one error body everywhere under /api/, bounded JSON and filters. ---
# Outermost, so it also sees responses of Django's resolver 404, handler400 (413) and handler500.
MIDDLEWARE = [
    "certification.errors.ApiErrorBodyMiddleware",
    "certification.errors.RefuseNulMiddleware",  # PostgreSQL stores no NUL: refused in paths and queries
    *MIDDLEWARE,
]
# The API reads JSON only, through a parser with a size, depth and NUL limit; the model upload
# declares its own multipart parsers (its `config` field is a BoundedJSONField).
REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] = ["certification.api.JSONParser"]
# Filters generated from a view's `filterset_fields` refuse out-of-range ids and datetimes (400).
REST_FRAMEWORK["DEFAULT_FILTER_BACKENDS"] = [
    "certification.filters.FilterBackend"
    if backend == "django_filters.rest_framework.DjangoFilterBackend"
    else backend
    for backend in REST_FRAMEWORK["DEFAULT_FILTER_BACKENDS"]
]
# --- end bad input ---

# --- Operations (issue 18): probes and Prometheus metrics (certification/health.py, metrics.py). ---
# django-prometheus times every request (outermost and innermost middleware) and counts queries through
# its wrapper of the database backend.
INSTALLED_APPS += ["django_prometheus"]
MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    *MIDDLEWARE,
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace(
    "django.db.backends.", "django_prometheus.db.backends."
)
# Location on 201 and If-Match (412) on updates; ETag and If-None-Match (304) on every GET, inside it.
_conventions_at = MIDDLEWARE.index("certification.errors.RefuseNulMiddleware") + 1
MIDDLEWARE[_conventions_at:_conventions_at] = [
    "certification.http.HttpConventionsMiddleware",
    "django.middleware.http.ConditionalGetMiddleware",
]
# /metrics answers a request with `Authorization: Bearer <METRICS_TOKEN>`; without a token, only a
# direct request from this host.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
# Platform Celery workers serve their own metrics (ingestion and spot-check seconds) from this port
# upward, one port per worker process; unset, they serve none.
PLATFORM_METRICS_PORT = env_int("PLATFORM_METRICS_PORT", 0, minimum=0)
