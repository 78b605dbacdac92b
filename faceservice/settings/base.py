"""Core: which environment this is, Django's apps and middleware, logging."""

from pathlib import Path

from pydantic import Field

from faceservice.settings.environment import Flag, Variables, export, read, shown

BASE_DIR = Path(__file__).resolve().parent.parent.parent


class Core(Variables):
    """Core"""

    FACESERVICE_ENV: str = Field(
        "development", exclude=True, json_schema_extra=shown("`development` (`production` in the image)"),
        description="`production` turns on the start-up checks, secure cookies, HSTS and the HTTPS redirect")
    DEBUG: Flag = Field(False, description="never on in production")
    FACESERVICE_RUN_DIR: str = Field(
        str(BASE_DIR / ".run"), exclude=True, json_schema_extra=shown("`.run/` (`/var/lib/faceservice` in the image)"),
        description="local state: only the local KMS keyring lives here")
    LOG_LEVEL: str = Field("INFO", description="root log level; logs are JSON lines on stdout")


_core = read(Core)
export(_core, globals())
ENVIRONMENT = _core.FACESERVICE_ENV
PRODUCTION = ENVIRONMENT == "production"
RUN_DIR = Path(_core.FACESERVICE_RUN_DIR)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
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
    "faceservice.static_files.StaticFilesMiddleware",  # WhiteNoise
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

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# Served by WhiteNoise (MIDDLEWARE, faceservice/static_files.py) from the web process:
# the API docs pages and the consoles need their scripts and styles wherever the service
# runs, with no proxy set up for them and no CDN. The image collects them here at build
# time (deploy/Dockerfile), compressed; a checkout collects nothing, and WhiteNoise finds
# them in the apps instead, once when the process starts (./dev run, the tests).
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = not STATIC_ROOT.is_dir()
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# JSON lines, request id on each, never bodies or secrets.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "faceservice.request_id.RequestIdFilter"},
                # Django's own lines about a request name it by method and path only (never the query string).
                "safe_request": {"()": "faceservice.api.middleware.SafeRequestFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json",
                    "filters": ["request_id", "safe_request"]},
    },
    "root": {"handlers": ["console"], "level": _core.LOG_LEVEL},
    "loggers": {
        # Django's request logger prints the request object on errors; ours logs a safe line.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
