"""Secrets, hosts, HTTPS, the KMS key hierarchy, and the production checks."""

from __future__ import annotations

import os
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from pydantic import Field

from faceservice.settings.base import PRODUCTION, RUN_DIR
from faceservice.settings.environment import CommaList, Flag, Variables, export, read, shown

_INSECURE_SECRET_PREFIX = "dev-only-"  # noqa: S105 - a marker, not a secret
_DEVELOPMENT_SECRET_KEY = _INSECURE_SECRET_PREFIX + "insecure-secret-key-change-me"
_DEVELOPMENT_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]


class Security(Variables):
    """Security and keys"""

    SECRET_KEY: str = Field(
        default_factory=lambda: "" if PRODUCTION else _DEVELOPMENT_SECRET_KEY,
        json_schema_extra=shown("development: a fixed insecure key; production: none"),
        description="50+ random characters; signs sessions and CSRF tokens")
    ALLOWED_HOSTS: CommaList = Field(
        default_factory=lambda: [] if PRODUCTION else list(_DEVELOPMENT_HOSTS),
        json_schema_extra=shown("development: localhost names; production: none"),
        description="host names the service answers to")
    CSRF_TRUSTED_ORIGINS: CommaList = Field([], description="origins (`https://host`) of the staff and audit consoles")
    SECURE_SSL_REDIRECT: Flag = Field(
        True, exclude=True, json_schema_extra=shown("on in production"),
        description="redirect plain HTTP to HTTPS (the proxy must send `X-Forwarded-Proto`); production only")
    SECURE_HSTS_SECONDS: int = Field(
        31536000, exclude=True, json_schema_extra=shown("`31536000` in production"),
        description="HSTS max-age; production only")
    KMS_PROVIDER: str = Field(
        "local", description="`aws` in production; `local` keeps a master keyring file on the host")
    KMS_KEY_ID: str = Field("", description="AWS KMS key ARN, key id or alias (required for `aws`)")
    LOCAL_KMS_KEY_FILE: str = Field(
        default_factory=lambda: str(RUN_DIR / "kms" / "master.keys"),
        json_schema_extra=shown("`$FACESERVICE_RUN_DIR/kms/master.keys`"),
        description="the local keyring (0600); back it up apart from the database")
    DATA_KEY_CACHE_TTL_SECONDS: int = Field(
        300, description="how long a plaintext tenant data key stays in a process's memory")
    DATA_KEY_CACHE_MAX_ENTRIES: int = Field(1000, description="data keys cached per process")


_security = read(Security)
export(_security, globals())

SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = _security.SECURE_SSL_REDIRECT
    SECURE_HSTS_SECONDS = _security.SECURE_HSTS_SECONDS


def production_problems(settings: dict[str, Any]) -> list[str]:
    """What makes these settings unfit for production (empty when fine)."""
    problems = []
    if settings.get("DEBUG"):
        problems.append("DEBUG must be off")
    secret = settings.get("SECRET_KEY") or ""
    if len(secret) < 50 or secret.startswith(_INSECURE_SECRET_PREFIX):
        problems.append("SECRET_KEY must be set to a random value of 50+ characters")
    if not settings.get("ALLOWED_HOSTS") or "*" in settings.get("ALLOWED_HOSTS", []):
        problems.append("ALLOWED_HOSTS must list the service's host names (no '*')")
    if not settings.get("DATABASE_URL"):
        problems.append("DATABASE_URL must be set")
    if settings.get("KMS_PROVIDER") not in {"aws", "local"}:
        problems.append("KMS_PROVIDER must be 'aws' or 'local'")
    if settings.get("KMS_PROVIDER") == "aws" and not settings.get("KMS_KEY_ID"):
        problems.append("KMS_KEY_ID must name the KMS key when KMS_PROVIDER=aws")
    # Read here, not as a typed setting: any non-empty value is the operator's explicit opt-in.
    if settings.get("KMS_PROVIDER") == "local" and not os.environ.get("ALLOW_LOCAL_KMS_IN_PRODUCTION"):
        problems.append("KMS_PROVIDER=local keeps the master key on this host; use aws "
                        "(or set ALLOW_LOCAL_KMS_IN_PRODUCTION=1 knowingly)")
    return problems


def check_production_settings(settings: dict[str, Any]) -> None:
    problems = production_problems(settings)
    if problems:
        raise ImproperlyConfigured("Refusing to start in production: " + "; ".join(problems))
