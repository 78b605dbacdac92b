"""Settings, read from environment variables.

Local defaults are safe for a developer's machine; `FACESERVICE_ENV=production`
turns on the production checks in `faceservice.config`, which refuse to start
with insecure settings.
"""

from pathlib import Path

import dj_database_url

from faceservice.config import check_production_settings, env, env_bool, env_int, env_list

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = Path(env("FACESERVICE_RUN_DIR", str(BASE_DIR / ".run")))

ENVIRONMENT = env("FACESERVICE_ENV", "development")
PRODUCTION = ENVIRONMENT == "production"
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env("SECRET_KEY", "" if PRODUCTION else "dev-only-insecure-secret-key-change-me")
ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "faceservice",
    "tenants",
    "embeddings",
    "audit",
]

MIDDLEWARE = [
    "faceservice.api.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "faceservice.urls"
WSGI_APPLICATION = "faceservice.wsgi.application"
ASGI_APPLICATION = "faceservice.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "faceservice" / "templates"],
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

# --- Database -------------------------------------------------------------------
# DATABASE_URL must name a role WITHOUT superuser or BYPASSRLS: row-level
# security is forced on every tenant table and is the second line of isolation.
DATABASE_URL = env("DATABASE_URL", "")
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
                                     conn_health_checks=True)
    if DATABASE_URL else {"NAME": "faceservice"},
}
# Django's PostgreSQL backend with a health check that needs no round trip (faceservice/postgresql).
DATABASES["default"]["ENGINE"] = "faceservice.postgresql"
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["TEST"] = {"NAME": DATABASES["default"].get("NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache (throttling), Celery broker ------------------------------------
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "fs",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None  # job state lives in PostgreSQL, the source of truth
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 600)}
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE: dict = {}  # filled by the apps (see faceservice/celery.py)

# --- Auth, passwords, sessions (staff console) -----------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"
SESSION_COOKIE_AGE = env_int("CONSOLE_IDLE_TIMEOUT_SECONDS", 900)
SESSION_SAVE_EVERY_REQUEST = True  # idle timeout: each request renews the short session
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Request size: images stay in memory, never in temp files --------------------
MAX_IMAGE_BYTES = env_int("MAX_IMAGE_BYTES", 15 * 1024 * 1024)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 40_000_000)
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_BYTES", 4 * MAX_IMAGE_BYTES)
# Only our in-memory handler: Django's default TemporaryFileUploadHandler would
# spill large uploads to /tmp, which the privacy promise forbids.
FILE_UPLOAD_HANDLERS = ["faceservice.api.uploads.InMemoryOnlyUploadHandler"]
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000

# A process keeps a verified API key for this many seconds, so a request does
# not pay a platform-scope lookup. Revocation and tenant suspension are
# immediate in the process that made them, within this delay in the others.
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 5)

# --- REST framework ---------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["faceservice.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["faceservice.api.permissions.HasRole"],
    "DEFAULT_THROTTLE_CLASSES": [
        "faceservice.api.throttles.ApiKeyRateThrottle",
        "faceservice.api.throttles.ClientIpRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "api_key": env("RATE_LIMIT_PER_KEY", "600/min"),
        "client_ip": env("RATE_LIMIT_PER_IP", "1200/min"),
    },
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "faceservice.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Face search service API",
    "DESCRIPTION": (
        "Multi-tenant face search: index faces from your images, search by a new photo, "
        "compare photos, delete face data. Authenticate with `Authorization: Bearer <api key>`. "
        "Every error has the shape `{\"error\": {\"code\", \"message\", \"request_id\"}}`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/v1",
    "ENUM_NAME_OVERRIDES": {},
}

# --- Keys (KMS envelope encryption) -------------------------------------------------
KMS_PROVIDER = env("KMS_PROVIDER", "local")  # "local" or "aws"
KMS_KEY_ID = env("KMS_KEY_ID", "")  # AWS key id / ARN / alias when KMS_PROVIDER=aws
LOCAL_KMS_KEY_FILE = env("LOCAL_KMS_KEY_FILE", str(RUN_DIR / "kms" / "master.keys"))
DATA_KEY_CACHE_TTL_SECONDS = env_int("DATA_KEY_CACHE_TTL_SECONDS", 300)
DATA_KEY_CACHE_MAX_ENTRIES = env_int("DATA_KEY_CACHE_MAX_ENTRIES", 1000)

