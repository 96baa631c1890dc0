"""Settings for Upsert Console, read once from the environment.

Every value has a safe local default so that ``make demo`` and ``make test`` work on a fresh
machine; ``PRODUCTION=true`` turns on the hardening that ``manage.py check --deploy`` asks for
and refuses to start without real secrets.
"""

import base64
import hashlib
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from upserts.milvus.network import DEFAULT_DENIED_NETWORKS, parse_networks

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

PRODUCTION = env.bool("PRODUCTION", default=False)
DEBUG = env.bool("DEBUG", default=False) and not PRODUCTION

_LOCAL_SECRET_KEY = "local-only-upsert-console-key-never-use-in-production-0123456789"
SECRET_KEY = env.str("SECRET_KEY", default=_LOCAL_SECRET_KEY)
if PRODUCTION and SECRET_KEY == _LOCAL_SECRET_KEY:
    raise ImproperlyConfigured("PRODUCTION is set: give SECRET_KEY a long random value.")

# Cluster tokens are encrypted at rest with Fernet. The first key encrypts; every key listed
# decrypts, so a key is rotated by putting the new one first, running
# `manage.py rotate_encryption_key`, then dropping the old one.
_local_encryption_key = base64.urlsafe_b64encode(
    hashlib.sha256(f"field-encryption:{SECRET_KEY}".encode()).digest()
).decode()
FIELD_ENCRYPTION_KEYS: list[str] = env.list("FIELD_ENCRYPTION_KEY", default=[])
if not FIELD_ENCRYPTION_KEYS:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "PRODUCTION is set: give FIELD_ENCRYPTION_KEY a Fernet key (python -c "
            '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())").'
        )
    FIELD_ENCRYPTION_KEYS = [_local_encryption_key]

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # django.contrib.admin, its login behind the console's throttle (console/admin.py).
    "console.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "upserts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before the CSRF check, which reads the body: see upserts/middleware.py.
    "upserts.middleware.UploadGateMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "upserts.views.access.DeclaredAccessMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"

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
            ],
        },
    },
]

# Database: DATABASE_URL (PostgreSQL in production and CI), else a local SQLite file in WAL
# mode so the web process and the worker can read and write at the same time.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory, so a Celery worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / "test-db.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Failed logins within the window, per username and per client IP, before logins are refused.
LOGIN_FAILURE_WINDOW_SECONDS = env.int("LOGIN_FAILURE_WINDOW_SECONDS", default=15 * 60)
LOGIN_FAILURES_PER_USERNAME = env.int("LOGIN_FAILURES_PER_USERNAME", default=5)
LOGIN_FAILURES_PER_IP = env.int("LOGIN_FAILURES_PER_IP", default=30)
# Trust X-Forwarded-For for client IPs (audit, throttling) only behind a proxy that sets it.
TRUST_X_FORWARDED_FOR = env.bool("TRUST_X_FORWARDED_FOR", default=False)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# Static files are served by WhiteNoise (no CDN: the console works offline).
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = not PRODUCTION

# Uploaded entity files live in Django storage: this host's disk (the default), or an
# S3-compatible object store through django-storages, which every web and worker host reads
# and nothing else is shared but PostgreSQL and Redis. Credentials come from the environment
# as boto3 reads them (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an instance role).
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media")))
MEDIA_URL = "media/"
UPLOAD_STORAGE = env.str("UPLOAD_STORAGE", default="local")
if UPLOAD_STORAGE not in ("local", "s3"):
    raise ImproperlyConfigured("UPLOAD_STORAGE is `local` or `s3`.")
_upload_storage: dict[str, object] = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
if UPLOAD_STORAGE == "s3":
    if not env.str("S3_BUCKET", default=""):
        raise ImproperlyConfigured("UPLOAD_STORAGE is s3: name the bucket in S3_BUCKET.")
    _upload_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("S3_BUCKET"),
            "location": env.str("S3_PREFIX", default=""),
            "endpoint_url": env.str("S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("S3_REGION", default="") or None,
            # MinIO and most self-hosted stores want path-style addresses.
            "addressing_style": "path" if env.bool("S3_PATH_STYLE", default=False) else None,
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": True,
        },
    }
