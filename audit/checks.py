"""System checks for the audit settings (run by `manage.py check`, and at start-up)."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

MIN_RETENTION_DAYS = 365  # must match audit_min_retention() in migration 0004


@checks.register(checks.Tags.security)
def audit_settings(app_configs, **kwargs) -> list[checks.CheckMessage]:
    problems = []
    if settings.AUDIT_RETENTION_DAYS < MIN_RETENTION_DAYS:
        problems.append(checks.Error(
            f"AUDIT_RETENTION_DAYS must be at least {MIN_RETENTION_DAYS}; the database refuses "
            "to purge younger audit events.", id="audit.E001"))
    if getattr(settings, "PRODUCTION", False) and not settings.AUDIT_ANCHOR_KEY:
        problems.append(checks.Warning(
            "AUDIT_ANCHOR_KEY is not set: anchors are signed with a key derived from SECRET_KEY. "
            "Set a separate random key (32+ bytes) held outside the database.", id="audit.W001"))
    return problems
