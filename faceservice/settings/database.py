"""PostgreSQL and the Redis cache (rate-limit counters)."""

import dj_database_url
from pydantic import Field

from faceservice.settings.environment import Variables, export, read, shown


class Database(Variables):
    """Database and Redis"""

    # Must name a role WITHOUT superuser or BYPASSRLS: row-level security is
    # forced on every tenant table and is the second line of isolation.
    DATABASE_URL: str = Field(
        "", json_schema_extra=shown("none (development: local socket `faceservice`)"),
        description="PostgreSQL URL of the **application role** (migrate job: the owner role)")
    DB_CONN_MAX_AGE: int = Field(
        60, exclude=True, description="seconds a connection is reused. Before each request reuses one, its "
        "socket is checked for a server that closed it (restart, `pg_terminate_backend`, idle timeout); only "
        "then a `SELECT 1` decides (`faceservice/postgresql`: no round trip on a healthy connection)")
    REDIS_URL: str = Field(
        "redis://127.0.0.1:6379/0",
        description="rate-limit counters and, by default, the Celery broker; use `rediss://` and a password")


_database = read(Database)
export(_database, globals())

DATABASES = {
    "default": dj_database_url.parse(_database.DATABASE_URL, conn_max_age=_database.DB_CONN_MAX_AGE,
                                     conn_health_checks=True)
    if _database.DATABASE_URL else {"NAME": "faceservice"},
}
# Django's PostgreSQL backend with a health check that needs no round trip (faceservice/postgresql).
DATABASES["default"]["ENGINE"] = "faceservice.postgresql"
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["TEST"] = {"NAME": DATABASES["default"].get("NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": _database.REDIS_URL,
        "KEY_PREFIX": "fs",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}