STORAGES = {
    "default": _upload_storage,
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=2 * 1024**3)
# A gzip file may expand to at most this much; a gzip bomb stops there with a clear error.
UPLOAD_MAX_DECOMPRESSED_BYTES = env.int("UPLOAD_MAX_DECOMPRESSED_BYTES", default=20 * 1024**3)
# What one row may cost to read, checked on its text before it is parsed: a row past either
# bound fails alone. Parsed JSON can take 30 times its text, so 4 MiB a row stays near 120 MB.
UPLOAD_MAX_ROW_BYTES = env.int("UPLOAD_MAX_ROW_BYTES", default=4 * 1024**2)
UPLOAD_MAX_NESTING_DEPTH = env.int("UPLOAD_MAX_NESTING_DEPTH", default=64)
# The upload step reads at most this much of a file (and of what it decompresses to) to find
# and count its first rows; a file whose first rows are not within it is refused.
UPLOAD_ESTIMATE_READ_BYTES = env.int("UPLOAD_ESTIMATE_READ_BYTES", default=64 * 1024**2)
# Parquet is decoded a record batch at a time, as many rows as fit in this many bytes.
UPLOAD_MAX_PARQUET_BATCH_BYTES = env.int("UPLOAD_MAX_PARQUET_BATCH_BYTES", default=32 * 1024**2)
# ... in a process of its own that may map this much memory beyond its start: a cell that needs
# more (run-length encoding packs a billion values into kilobytes) fails the decoder, not the host.
UPLOAD_MAX_PARQUET_DECODE_BYTES = env.int("UPLOAD_MAX_PARQUET_DECODE_BYTES", default=256 * 1024**2)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# A request body is refused from its Content-Length before a byte of it is read: an upload may
# be UPLOAD_MAX_BYTES plus this much for its form fields; any other body (API JSON included)
# DATA_UPLOAD_MAX_MEMORY_SIZE.
UPLOAD_FORM_OVERHEAD_BYTES = env.int("UPLOAD_FORM_OVERHEAD_BYTES", default=64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)
FILE_UPLOAD_PERMISSIONS = 0o640

# Celery: Redis broker; a task is acknowledged only after it finished, and given back to the
# queue if its worker dies, so a crash never loses a job. A job task works for at most
# UPSERT_TASK_SLICE_SECONDS, then saves its checkpoint and queues its own continuation: the
# visibility timeout must stay well above that slice, or Redis would hand a live task out twice.
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="upserts")
UPSERT_TASK_SLICE_SECONDS = env.int("UPSERT_TASK_SLICE_SECONDS", default=300)
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
if CELERY_VISIBILITY_TIMEOUT < 3 * UPSERT_TASK_SLICE_SECONDS:
    raise ImproperlyConfigured(
        "CELERY_VISIBILITY_TIMEOUT must be at least three times UPSERT_TASK_SLICE_SECONDS, "
        "or Redis may deliver a running job task to a second worker."
    )
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}

