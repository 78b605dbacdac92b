"""SecretCache: the one in-process cache for secrets (data keys, projection matrices).

Workers keep some secrets in memory for a short while because re-deriving them
is expensive (a KMS round trip, a 40 ms QR decomposition). Every such cache
follows the same rules, so they live here once:

- bounded: at most ``max_entries``; the least recently used entry goes first;
- expiring: an entry lives ``ttl_seconds`` from when it was *stored*, however
  often it is read, so a secret revoked upstream (a disabled KMS key, a shredded
  tenant) stops being served in every process within one TTL;
- thread-safe, with one loader per key at a time (:meth:`SecretCache.get_or_load`):
  a cold key under load costs one derivation, not one per thread;
- emptied in a forked child (Celery prefork): a child must not inherit a lock
  that another thread of the parent held at the moment of the fork;
- never pickled, copied or shown: ``repr`` has counts only, pickling and
  ``copy.copy``/``copy.deepcopy`` raise ``TypeError``.

``0`` for ``ttl_seconds`` or ``max_entries`` disables caching (every lookup
misses, :meth:`SecretCache.get_or_load` always calls its loader). ``None`` cannot
be cached: it is what a miss returns.

Python cannot reliably wipe ``bytes`` or arrays; eviction drops our reference and
leaves the memory to the allocator (docs/SECURITY.md, "4. Plaintext keys in memory").

Plain Python + cachetools; importing it loads no Django (contract
``faceservice-init-light``).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Any, Generic, NamedTuple, NoReturn, TypeVar

from cachetools import TTLCache

__all__ = ["SecretCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_live_caches: weakref.WeakSet[SecretCache[Any, Any]] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for cache in list(_live_caches):
        cache._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class _Entry(NamedTuple, Generic[V]):
    """A cached value and the clock reading at which it stops being served.

    TTLCache tracks the same expiry in private links; it is kept here too so that
    what a cache holds can be inspected (in tests) without reaching into them."""

    value: V
    expires_at: float


def _non_negative(value: float, name: str) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0")


class SecretCache(Generic[K, V]):
    """A bounded, expiring, thread-safe cache of secret values (see the module doc).

    ``label`` names the cache in ``repr`` and errors; ``contents`` says what it
    holds ("plaintext keys"), for the pickling error. ``clock`` is for tests.
    """

    def __init__(self, *, label: str, contents: str, ttl_seconds: float, max_entries: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        _non_negative(ttl_seconds, "ttl_seconds")
        _non_negative(max_entries, "max_entries")
        self._label = label
        self._contents = contents
        self._ttl = float(ttl_seconds)
        self._max = int(max_entries)
        self._clock = clock
        self._reset()
        _live_caches.add(self)

    def _reset(self) -> None:
        # Fresh lock and storage: also what a forked child starts from.
        self._lock = threading.Lock()
        # maxsize >= 1: cachetools refuses maxsize 0, and put() stores nothing then anyway.
        self._entries: TTLCache[K, _Entry[V]] = TTLCache(
            maxsize=max(self._max, 1), ttl=self._ttl, timer=self._clock)
        self._loading: dict[K, threading.Lock] = {}

    # --- never serialised or shown --------------------------------------------------

    def __repr__(self) -> str:
        return f"<{self._label} entries={len(self)} max_entries={self._max} ttl_seconds={self._ttl:g}>"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"{self._label} holds {self._contents} and must not be pickled or copied")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        # pickle and copy call __reduce_ex__ first; route every protocol to the refusal.
        self.__reduce__()

    def __getstate__(self) -> NoReturn:
        raise TypeError(f"{self._label} holds {self._contents} and must not be pickled")

    # --- configuration ----------------------------------------------------------------

    @property
    def ttl_seconds(self) -> float:
        return self._ttl

    @property
    def max_entries(self) -> int:
        return self._max

    def configure(self, *, ttl_seconds: float | None = None, max_entries: int | None = None) -> None:
        """Change the TTL and/or the bound; the cache is emptied (entries were stored
        under the old rules)."""
        if ttl_seconds is not None:
            _non_negative(ttl_seconds, "ttl_seconds")
        if max_entries is not None:
            _non_negative(max_entries, "max_entries")
        with self._lock:
            self._ttl = self._ttl if ttl_seconds is None else float(ttl_seconds)
            self._max = self._max if max_entries is None else int(max_entries)
            self._entries = TTLCache(maxsize=max(self._max, 1), ttl=self._ttl, timer=self._clock)

    # --- lookups ----------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)  # TTLCache drops expired entries first

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` has a live entry; unlike :meth:`get`, not a "use" for LRU."""
        with self._lock:
            self._entries.expire()
            return key in self._entries

    def get(self, key: K) -> V | None:
        """The cached value (now the most recently used), or None if absent or expired."""
        with self._lock:
            # Drop every expired secret now rather than at the next put.
            self._entries.expire()
            entry = self._entries.get(key)
            return None if entry is None else entry.value

    def put(self, key: K, value: V) -> None:
        """Cache ``value`` for ``ttl_seconds`` from now, evicting the least recently used
        entry if the cache is full."""
        if value is None:
            raise TypeError(f"{self._label} cannot cache None")
        if self._max == 0 or self._ttl == 0:
            return
        with self._lock, self._entries.timer as now:
            # The timer is frozen inside this block, so TTLCache's own expiry and
            # the one recorded in the entry are the same reading.
            self._entries[key] = _Entry(value, now + self._ttl)

    def get_or_load(self, key: K, loader: Callable[[], V]) -> V:
        """The cached value, or ``loader()`` cached. Concurrent misses on one key make
        one call; a loader's exception propagates and nothing is cached."""
        cached = self.get(key)
        if cached is not None:
            return cached
        with self._lock:
            per_key = self._loading.setdefault(key, threading.Lock())
        try:
            with per_key:
                return self._load_once(key, loader)
        finally:
            self._forget_loader(key, per_key)

    def _load_once(self, key: K, loader: Callable[[], V]) -> V:
        cached = self.get(key)  # another thread may have loaded it while we waited
        if cached is not None:
            return cached
        value = loader()
        self.put(key, value)
        return value

    def _forget_loader(self, key: K, per_key: threading.Lock) -> None:
        # Keep the per-key lock while another thread still waits on it.
        with self._lock:
            if self._loading.get(key) is per_key and not per_key.locked():
                del self._loading[key]

    # --- removal ----------------------------------------------------------------------

    def discard(self, key: K) -> None:
        """Forget ``key`` if cached."""
        with self._lock:
            self._entries.pop(key, None)

    def discard_where(self, predicate: Callable[[K], bool]) -> None:
        """Forget every key for which ``predicate(key)`` is true."""
        with self._lock:
            for key in [k for k in self._entries if predicate(k)]:
                self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
