"""Webhook deliveries (tenants/webhooks; docs/WEBHOOKS.md)."""

from pydantic import Field

from faceservice.settings.base import PRODUCTION
from faceservice.settings.environment import Flag, Variables, export, read, shown


class Webhooks(Variables):
    """Webhooks"""

    WEBHOOK_SECRETS_KEY: str = Field(
        "", json_schema_extra=shown("empty (derived from `SECRET_KEY`)"),
        description="base64 of 32 random bytes; encrypts webhook signing secrets at rest. Set it in production")
    WEBHOOK_ALLOW_HTTP: Flag = Field(
        default_factory=lambda: not PRODUCTION, json_schema_extra=shown("off in production, on elsewhere"),
        description="allow `http://` webhook endpoints")
    WEBHOOK_CONNECT_TIMEOUT_SECONDS: float = Field(3.0, description="webhook connect timeout")
    WEBHOOK_READ_TIMEOUT_SECONDS: float = Field(5.0, description="webhook read timeout")
    WEBHOOK_TOTAL_TIMEOUT_SECONDS: float = Field(10.0, description="webhook attempt deadline")
    WEBHOOK_MAX_RESPONSE_BYTES: int = Field(256 * 1024, description="response bytes read from a webhook endpoint")
    # Backoff after the n-th failure: BASE * FACTOR^(n-1), capped, ±20 % jitter.
    # Defaults: 5 s, 30 s, 3 min, 18 min, 1.8 h, then 8 h: 10 attempts over ~34 h.
    WEBHOOK_MAX_ATTEMPTS: int = Field(10, description="attempts per delivery")
    WEBHOOK_RETRY_BASE_SECONDS: float = Field(5.0, description="first retry delay")
    WEBHOOK_RETRY_FACTOR: float = Field(6.0, description="backoff factor between attempts (±20 % jitter)")
    WEBHOOK_RETRY_MAX_DELAY_SECONDS: float = Field(8 * 3600.0, description="longest retry delay")
    WEBHOOK_COUNTDOWN_MAX_SECONDS: float = Field(
        60.0, description="longer delays are left to the sweeper instead of a broker countdown")
    WEBHOOK_ATTEMPT_LEASE_SECONDS: int = Field(120, description="a worker's hold on a delivery attempt")
    WEBHOOK_REQUEUE_AFTER_SECONDS: int = Field(
        300, description="a delivery queued but never attempted is queued again after this")
    # Auto-disable: this many failed attempts in a row AND no success for this long.
    WEBHOOK_DISABLE_AFTER_FAILURES: int = Field(
        20, description="an endpoint is disabled after this many failures in a row ...")
    WEBHOOK_DISABLE_AFTER_SECONDS: int = Field(
        3 * 24 * 3600, description="... and no success for this long (3 days)")
    WEBHOOK_SECRET_ROTATION_GRACE_SECONDS: int = Field(
        24 * 3600, description="the old signing secret still signs for this long after a rotation")


export(read(Webhooks), globals())
