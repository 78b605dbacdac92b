"""A small in-process cache of plaintext data keys.

Unwrapping a tenant's data key costs a KMS round trip, so workers keep the
plaintext for a short while. The cache is deliberately narrow:

- bounded (``max_entries``, least recently used evicted first);
- entries expire ``ttl_seconds`` after they were *loaded* (not after last use),
  so a key disabled or destroyed in the KMS stops working in every process
  within one TTL, however busy the tenant is;
- thread-safe, with one loader per key at a time (a cold tenant under load
  makes one KMS call, not one per thread);
- cleared in a forked child (Celery prefork), whose locks could otherwise be
  inherited in a held state;
- never pickled, copied or shown: ``repr`` has counts only, pickling raises.

Those rules are faceservice.secret_cache.SecretCache's (shared with the
projection matrix cache); this class adds the (tenant id, key version) key and
its validation.

Python cannot reliably wipe ``bytes``; eviction drops our reference and
leaves the memory to the allocator. See docs/SECURITY.md, "4. Plaintext keys in memory".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any, NoReturn

from faceservice import metrics
from faceservice.secret_cache import SecretCache

CacheKey = tuple[str, int]


def _cache_key(tenant_id: Hashable, key_version: int) -> CacheKey:
    if isinstance(key_version, bool) or not isinstance(key_version, int):
        raise TypeError("key_version must be an int")
    return (str(tenant_id), key_version)


def _checked(data_key: bytes) -> bytes:
    if not isinstance(data_key, bytes):
        raise TypeError("data_key must be bytes")
    return data_key


class DataKeyCache:
    """Plaintext data keys keyed by (tenant id, key version)."""

    def __init__(self, ttl_seconds: float, max_entries: int, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cache: SecretCache[CacheKey, bytes] = SecretCache(
            label="DataKeyCache", contents="plaintext keys",
            ttl_seconds=ttl_seconds, max_entries=max_entries, clock=clock)

    # --- never serialised or shown: SecretCache's refusals, under this class's name ---

    def __repr__(self) -> str:
        return repr(self._cache)

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        self._cache.__reduce__()

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        self._cache.__reduce__()

    def __getstate__(self) -> NoReturn:
        self._cache.__getstate__()

    # --- API --------------------------------------------------------------------------

    @property
    def ttl_seconds(self) -> float:
        return self._cache.ttl_seconds

    @property
    def max_entries(self) -> int:
        return self._cache.max_entries

    def __len__(self) -> int:
        return len(self._cache)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        return self.get(*item) is not None

    def get(self, tenant_id: Hashable, key_version: int) -> bytes | None:
        """The cached key, or None if absent or expired."""
        return self._cache.get(_cache_key(tenant_id, key_version))

    def put(self, tenant_id: Hashable, key_version: int, data_key: bytes) -> None:
        key = _cache_key(tenant_id, key_version)
        self._cache.put(key, _checked(data_key))

    def get_or_load(self, tenant_id: Hashable, key_version: int,
                    loader: Callable[[], bytes]) -> bytes:
        """The cached key, or ``loader()`` (called once per key at a time) cached.

        Each lookup counts as a hit or a miss (faceservice_kms_cache_lookups_total).
        """
        key = _cache_key(tenant_id, key_version)
        cached = self._cache.get(key)
        metrics.count_kms_cache(hit=cached is not None)
        if cached is not None:
            return cached
        return self._cache.get_or_load(key, lambda: _checked(loader()))

    def invalidate(self, tenant_id: Hashable, key_version: int | None = None) -> None:
        """Forget one tenant's key (one version, or all versions)."""
        tenant = str(tenant_id)
        if key_version is not None:
            self._cache.discard(_cache_key(tenant, key_version))
        else:
            self._cache.discard_where(lambda key: key[0] == tenant)

    def clear(self) -> None:
        self._cache.clear()
