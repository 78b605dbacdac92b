"""Rate limits per API key and per client IP, counted in Redis (DRF throttling)."""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class LiveRateMixin:
    """Read the rate from the live settings (DRF binds it at import time)."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class ApiKeyRateThrottle(LiveRateMixin, SimpleRateThrottle):
    scope = "api_key"

    def get_cache_key(self, request, view):
        api_key = getattr(request.user, "api_key", None)
        if api_key is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": api_key.id}


class ClientIpRateThrottle(LiveRateMixin, SimpleRateThrottle):
    scope = "client_ip"
    before_authentication = True  # see TenantAPIView.initial

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