# Sending: a request that fails for a reason that may pass (connection, timeout, 429, 5xx, rate
# limits) is retried with exponential backoff and jitter; with the defaults a cluster may be
# gone for about a minute before the job fails (and can be resumed).
UPSERT_RETRY_ATTEMPTS = env.int("UPSERT_RETRY_ATTEMPTS", default=7)
UPSERT_RETRY_BASE_SECONDS = env.float("UPSERT_RETRY_BASE_SECONDS", default=1.0)
UPSERT_RETRY_MAX_SECONDS = env.float("UPSERT_RETRY_MAX_SECONDS", default=30.0)
# A cluster's rate budget (its "most MB / requests per second") lives in Redis, under this
# prefix, so every worker on every host shares it; a rate-limit answer halves it, and it grows
# back to the cap over UPSERT_BUDGET_RECOVERY_SECONDS.
REDIS_KEY_PREFIX = env.str("REDIS_KEY_PREFIX", default="upserts")
UPSERT_BUDGET_RECOVERY_SECONDS = env.float("UPSERT_BUDGET_RECOVERY_SECONDS", default=60.0)
if UPSERT_BUDGET_RECOVERY_SECONDS <= 0:
    raise ImproperlyConfigured("UPSERT_BUDGET_RECOVERY_SECONDS must be more than 0.")
# How long a job stays claimed by a task that stopped renewing its claim (a killed worker).
UPSERT_LEASE_SECONDS = env.int("UPSERT_LEASE_SECONDS", default=120)
# The sweeper (a Celery beat task) queues again the jobs that no task holds or will pick up:
# a worker killed mid-job, or task messages lost with a broker that keeps nothing on disk.
UPSERT_SWEEP_SECONDS = env.float("UPSERT_SWEEP_SECONDS", default=30.0)
UPSERT_STALE_GRACE_SECONDS = env.float("UPSERT_STALE_GRACE_SECONDS", default=60.0)
# A job whose worker stopped this many times in a row at the same row (killed for memory, say)
# fails saying so, instead of being handed to the next worker for ever; Resume carries on.
UPSERT_MAX_WORKER_STOPS = env.int("UPSERT_MAX_WORKER_STOPS", default=3)
# A failed row longer than this is kept cut short (its reason says so).
UPSERT_FAILED_ROW_MAX_BYTES = env.int("UPSERT_FAILED_ROW_MAX_BYTES", default=64 * 1024)
# A stored upload whose job never committed (its web process was killed between storing the
# file and committing the job) is removed once this old; hourly, by a beat task.
UPLOAD_ORPHAN_GRACE_SECONDS = env.float("UPLOAD_ORPHAN_GRACE_SECONDS", default=3600.0)
# The retention policy (upserts.services.retention), applied by beat and `manage.py prune`.
# A job, its sha256, batches and audit events are kept for ever; what grows with the data is
# not: the stored file of a finished job, its failed rows, and of the entity-write history all
# but the last writes of each id once they are old (whichever of the two keeps more).
RETAIN_FILES_DAYS = env.int("RETAIN_FILES_DAYS", default=30)
RETAIN_FAILED_ROWS_DAYS = env.int("RETAIN_FAILED_ROWS_DAYS", default=90)
RETAIN_ENTITY_WRITES_PER_ID = env.int("RETAIN_ENTITY_WRITES_PER_ID", default=5)
RETAIN_ENTITY_WRITES_DAYS = env.int("RETAIN_ENTITY_WRITES_DAYS", default=90)
RETENTION_PRUNE_SECONDS = env.float("RETENTION_PRUNE_SECONDS", default=6 * 3600.0)
# A resumable upload not finished (or not made a job) this long after its last part is
# removed, parts and all, by the same beat task that runs the retention policy.
RESUMABLE_UPLOAD_EXPIRY_HOURS = env.float("RESUMABLE_UPLOAD_EXPIRY_HOURS", default=24.0)
CELERY_BEAT_SCHEDULE = {
    "sweep-stale-jobs": {"task": "upserts.sweep_stale_jobs", "schedule": UPSERT_SWEEP_SECONDS},
    "remove-orphan-uploads": {"task": "upserts.remove_orphan_uploads", "schedule": 3600.0},
    "prune-retained": {"task": "upserts.prune_retained", "schedule": RETENTION_PRUNE_SECONDS},
}