# --- Face models -----------------------------------------------------------------
FACE_MODEL_ROOT = env("FACE_MODEL_ROOT", str(Path.home() / ".insightface"))
FACE_MODEL_PACK = env("FACE_MODEL_PACK", "buffalo_l")
FACE_DEVICE = env("FACE_DEVICE", "cpu")  # cpu | cuda | auto
# One onnxruntime thread per process by default: its pool of one thread per core
# keeps spinning after each call and doubled a search's CPU on a shared box
# (docs/BENCHMARKS.md, "Search latency"). Scale by processes; 0: onnxruntime decides.
FACE_MODEL_THREADS = env_int("FACE_MODEL_THREADS", 1)
FACE_DET_SIZE = env_int("FACE_DET_SIZE", 640)
# Similarity at or above which two faces are called the same person. 0.35 sits
# above the highest different-person score measured for the test pack (0.309)
# and keeps TAR@FAR=1e-3 near 98 % (see docs/MODELS.md); calibrate per pack.
FACE_MATCH_THRESHOLD = float(env("FACE_MATCH_THRESHOLD", "0.35"))
# The default of 1:N search, higher than the 1:1 point above: against a gallery
# of N people the chance that some stranger clears a threshold grows with N.
# On LFW dev-train (804 people, the test pack) 0.35 gave 43 % of non-enrolled
# people a wrong match, 0.45 gave 1.4 % and still identified 92 % of the
# enrolled ones (docs/BENCHMARKS.md, "Identification accuracy").
SEARCH_MATCH_THRESHOLD = float(env("SEARCH_MATCH_THRESHOLD", "0.45"))

# --- Outbound fetches (image URLs, webhooks) ----------------------------------------
# Networks that are allowed even though private (tests, private deployments).
FETCH_ALLOWED_NETWORKS = env_list("FETCH_ALLOWED_NETWORKS", [])
FETCH_TIMEOUT_SECONDS = float(env("FETCH_TIMEOUT_SECONDS", "10"))

# --- Logging: JSON lines, request id on each, never bodies or secrets ----------------
LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "faceservice.api.logging.RequestIdFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's request logger prints the request object on errors; ours logs a safe line.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}

# --- Audit log and the auditors' console (audit app; see docs/AUDIT.md) -------------
# Audit events are kept for years, not days. The database refuses to purge
# events younger than 365 days whatever this says (audit_min_retention()).
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 2557)  # seven years
# HMAC key for chain-head anchors and retention checkpoints. Keep it apart from the
# database credentials; empty derives one from SECRET_KEY (development only).
AUDIT_ANCHOR_KEY = env("AUDIT_ANCHOR_KEY", "")
AUDIT_ANCHOR_OLD_KEYS = env_list("AUDIT_ANCHOR_OLD_KEYS", [])  # still verify after rotation
AUDIT_ANCHOR_INTERVAL_SECONDS = env_int("AUDIT_ANCHOR_INTERVAL_SECONDS", 3600)
# Optional external sink: an S3 bucket created with Object Lock enabled.
AUDIT_ANCHOR_S3_BUCKET = env("AUDIT_ANCHOR_S3_BUCKET", "")
AUDIT_ANCHOR_S3_PREFIX = env("AUDIT_ANCHOR_S3_PREFIX", "audit-anchors/")
AUDIT_ANCHOR_S3_LOCK_MODE = env("AUDIT_ANCHOR_S3_LOCK_MODE", "COMPLIANCE")
AUDIT_ANCHOR_S3_RETENTION_DAYS = env_int("AUDIT_ANCHOR_S3_RETENTION_DAYS", AUDIT_RETENTION_DAYS)
AUDIT_EXPORT_CHUNK_SIZE = env_int("AUDIT_EXPORT_CHUNK_SIZE", 2000)  # server-side cursor batch
CONSOLE_LOCKOUT_THRESHOLD = env_int("CONSOLE_LOCKOUT_THRESHOLD", 5)  # failed sign-ins ...
CONSOLE_LOCKOUT_SECONDS = env_int("CONSOLE_LOCKOUT_SECONDS", 900)  # ... lock the name this long
CONSOLE_MAX_SESSION_SECONDS = env_int("CONSOLE_MAX_SESSION_SECONDS", 8 * 3600)  # absolute limit
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", "Face search audit console")
CELERY_BEAT_SCHEDULE["audit-anchor-chain-heads"] = {
    "task": "audit.anchor_chain_heads", "schedule": AUDIT_ANCHOR_INTERVAL_SECONDS}
