"""faceservice.secret_cache.SecretCache: bounded, expiring, thread-safe, never pickled or shown."""

from __future__ import annotations

import copy
import os
import pickle
import threading
import time

import pytest

from faceservice.secret_cache import SecretCache
from tests.conftest import FakeClock

pytestmark = pytest.mark.pure


def make(ttl_seconds: float = 60, max_entries: int = 10, **kwargs) -> SecretCache[str, bytes]:
    return SecretCache(label="TestCache", contents="test secrets",
                       ttl_seconds=ttl_seconds, max_entries=max_entries, **kwargs)


def test_ttl_counts_from_put_not_from_last_use():
    clock = FakeClock()
    cache = make(clock=clock)
    cache.put("a", b"1")
    clock.now += 59.9
    assert cache.get("a") == b"1"
    assert "a" in cache
    clock.now += 0.1
    assert cache.get("a") is None
    assert "a" not in cache
    assert len(cache) == 0


def test_put_again_restarts_the_ttl():
    clock = FakeClock()
    cache = make(clock=clock)
    cache.put("a", b"1")
    clock.now += 50
    cache.put("a", b"2")
    clock.now += 50
    assert cache.get("a") == b"2"


def test_bound_evicts_least_recently_used():
    cache = make(max_entries=3)
    for name in "abc":
        cache.put(name, name.encode())
    assert cache.get("a") == b"a"  # "a" is now the most recently used
    cache.put("d", b"d")
    assert cache.get("b") is None
    assert [cache.get(n) for n in "acd"] == [b"a", b"c", b"d"]
    assert len(cache) == 3


def test_membership_test_is_not_a_use():
    cache = make(max_entries=2)
    cache.put("a", b"a")
    cache.put("b", b"b")
    assert "a" in cache
    cache.put("c", b"c")
    assert cache.get("a") is None and cache.get("b") == b"b"


def test_expired_entries_make_room_before_live_ones_are_evicted():
    clock = FakeClock()
    cache = make(max_entries=2, clock=clock)
    cache.put("old", b"o")
    clock.now += 30
    cache.put("live", b"l")
    clock.now += 31  # "old" has expired, "live" has not
    cache.put("new", b"n")
    assert cache.get("live") == b"l" and cache.get("new") == b"n"


@pytest.mark.parametrize(("ttl", "size"), [(0, 10), (60, 0)])
def test_zero_ttl_or_size_caches_nothing(ttl, size):
    cache = make(ttl_seconds=ttl, max_entries=size)
    cache.put("a", b"1")
    assert cache.get("a") is None and len(cache) == 0
    calls = []
    assert cache.get_or_load("a", lambda: calls.append(1) or b"x") == b"x"
    assert cache.get_or_load("a", lambda: calls.append(1) or b"x") == b"x"
    assert len(calls) == 2


@pytest.mark.parametrize("kwargs", [{"ttl_seconds": -1}, {"max_entries": -1}])
def test_negative_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        make(**kwargs)
    with pytest.raises(ValueError):
        make().configure(**kwargs)


def test_none_cannot_be_cached():
    with pytest.raises(TypeError):
        make().put("a", None)


def test_configure_changes_the_rules_and_empties_the_cache():
    clock = FakeClock()
    cache = make(max_entries=1, clock=clock)
    cache.put("a", b"a")
    cache.configure(max_entries=2, ttl_seconds=5)
    assert (cache.max_entries, cache.ttl_seconds, len(cache)) == (2, 5.0, 0)
    cache.put("a", b"a")
    cache.put("b", b"b")
    assert len(cache) == 2
    clock.now += 5
    assert len(cache) == 0
    cache.configure(max_entries=0)
    assert cache.ttl_seconds == 5.0
    cache.put("a", b"a")
    assert cache.get("a") is None


def test_discard_and_discard_where_and_clear():
    cache = make()
    for name in ("t1/1", "t1/2", "t2/1"):
        cache.put(name, name.encode())
    cache.discard("t1/2")
    cache.discard("absent")
    assert cache.get("t1/2") is None and len(cache) == 2
    cache.discard_where(lambda key: key.startswith("t1/"))
    assert cache.get("t1/1") is None and cache.get("t2/1") == b"t2/1"
    cache.clear()
    assert len(cache) == 0


def test_cannot_be_pickled_or_copied():
    cache = make()
    cache.put("a", b"secret")
    for dump in (pickle.dumps, copy.copy, copy.deepcopy, lambda c: pickle.dumps(c, protocol=0)):
        with pytest.raises(TypeError, match="TestCache holds test secrets and must not be pickled"):
            dump(cache)
    with pytest.raises(TypeError, match=r"must not be pickled$"):
        cache.__getstate__()


def test_repr_has_counts_only():
    cache = make()
    secret = os.urandom(16)
    cache.put("key-name", secret)
    text = repr(cache) + str(cache) + f"{cache}"
    assert repr(cache) == "<TestCache entries=1 max_entries=10 ttl_seconds=60>"
    assert secret.hex() not in text and repr(secret) not in text and "key-name" not in text


def test_get_or_load_calls_the_loader_once_for_concurrent_misses():
    cache = make()
    calls = []

    def loader() -> bytes:
        calls.append(1)
        time.sleep(0.05)
        return b"loaded"

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_load("a", loader)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [b"loaded"] * 8
    assert len(calls) == 1
    assert cache._loading == {}  # per-key locks do not accumulate


def test_loader_failure_is_not_cached():
    cache = make()

    def failing() -> bytes:
        raise RuntimeError("upstream down")

    with pytest.raises(RuntimeError):
        cache.get_or_load("a", failing)
    assert cache.get("a") is None
    assert cache.get_or_load("a", lambda: b"ok") == b"ok"
    assert cache.get_or_load("a", failing) == b"ok"


def test_forked_child_starts_empty_with_fresh_locks():
    cache = make()
    cache.put("a", b"1")
    with cache._lock:  # held by this (parent) thread at the moment of the fork
        pid = os.fork()
        if pid == 0:  # child: must neither see the entry nor block on the inherited lock
            free = cache._lock.acquire(timeout=1)
            if free:
                cache._lock.release()
            os._exit(0 if free and cache.get("a") is None and len(cache) == 0 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert cache.get("a") == b"1"
