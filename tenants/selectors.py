"""Reads for tenants and API keys."""

from __future__ import annotations

import hmac
from uuid import UUID

from django.db.models import QuerySet
from django.utils import timezone

from faceservice.tenancy import platform_scope
from tenants.api_keys import cached_key, digest_secret, parse_key, remember_key
from tenants.models import ApiKey, Tenant


def is_verified_recently(plaintext: str | None) -> bool:
    """Whether this secret matched a key within API_KEY_CACHE_SECONDS (no database read)."""
    if not plaintext or parse_key(plaintext) is None:
        return False
    return cached_key(digest_secret(plaintext)) is not None


def api_key_for_secret(plaintext: str) -> ApiKey | None:
    """The key matching this secret, with its tenant, or None.

    Runs in platform scope: before the key is known we do not know the tenant
    whose rows we may see. It returns only the one matching row. A match is
    kept for API_KEY_CACHE_SECONDS; callers still check `usable()` (expiry,
    revocation, tenant status) on every request.
    """
    prefix = parse_key(plaintext)
    if prefix is None:
        return None
    digest = digest_secret(plaintext)
    cached = cached_key(digest)
    if cached is not None:
        return cached
    with platform_scope():
        api_key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
    if api_key is None or not hmac.compare_digest(api_key.digest, digest):
        return None
    remember_key(digest, api_key)
    return api_key


def api_keys_of(*, tenant_id: UUID) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(tenant_id=tenant_id).order_by("-created_at", "id")


def tenant_by_id(tenant_id: UUID) -> Tenant:
    return Tenant.objects.get(id=tenant_id)


def usable(api_key: ApiKey) -> bool:
    return api_key.is_usable(timezone.now()) and api_key.tenant.is_active