CELERY_BEAT_SCHEDULE["audit-purge-expired-events"] = {
    "task": "audit.purge_expired_events", "schedule": 24 * 3600}
CELERY_BEAT_SCHEDULE["audit-verify-chains"] = {"task": "audit.verify_chains", "schedule": 24 * 3600}


# --- Vector search (see docs/BENCHMARKS.md for how these were chosen) ------------
HNSW_M = env_int("HNSW_M", 16)
HNSW_EF_CONSTRUCTION = env_int("HNSW_EF_CONSTRUCTION", 64)
# 200, not 100: on the benchmark's face-like data every tenant served by HNSW
# lost recall@10 to search depth (for the giant tenant FAISS's own graph was
# no better at the same ef); 200 bought +3 to +7 points of recall@10 for ~1.5x
# the CPU of the vector query (docs/BENCHMARKS.md, "Vector search").
HNSW_EF_SEARCH = env_int("HNSW_EF_SEARCH", 200)
# Tenants' projection matrices kept per process (d*d*4 bytes each: 1 MiB at 512-d).
PROJECTION_CACHE_MAX_ENTRIES = env_int("PROJECTION_CACHE_MAX_ENTRIES", 256)
# Tenants with at most this many faces of a model are searched exactly (a scan
# of their own rows), larger ones through their own HNSW index (below). 10k, not
# 20k: a 10-20k tenant's own graph gave recall 1.0 for 2.6x (128-d) to 7.6x
# (512-d) less CPU than the exact scan (docs/BENCHMARKS.md, "Vector search").
EXACT_SEARCH_MAX_FACES = env_int("EXACT_SEARCH_MAX_FACES", 10000)
# In-memory search galleries (embeddings/search/gallery.py): each web process keeps
# the protected templates of the tenants it searches, up to this many bytes in
# all (16 + 2*d bytes a face: 100k faces at 128-d take 27 MB), and scans them
# all (FAISS flat, half precision; ~3 ms at 100k x 128-d) instead of pgvector. A
# tenant larger than this, and searches filtered by subject or asset, use
# pgvector as below. 0 turns it off. Budget it per web process (WEB_CONCURRENCY).
SEARCH_MEMORY_MAX_BYTES = env_int("SEARCH_MEMORY_MAX_BYTES", 512 * 1024 * 1024)
# After faces are deleted, a gallery is loaded again at most this often: until
# then their templates stay in the process's memory (never in results).
SEARCH_MEMORY_RELOAD_SECONDS = env_int("SEARCH_MEMORY_RELOAD_SECONDS", 30)
# A gallery not searched for this long is dropped from the process.
SEARCH_MEMORY_IDLE_SECONDS = env_int("SEARCH_MEMORY_IDLE_SECONDS", 300)
# Galleries of more faces are loaded (and re-loaded after deletions) by a
# thread beside the searches, which meanwhile use pgvector (first load) or the
# gallery they have: loading takes ~10 s per million faces (3.9-4.9 s for 500k
# measured), which no search should wait for. Smaller ones load inline.
SEARCH_MEMORY_SYNC_LOAD_FACES = env_int("SEARCH_MEMORY_SYNC_LOAD_FACES", 20000)
# Candidates fetched from the index per requested match, re-ranked exactly.
SEARCH_CANDIDATE_FACTOR = env_int("SEARCH_CANDIDATE_FACTOR", 4)
SEARCH_MIN_CANDIDATES = env_int("SEARCH_MIN_CANDIDATES", 40)
# Buckets an index job may name (empty: any bucket the service's credentials reach).
S3_ALLOWED_BUCKETS = env_list("S3_ALLOWED_BUCKETS", [])
# Per-tenant HNSW indexes (embeddings/search/vector_index.py): every tenant with more
# than EXACT_SEARCH_MAX_FACES faces of a model gets its own partial index, built
# CONCURRENTLY by a beat task; dropped when the tenant falls to half of that or
# is purged. The shared per-model index serves such a tenant until then.
# m=32 / ef_construction=128 gave more recall per CPU at 128-d, not at 512-d,
# and built 4-5x slower. ef_search 400: recall@10 0.99+ for 20k-139k-face
# tenants at 1M x 128-d, 0.97 for 50k x 512-d (800: 0.99 for 1.8x the CPU).
HNSW_TENANT_M = env_int("HNSW_TENANT_M", 16)
HNSW_TENANT_EF_CONSTRUCTION = env_int("HNSW_TENANT_EF_CONSTRUCTION", 64)
HNSW_TENANT_EF_SEARCH = env_int("HNSW_TENANT_EF_SEARCH", 400)
TENANT_INDEX_INTERVAL_SECONDS = env_int("TENANT_INDEX_INTERVAL_SECONDS", 600)
# Session maintenance_work_mem for those builds ("" = the server's): the graph
# must fit in it, ~1.1 KB a face at 128-d, ~2.5 KB at 512-d (BENCHMARKS.md).
VECTOR_INDEX_MAINTENANCE_WORK_MEM = env("VECTOR_INDEX_MAINTENANCE_WORK_MEM", "")

