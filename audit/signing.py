"""HMAC signatures for anchors and retention checkpoints.

The key is AUDIT_ANCHOR_KEY (or, in development, one derived from SECRET_KEY).
It should live apart from the database credentials: someone who can rewrite the
audit tables but does not hold this key cannot forge an anchor or a checkpoint.
Older keys stay listed in AUDIT_ANCHOR_OLD_KEYS so earlier signatures still verify.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from django.conf import settings


def _derived_default() -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), b"faceservice audit anchor key v1", hashlib.sha256).digest()


def current_key() -> bytes:
    configured = getattr(settings, "AUDIT_ANCHOR_KEY", "")
    return configured.encode() if configured else _derived_default()


def key_id(key: bytes) -> str:
    """A short public name for a key, so signatures say which key made them."""
    return hashlib.sha256(b"key-id:" + key).hexdigest()[:12]


def known_keys() -> dict[str, bytes]:
    keys = [current_key(), *(k.encode() for k in getattr(settings, "AUDIT_ANCHOR_OLD_KEYS", []))]
    return {key_id(k): k for k in keys}


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def sign(document: dict[str, Any]) -> tuple[str, str]:
    """(key_id, hex HMAC-SHA256) of the document under the current key."""
    key = current_key()
    return key_id(key), hmac.new(key, canonical(document), hashlib.sha256).hexdigest()


def verify(document: dict[str, Any], *, key_name: str, mac: str) -> bool | None:
    """True or False; None when the key that signed it is not known here."""
    key = known_keys().get(key_name)
    if key is None:
        return None
    expected = hmac.new(key, canonical(document), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, mac)
