"""DataKeyCache: bounded, expiring, thread-safe, never pickled or shown."""

from __future__ import annotations

import base64
import copy
import os
import pickle
import threading
import time

import pytest

from tenants.kms import DataKeyCache
from tests.conftest import FakeClock

pytestmark = pytest.mark.pure


def key(n: int) -> bytes:
    return bytes([n]) * 32


def test_ttl_expiry_counts_from_load_not_from_last_use():
    clock = FakeClock()
    cache = DataKeyCache(ttl_seconds=60, max_entries=10, clock=clock)
    cache.put("t1", 1, key(1))
    clock.now += 59
    assert cache.get("t1", 1) == key(1)
    clock.now += 0.5
    assert cache.get("t1", 1) == key(1)  # used a lot, but ...
    clock.now += 0.5
    assert cache.get("t1", 1) is None     # ... still expires 60 s after loading
    assert len(cache) == 0


def test_versions_and_tenants_are_separate_entries():
    cache = DataKeyCache(ttl_seconds=60, max_entries=10)
    cache.put("t1", 1, key(1))
    cache.put("t1", 2, key(2))
    cache.put("t2", 1, key(3))
    assert (cache.get("t1", 1), cache.get("t1", 2), cache.get("t2", 1)) == (key(1), key(2), key(3))
    assert cache.get("t2", 2) is None
    cache.invalidate("t1", 2)
    assert cache.get("t1", 2) is None and cache.get("t1", 1) == key(1)
    cache.invalidate("t1")
    assert cache.get("t1", 1) is None and cache.get("t2", 1) == key(3)


def test_size_bound_evicts_least_recently_used():
    cache = DataKeyCache(ttl_seconds=60, max_entries=3)
    for n in range(3):
        cache.put(f"t{n}", 1, key(n))
    assert cache.get("t0", 1) == key(0)  # t0 is now most recently used
    cache.put("t3", 1, key(3))
    assert len(cache) == 3
    assert cache.get("t1", 1) is None
    assert {cache.get(f"t{n}", 1) for n in (0, 2, 3)} == {key(0), key(2), key(3)}
    for n in range(100):
        cache.put(f"x{n}", 1, key(n))
    assert len(cache) == 3


def test_zero_ttl_or_size_caches_nothing():
    for cache in (DataKeyCache(ttl_seconds=0, max_entries=10),
                  DataKeyCache(ttl_seconds=60, max_entries=0)):
        cache.put("t", 1, key(1))
        assert cache.get("t", 1) is None


def test_cannot_be_pickled_or_copied():
    cache = DataKeyCache(ttl_seconds=60, max_entries=10)
    cache.put("t1", 1, key(7))
    for dump in (pickle.dumps, copy.copy, copy.deepcopy,
                 lambda c: pickle.dumps(c, protocol=0)):
        with pytest.raises(TypeError):
            dump(cache)


def test_repr_has_no_key_bytes():
    cache = DataKeyCache(ttl_seconds=60, max_entries=10)
    secret = os.urandom(32)
    cache.put("tenant-a", 3, secret)
    text = repr(cache) + str(cache) + f"{cache}"
    for form in (secret.hex(), repr(secret), base64.b64encode(secret).decode(), str(list(secret))):
        assert form not in text
    assert "entries=1" in text


def test_get_or_load_calls_the_loader_once_for_concurrent_misses():
    cache = DataKeyCache(ttl_seconds=60, max_entries=10)
    calls = []

    def loader() -> bytes:
        calls.append(1)
        time.sleep(0.05)
        return key(9)

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_load("t", 1, loader)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [key(9)] * 8
    assert len(calls) == 1


def test_loader_failure_is_not_cached():
    cache = DataKeyCache(ttl_seconds=60, max_entries=10)

    def failing() -> bytes:
        raise RuntimeError("kms down")

    with pytest.raises(RuntimeError):
        cache.get_or_load("t", 1, failing)
    assert cache.get("t", 1) is None
    assert cache.get_or_load("t", 1, lambda: key(1)) == key(1)


def test_forked_child_starts_empty():
    cache = DataKeyCache(ttl_seconds=60, max_entries=10)
    cache.put("t", 1, key(1))
    pid = os.fork()
    if pid == 0:  # child
        os._exit(0 if cache.get("t", 1) is None and len(cache) == 0 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert cache.get("t", 1) == key(1)