# --- Index jobs and webhooks (embeddings/indexing/services.py, tenants/webhooks/; docs/JOBS.md) --
INDEX_JOB_MAX_ASSETS = env_int("INDEX_JOB_MAX_ASSETS", 1000)  # assets per submission
# Fairness: at most this many assets of one tenant are queued or running at a
# time; the rest wait in PostgreSQL and are dispatched round-robin as slots free.
# A worker process takes up to two batches ahead (jobs.BATCHES_AHEAD), so one
# tenant keeps P processes busy only with >= 2 * P * INDEX_BATCH_SIZE slots:
# 32 = two processes. With 16, one process took both batches and two processes
# indexed one tenant no faster than one (docs/BENCHMARKS.md, "Indexing").
INDEX_MAX_INFLIGHT_PER_TENANT = env_int("INDEX_MAX_INFLIGHT_PER_TENANT", 32)
# Assets per index message: a worker process claims them in one statement,
# pipelines fetch / model / store in three threads and commits them in one
# transaction (embeddings/indexing/pipeline.py). 1 = one asset per message and transaction.
# 8 (with 16 slots) measured 0.90 of the bare engine per process against 0.85
# for 4 on a quiet box (docs/BENCHMARKS.md, "Indexing"); 16 gained nothing more.
INDEX_BATCH_SIZE = env_int("INDEX_BATCH_SIZE", 8)
INDEX_ASSET_LEASE_SECONDS = env_int("INDEX_ASSET_LEASE_SECONDS", 300)  # a worker's hold on an asset
INDEX_REQUEUE_AFTER_SECONDS = env_int("INDEX_REQUEUE_AFTER_SECONDS", 900)  # queued, never started
INDEX_MAX_ATTEMPTS = env_int("INDEX_MAX_ATTEMPTS", 5)  # per asset, transient failures and lost workers
INDEX_RETRY_BASE_SECONDS = float(env("INDEX_RETRY_BASE_SECONDS", "2"))
INDEX_RETRY_MAX_SECONDS = float(env("INDEX_RETRY_MAX_SECONDS", "300"))  # < the broker visibility timeout
INDEX_SWEEP_INTERVAL_SECONDS = float(env("INDEX_SWEEP_INTERVAL_SECONDS", "30"))
INDEX_JOB_RETENTION_DAYS = env_int("INDEX_JOB_RETENTION_DAYS", 30)  # finished jobs and their results
INDEX_ALLOW_HTTP_URLS = env_bool("INDEX_ALLOW_HTTP_URLS", not PRODUCTION)  # else https only
INLINE_IMAGE_TTL_SECONDS = env_int("INLINE_IMAGE_TTL_SECONDS", 24 * 3600)
FACE_PURGE_INTERVAL_SECONDS = env_int("FACE_PURGE_INTERVAL_SECONDS", 3600)

