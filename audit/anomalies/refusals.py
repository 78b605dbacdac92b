"""Counters of refused API requests that the audit log does not hold: 401 and 429.

A 403 (a key used beyond its roles) is an audit event already (`api_key.role_refused`).
A 401 (no such key) has no tenant, and a 429 comes in floods: an audit row each
would put a database write, serialised on a chain head, on exactly the requests
an attacker can send fastest. So they are counted here instead, in Valkey, one
pipelined round trip per refused request: per minute, a hash of counters per
client address and per API key, expiring on its own.

The detector sums the minutes of its window (`counts_since`). Valkey holds
nothing that cannot be lost: after a restart the counts start again.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

COUNTED_STATUSES = (401, 429)
PREFIX = "fs:refused:"
MINUTE = 60


@dataclass(frozen=True)
class RefusalCounts:
    """Refused requests in a window: by client address, and by API key id (429 only)."""

    by_address: Counter
    by_key: Counter


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)


def count_refusal(*, status: int, client_ip: str | None, api_key_id: str | None = None,
                  now: float | None = None) -> None:
    """Count one refused request (401 or 429). Never raises: a lost count must not fail a request.

    Call it where the response status is known, e.g. the access log middleware.
    """
    if status not in COUNTED_STATUSES or not (client_ip or api_key_id):
        return
    minute = int((now if now is not None else time.time()) // MINUTE)
    key = f"{PREFIX}{minute}"
    try:
        pipe = _client().pipeline(transaction=False)
        if client_ip:
            pipe.hincrby(key, f"a|{client_ip}", 1)
        if api_key_id:
            pipe.hincrby(key, f"k|{api_key_id}", 1)
        pipe.expire(key, settings.ANOMALY_BURST_WINDOW_SECONDS + 2 * MINUTE)
        pipe.execute()
    except redis.RedisError:
        logger.debug("refusal not counted: Valkey unavailable")


def counts_since(*, since: float, until: float) -> RefusalCounts:
    """The counts of every minute from `since` to `until` (epoch seconds), summed."""
    minutes = range(int(since // MINUTE), int(until // MINUTE) + 1)
    pipe = _client().pipeline(transaction=False)
    for minute in minutes:
        pipe.hgetall(f"{PREFIX}{minute}")
    by_address: Counter = Counter()
    by_key: Counter = Counter()
    for counters in pipe.execute():
        for field, value in counters.items():
            kind, _, subject = field.decode().partition("|")
            (by_address if kind == "a" else by_key)[subject] += int(value)
    return RefusalCounts(by_address=by_address, by_key=by_key)
