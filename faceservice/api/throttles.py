"""Rate limits per API key and per client IP, counted in Redis (DRF throttling).

DRF's SimpleRateThrottle keeps each client's request times in the cache and
reads then writes them: two round trips a throttle, and two concurrent
requests can both pass the last free slot. Ours keeps the same sliding window
(a sorted set of request times) but checks and records in one Lua script: one
round trip, atomic across processes. `allow_all` counts several limits (the
key's and the address's) in one call of the script.
"""

from __future__ import annotations

import time
import uuid
from functools import cache

import redis
from django.conf import settings
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from faceservice import metrics

# KEYS: the clients' windows; ARGV: now, a unique member, then per window its
# length (s) and limit. A request is recorded in every window or, if any is
# full, in none. Returns per window: the oldest request time still in it when
# it is full, else ''.
SLIDING_WINDOW = """
local now, member = tonumber(ARGV[1]), ARGV[2]
local full, answer = false, {}
for i, key in ipairs(KEYS) do
  local duration, limit = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - duration)
  answer[i] = ''
  if redis.call('ZCARD', key) >= limit then
    full = true
    answer[i] = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]
  end
end
if not full then
  for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[1 + 2 * i]) * 1000))
  end
end
return answer
"""


@cache
def _sliding_window() -> redis.commands.core.Script:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    return client.register_script(SLIDING_WINDOW)


class SlidingWindowThrottle(SimpleRateThrottle):
    """SimpleRateThrottle's window and rate syntax, counted atomically in one round trip."""

    cache_format = "fs:throttle:%(scope)s:%(ident)s"

    def get_rate(self):
        # The live settings: DRF binds the rates at import time.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        return not allow_all([self], request, view)

    def wait(self) -> float | None:
        if self._oldest is None:
            return None
        return max(self.duration - (self.now - self._oldest), 0.0)


class ApiKeyRateThrottle(SlidingWindowThrottle):
    scope = "api_key"

    def get_cache_key(self, request, view):
        api_key = getattr(request.user, "api_key", None)
        if api_key is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": api_key.id}


class ClientIpRateThrottle(SlidingWindowThrottle):
    scope = "client_ip"
    before_authentication = True  # see TenantAPIView.initial

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def allow_all(throttles: list[SlidingWindowThrottle], request, view) -> list[float | None]:
    """Count the request against every throttle in one round trip; the waits of those it exceeds.

    An empty list means the request is allowed (and was recorded by all).
    """
    counted = []
    for throttle in throttles:
        throttle._oldest = None
        if throttle.rate is not None:
            throttle.key = throttle.get_cache_key(request, view)
            if throttle.key is not None:
                counted.append(throttle)
    if not counted:
        return []
    now = time.time()
    limits = [value for t in counted for value in (t.duration, t.num_requests)]
    answer = _sliding_window()(keys=[t.key for t in counted], args=[now, f"{now}:{uuid.uuid4().hex}", *limits])
    waits = []
    for throttle, oldest in zip(counted, answer, strict=True):
        throttle.now = now
        if oldest:
            throttle._oldest = float(oldest)
            waits.append(throttle.wait())
            metrics.count_rate_limited(throttle.scope)  # the limit that refused it
    return waits
