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

Python cannot reliably wipe ``bytes``; eviction drops our reference and
leaves the memory to the allocator. See docs/SECURITY.md, "4. Plaintext keys in memory".
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable

CacheKey = tuple[str, int]

_live_caches: weakref.WeakSet[DataKeyCache] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for cache in list(_live_caches):
        cache._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _cache_key(tenant_id: Hashable, key_version: int) -> CacheKey:
    if isinstance(key_version, bool) or not isinstance(key_version, int):
        raise TypeError("key_version must be an int")
    return (str(tenant_id), key_version)


class DataKeyCache:
    """Plaintext data keys keyed by (tenant id, key version)."""

    def __init__(self, ttl_seconds: float, max_entries: int, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_seconds < 0:
            raise ValueError("ttl_seconds must be >= 0")
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self._ttl = float(ttl_seconds)
        self._max = int(max_entries)
        self._clock = clock
        self._reset()
        _live_caches.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[CacheKey, tuple[bytes, float]] = OrderedDict()
        self._loading: dict[CacheKey, threading.Lock] = {}

    # --- never serialised or shown --------------------------------------------------

    def __repr__(self) -> str:
        return (f"<DataKeyCache entries={len(self._entries)} max_entries={self._max} "
                f"ttl_seconds={self._ttl:g}>")

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("DataKeyCache holds plaintext keys and must not be pickled or copied")

    def __reduce_ex__(self, protocol):
        return self.__reduce__()

    def __getstate__(self):
        raise TypeError("DataKeyCache holds plaintext keys and must not be pickled")

    # --- API --------------------------------------------------------------------------

    @property
    def ttl_seconds(self) -> float:
        return self._ttl

    @property
    def max_entries(self) -> int:
        return self._max

    def __len__(self) -> int:
        with self._lock:
            self._purge_expired(self._clock())
            return len(self._entries)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        return self.get(*item) is not None

    def _purge_expired(self, now: float) -> None:
        expired = [k for k, (_, expires) in self._entries.items() if expires <= now]
        for k in expired:
            del self._entries[k]

    def get(self, tenant_id: Hashable, key_version: int) -> bytes | None:
        """The cached key, or None if absent or expired."""
        key = _cache_key(tenant_id, key_version)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[1] <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, tenant_id: Hashable, key_version: int, data_key: bytes) -> None:
        key = _cache_key(tenant_id, key_version)
        if not isinstance(data_key, bytes):
            raise TypeError("data_key must be bytes")
        if self._max == 0 or self._ttl == 0:
            return
        with self._lock:
            now = self._clock()
            self._entries[key] = (data_key, now + self._ttl)
            self._entries.move_to_end(key)
            if len(self._entries) > self._max:
                self._purge_expired(now)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def get_or_load(self, tenant_id: Hashable, key_version: int,
                    loader: Callable[[], bytes]) -> bytes:
        """The cached key, or ``loader()`` (called once per key at a time) cached."""
        cached = self.get(tenant_id, key_version)
        if cached is not None:
            return cached
        key = _cache_key(tenant_id, key_version)
        with self._lock:
            per_key = self._loading.setdefault(key, threading.Lock())
        try:
            with per_key:
                cached = self.get(tenant_id, key_version)  # another thread loaded it
                if cached is not None:
                    return cached
                data_key = loader()
                self.put(tenant_id, key_version, data_key)
                return data_key
        finally:
            with self._lock:
                if self._loading.get(key) is per_key and not per_key.locked():
                    del self._loading[key]

    def invalidate(self, tenant_id: Hashable, key_version: int | None = None) -> None:
        """Forget one tenant's key (one version, or all versions)."""
        tenant = str(tenant_id)
        with self._lock:
            if key_version is not None:
                self._entries.pop(_cache_key(tenant, key_version), None)
            else:
                for k in [k for k in self._entries if k[0] == tenant]:
                    del self._entries[k]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
