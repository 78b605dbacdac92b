"""Reading settings from the environment, and the production safety checks."""

from __future__ import annotations

import os
from typing import Any

from django.core.exceptions import ImproperlyConfigured

INSECURE_SECRET_PREFIX = "dev-only-"  # noqa: S105 - a marker, not a secret


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def production_problems(settings: dict[str, Any]) -> list[str]:
    """What makes these settings unfit for production (empty when fine)."""
    problems = []
    if settings.get("DEBUG"):
        problems.append("DEBUG must be off")
    secret = settings.get("SECRET_KEY") or ""
    if len(secret) < 50 or secret.startswith(INSECURE_SECRET_PREFIX):
        problems.append("SECRET_KEY must be set to a random value of 50+ characters")
    if not settings.get("ALLOWED_HOSTS") or "*" in settings.get("ALLOWED_HOSTS", []):
        problems.append("ALLOWED_HOSTS must list the service's host names (no '*')")
    if not settings.get("DATABASE_URL"):
        problems.append("DATABASE_URL must be set")
    if settings.get("KMS_PROVIDER") not in {"aws", "local"}:
        problems.append("KMS_PROVIDER must be 'aws' or 'local'")
    if settings.get("KMS_PROVIDER") == "aws" and not settings.get("KMS_KEY_ID"):
        problems.append("KMS_KEY_ID must name the KMS key when KMS_PROVIDER=aws")
    if settings.get("KMS_PROVIDER") == "local" and not os.environ.get("ALLOW_LOCAL_KMS_IN_PRODUCTION"):
        problems.append("KMS_PROVIDER=local keeps the master key on this host; use aws "
                        "(or set ALLOW_LOCAL_KMS_IN_PRODUCTION=1 knowingly)")
    return problems


def check_production_settings(settings: dict[str, Any]) -> None:
    problems = production_problems(settings)
    if problems:
        raise ImproperlyConfigured("Refusing to start in production: " + "; ".join(problems))