WEBHOOK_SECRETS_KEY = env("WEBHOOK_SECRETS_KEY", "")  # base64 of 32 bytes; empty: derived from SECRET_KEY
WEBHOOK_ALLOW_HTTP = env_bool("WEBHOOK_ALLOW_HTTP", not PRODUCTION)
WEBHOOK_CONNECT_TIMEOUT_SECONDS = float(env("WEBHOOK_CONNECT_TIMEOUT_SECONDS", "3"))
WEBHOOK_READ_TIMEOUT_SECONDS = float(env("WEBHOOK_READ_TIMEOUT_SECONDS", "5"))
WEBHOOK_TOTAL_TIMEOUT_SECONDS = float(env("WEBHOOK_TOTAL_TIMEOUT_SECONDS", "10"))
WEBHOOK_MAX_RESPONSE_BYTES = env_int("WEBHOOK_MAX_RESPONSE_BYTES", 256 * 1024)
# Backoff after the n-th failure: BASE * FACTOR^(n-1), capped, ±20 % jitter.
# Defaults: 5 s, 30 s, 3 min, 18 min, 1.8 h, then 8 h: 10 attempts over ~34 h.
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 10)
WEBHOOK_RETRY_BASE_SECONDS = float(env("WEBHOOK_RETRY_BASE_SECONDS", "5"))
WEBHOOK_RETRY_FACTOR = float(env("WEBHOOK_RETRY_FACTOR", "6"))
WEBHOOK_RETRY_MAX_DELAY_SECONDS = float(env("WEBHOOK_RETRY_MAX_DELAY_SECONDS", str(8 * 3600)))
WEBHOOK_COUNTDOWN_MAX_SECONDS = float(env("WEBHOOK_COUNTDOWN_MAX_SECONDS", "60"))  # longer: the sweeper
WEBHOOK_ATTEMPT_LEASE_SECONDS = env_int("WEBHOOK_ATTEMPT_LEASE_SECONDS", 120)
WEBHOOK_REQUEUE_AFTER_SECONDS = env_int("WEBHOOK_REQUEUE_AFTER_SECONDS", 300)
WEBHOOK_SWEEP_INTERVAL_SECONDS = float(env("WEBHOOK_SWEEP_INTERVAL_SECONDS", "15"))
# Auto-disable: this many failed attempts in a row AND no success for this long.
WEBHOOK_DISABLE_AFTER_FAILURES = env_int("WEBHOOK_DISABLE_AFTER_FAILURES", 20)
WEBHOOK_DISABLE_AFTER_SECONDS = env_int("WEBHOOK_DISABLE_AFTER_SECONDS", 3 * 24 * 3600)
WEBHOOK_SECRET_ROTATION_GRACE_SECONDS = env_int("WEBHOOK_SECRET_ROTATION_GRACE_SECONDS", 24 * 3600)

# Queues: indexing, webhooks and periodic upkeep apart, so a deep indexing queue
# never delays a webhook or the sweeper. A worker started without -Q consumes
# all of them; production can run dedicated workers per queue.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = {"celery": {}, "index": {}, "webhooks": {}}
CELERY_TASK_ROUTES = {
    "embeddings.index_asset": {"queue": "index"},
    "tenants.deliver_webhook": {"queue": "webhooks"},
}
CELERY_BEAT_SCHEDULE["index-jobs-sweep"] = {
    "task": "embeddings.sweep_index_jobs", "schedule": INDEX_SWEEP_INTERVAL_SECONDS}
CELERY_BEAT_SCHEDULE["faces-purge-expired"] = {
    "task": "embeddings.purge_expired_faces", "schedule": FACE_PURGE_INTERVAL_SECONDS}
CELERY_BEAT_SCHEDULE["webhooks-sweep"] = {
    "task": "tenants.sweep_webhook_deliveries", "schedule": WEBHOOK_SWEEP_INTERVAL_SECONDS}
CELERY_BEAT_SCHEDULE["vector-tenant-indexes"] = {
    "task": "embeddings.maintain_tenant_indexes", "schedule": TENANT_INDEX_INTERVAL_SECONDS}

CELERY_BEAT_SCHEDULE["keys-resume-rotations"] = {"task": "tenants.resume_key_rotations", "schedule": 15 * 60}
# Deletions matching more faces than this run in a worker (202 + a deletion id).
DELETE_SYNC_MAX_FACES = env_int("DELETE_SYNC_MAX_FACES", 10000)

# Last, so that every setting above is checked.
if PRODUCTION:
    check_production_settings(globals())
# OpenAPI: several models have a `state` field with different choices; name each enum.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update({
    "IndexJobStateEnum": "embeddings.models.IndexJob.State",
    "IndexJobAssetStateEnum": "embeddings.models.IndexJobAsset.State",
    "WebhookDeliveryStateEnum": "tenants.models.WebhookDelivery.State",
})
