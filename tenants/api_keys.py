"""API keys' format and this process's cache of verified keys.

Shared by tenants/services.py (issuing, revoking) and tenants/selectors.py
(authenticating), so that neither imports the other.
"""

from __future__ import annotations

import hashlib
import secrets
import threading

from cachetools import TTLCache
from django.conf import settings

from tenants.models import ApiKey

KEY_PREFIX_BYTES = 6  # 12 random hex characters of the public lookup prefix
KEY_SECRET_BYTES = 32  # 256 bits of entropy
KEY_SCHEME = "fsk"
# The prefix's first 4 hex characters are the tenant's routing tag, the rest random:
# a proxy in front of several web nodes hashes on the tag, so that every key of a
# tenant lands on the same node and its search galleries stay warm there
# (docs/SCALING.md, deploy/nginx/). Public and not secret: any key shows it.
ROUTING_TAG_HEX = 4


def routing_tag(tenant_id) -> str:
    """The tenant's routing tag: the first 16 bits of SHA-256 of its id, as hex."""
    return hashlib.sha256(str(tenant_id).encode()).hexdigest()[:ROUTING_TAG_HEX]


def new_prefix(tenant_id) -> str:
    """A key's public lookup prefix: the tenant's routing tag, then 48 random bits (16 hex in all)."""
    return routing_tag(tenant_id) + secrets.token_hex(KEY_PREFIX_BYTES)


# Keys issued before routing tags have 12 hex characters of prefix; they keep working.
PREFIX_LENGTHS = (KEY_PREFIX_BYTES * 2, ROUTING_TAG_HEX + KEY_PREFIX_BYTES * 2)


def digest_secret(plaintext: str) -> str:
    # The secret is 256 random bits, so a fast hash is enough (as for GitHub
    # tokens): a slow password hash would add latency to every request and no
    # protection that the entropy does not already give.
    return hashlib.sha256(plaintext.encode()).hexdigest()


def parse_key(plaintext: str) -> str | None:
    """The lookup prefix of a key shaped `fsk_<prefix>_<secret>`, else None."""
    parts = plaintext.split("_", 2)  # the secret itself may contain "_"
    if len(parts) != 3 or parts[0] != KEY_SCHEME or len(parts[1]) not in PREFIX_LENGTHS:
        return None
    return parts[1]


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


def cached_key(digest: str) -> ApiKey | None:
    with _verified_keys_lock:
        cache = _key_cache()
        return cache.get(digest) if cache is not None else None


def remember_key(digest: str, api_key: ApiKey) -> None:
    with _verified_keys_lock:
        cache = _key_cache()
        if cache is not None:
            cache[digest] = api_key