# Where a cluster may be: its URL may not reach the denied networks (CIDRs), checked when it is
# saved and on every connection, against the address actually reached. The default denies the
# link-local networks, where cloud metadata services hand out the machine's credentials, and
# the metadata addresses outside them (AWS over IPv6, Alibaba Cloud); setting the variable
# replaces that list. Private and loopback networks stay open for self-hosted clusters. When
# CLUSTER_ALLOWED_NETWORKS is set, only addresses inside it may be reached.
CLUSTER_DENIED_NETWORKS = env.list("CLUSTER_DENIED_NETWORKS", default=list(DEFAULT_DENIED_NETWORKS))
CLUSTER_ALLOWED_NETWORKS = env.list("CLUSTER_ALLOWED_NETWORKS", default=[])
for _name, _networks in [
    ("CLUSTER_DENIED_NETWORKS", CLUSTER_DENIED_NETWORKS),
    ("CLUSTER_ALLOWED_NETWORKS", CLUSTER_ALLOWED_NETWORKS),
]:
    try:
        parse_networks(_networks)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{_name}: {exc}.") from exc
# The most bytes read of one answer from a cluster. An upsert answer repeats the ids of the rows
# sent, so unless they are mostly characters the cluster escapes in JSON (<, >, &) it is smaller
# than the request, which a job keeps to 64 MiB; describe and list answers are kilobytes. A
# larger answer fails the request (and the job) instead of filling the worker's memory.
CLUSTER_MAX_RESPONSE_BYTES = env.int("CLUSTER_MAX_RESPONSE_BYTES", default=64 * 1024**2)
if CLUSTER_MAX_RESPONSE_BYTES <= 0:
    raise ImproperlyConfigured("CLUSTER_MAX_RESPONSE_BYTES must be a number of bytes above 0.")

# The API (/api/v1/): tokens for scripts first, so an anonymous request is answered 401 with a
# WWW-Authenticate header; the session for the console's own pages. Staff only, then roles.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "upserts.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["upserts.api.permissions.IsStaffWithRole"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "upserts.api.pagination.ApiPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "upserts.api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Upsert Console API",
    "DESCRIPTION": (
        "Submit entity files to Milvus / Zilliz Cloud collections and follow the jobs that "
        "upsert them; manage clusters; read the audit trail. Authenticate with an API token "
        "(`Authorization: Bearer <key>`) or the console's session. Every error has the shape "
        '`{"code": ..., "message": ..., "details": ...}`.'
    ),
    "VERSION": "1.0.0",
    "TAGS": [
        {"name": "jobs", "description": "Upload files, follow the jobs, cancel, resume, retry."},
        {"name": "clusters", "description": "Register clusters, test them, read their schemas."},
        {"name": "audit", "description": "Who did what, when and from where."},
        {"name": "entities", "description": "Which jobs wrote an entity id."},
        {"name": "tokens", "description": "Your API tokens: create (key shown once), revoke."},
    ],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["upserts.api.permissions.IsStaffWithRole"],
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "upserts.models.JobStatus",
        "BatchStatusEnum": "upserts.models.BatchStatus",
        "AuditActionEnum": "upserts.models.AuditAction",
        "ApiVersionEnum": "upserts.models.ClusterEndpoint.ApiVersion",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "upserts.api.schema.add_error_responses",
    ],
    # Swagger UI from the drf-spectacular-sidecar package: no CDN, the console works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Security headers everywhere; the HTTPS-only settings under PRODUCTION.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Content-Security-Policy (django-csp): scripts and styles come only from the console's own
# static files, so injected markup can neither run a script nor restyle a page. No page needs
# more: the templates have no inline script, handler or style, htmx's indicator style and eval
# are turned off in base.html, the Swagger UI loads its init script as a file of its own, and
# Django's admin has no inline script either.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    # Not LOG_LEVEL: the embedded Milvus reads that variable too and refuses Python's names.
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        # urllib3 logs request lines only; headers (and so tokens) never reach the log.
        "urllib3": {"level": "WARNING"},
    },
}
