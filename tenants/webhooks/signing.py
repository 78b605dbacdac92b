"""Webhook signing: the endpoints' secrets (sealed at rest) and the Standard Webhooks headers.

Signing secrets are stored only AES-GCM-encrypted under a key derived from the
settings (WEBHOOK_SECRETS_KEY, else SECRET_KEY), bound to the tenant and
endpoint. Not under the tenant's data key: key rotation retires old data keys
once no face uses them, which would silently orphan these secrets.

A delivery is signed per the Standard Webhooks specification (webhook-id,
webhook-timestamp, webhook-signature = v1,base64(HMAC-SHA256(secret,
"id.timestamp.body"))) with the `standardwebhooks` package.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from standardwebhooks import Webhook

from faceservice import sealing
from tenants.models import WebhookEndpoint

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format marker, not a secret
SECRET_BYTES = 32
USER_AGENT = "faceservice-webhooks/1"


# --- Secrets ------------------------------------------------------------------------

def _secrets_key() -> bytes:
    configured = getattr(settings, "WEBHOOK_SECRETS_KEY", "")
    material = base64.b64decode(configured) if configured else settings.SECRET_KEY.encode()
    return sealing.derive_key(material, salt=b"faceservice/webhook-secrets/v1", info=b"webhook signing secrets")


def _secret_aad(tenant_id: UUID | str, endpoint_id: UUID | str) -> bytes:
    return sealing.associated_data("webhook-secret", str(tenant_id), str(endpoint_id))


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def seal_secret(secret: str, *, tenant_id: UUID | str, endpoint_id: UUID | str) -> bytes:
    return sealing.seal(_secrets_key(), secret.encode(), associated_data=_secret_aad(tenant_id, endpoint_id))


def open_secret(blob: bytes, *, tenant_id: UUID | str, endpoint_id: UUID | str) -> str:
    """The endpoint's secret; sealing.SealError if the blob is not this endpoint's."""
    return sealing.open_sealed(_secrets_key(), blob, associated_data=_secret_aad(tenant_id, endpoint_id)).decode()


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, and the previous one while its rotation grace lasts."""
    found = [open_secret(endpoint.secret_ciphertext, tenant_id=endpoint.tenant_id, endpoint_id=endpoint.id)]
    if (endpoint.previous_secret_ciphertext and endpoint.previous_secret_expires_at
            and endpoint.previous_secret_expires_at > now):
        found.append(open_secret(endpoint.previous_secret_ciphertext, tenant_id=endpoint.tenant_id,
                                 endpoint_id=endpoint.id))
    return found


# --- Signing --------------------------------------------------------------------------

def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact JSON with sorted keys."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signed_headers(*, event_id: str, body: bytes, secrets_: list[str], now: datetime) -> dict[str, str]:
    """Standard Webhooks headers; several `v1,` signatures while a rotation is in grace."""
    text = body.decode()
    signatures = " ".join(Webhook(secret).sign(event_id, now, text) for secret in secrets_)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
