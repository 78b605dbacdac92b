"""Reads for tenants and API keys."""

from __future__ import annotations

import hmac
import threading
from uuid import UUID

from cachetools import TTLCache
from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from faceservice.tenancy import platform_scope
from tenants.models import ApiKey, Tenant
from tenants.services import digest_secret, parse_key

# Verified keys by the SHA-256 of their secret (never the secret itself).
# Only keys that matched are kept: unknown keys cannot fill the cache.
_verified_keys: TTLCache | None = None
_verified_keys_lock = threading.Lock()


def _key_cache() -> TTLCache | None:
    global _verified_keys
    seconds = settings.API_KEY_CACHE_SECONDS
    if seconds <= 0:
        return None
    if _verified_keys is None or _verified_keys.ttl != seconds:
        _verified_keys = TTLCache(maxsize=10_000, ttl=seconds)
    return _verified_keys


def forget_cached_keys() -> None:
    """Drop this process's verified keys (after a revocation or a tenant status change)."""
    with _verified_keys_lock:
        if _verified_keys is not None:
            _verified_keys.clear()


def _cached_key(digest: str) -> ApiKey | None:
    with _verified_keys_lock:
        cache = _key_cache()
        return cache.get(digest) if cache is not None else None


def is_verified_recently(plaintext: str | None) -> bool:
    """Whether this secret matched a key within API_KEY_CACHE_SECONDS (no database read)."""
    if not plaintext or parse_key(plaintext) is None:
        return False
    return _cached_key(digest_secret(plaintext)) is not None


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
    cached = _cached_key(digest)
    if cached is not None:
        return cached
    with platform_scope():
        api_key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
    if api_key is None or not hmac.compare_digest(api_key.digest, digest):
        return None
    with _verified_keys_lock:
        cache = _key_cache()
        if cache is not None:
            cache[digest] = api_key
    return api_key


def api_keys_of(*, tenant_id: UUID) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(tenant_id=tenant_id).order_by("-created_at", "id")


def tenant_by_id(tenant_id: UUID) -> Tenant:
    return Tenant.objects.get(id=tenant_id)


def usable(api_key: ApiKey) -> bool:
    return api_key.is_usable(timezone.now()) and api_key.tenant.is_active
