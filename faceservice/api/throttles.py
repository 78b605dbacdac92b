"""Rate limits per API key and per client IP, counted in Redis (DRF throttling).

DRF's SimpleRateThrottle keeps each client's request times in the cache and
reads then writes them: two round trips a throttle, and two concurrent
requests can both pass the last free slot. Ours keeps the same sliding window
(a sorted set of request times) but checks and records in one Lua script: one
round trip, atomic across processes.
"""

from __future__ import annotations

import time
import uuid
from functools import cache

import redis
from django.conf import settings
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

# KEYS[1]: the client's window; ARGV: now, window length (s), limit, a unique member.
# Returns {allowed (0/1), the oldest request time still in the window}.
SLIDING_WINDOW = """
local key, now, duration, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - duration)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, math.ceil(duration * 1000))
  return {1, ''}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {0, oldest[2]}
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
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = time.time()
        allowed, oldest = _sliding_window()(
            keys=[self.key], args=[self.now, self.duration, self.num_requests, f"{self.now}:{uuid.uuid4().hex}"])
        self._oldest = float(oldest) if oldest else None
        return bool(allowed)

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
