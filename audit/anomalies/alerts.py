"""What an anomaly sets off besides its audit event: a metric and the operator's webhook.

The operator's alert is one POST of JSON to OPERATOR_ALERT_WEBHOOK_URL through the
SSRF-safe client (faceservice/outbound/http.py), signed with Standard Webhooks
headers under OPERATOR_ALERT_WEBHOOK_SECRET like a tenant's webhook, so a receiver
verifies it with the same library. It is tried once: the audit event is the
durable record, and a failed alert is logged as an error (and counted) for the
log-based alerting to catch.
"""

from __future__ import annotations

import json
import logging
import uuid

from django.conf import settings
from django.utils import timezone
from standardwebhooks import Webhook

from audit.anomalies.rules import Anomaly
from audit.models import AuditEvent
from faceservice import metrics
from faceservice.errors import ImageError
from faceservice.outbound.http import Timeouts, safe_request

logger = logging.getLogger(__name__)

ALERT_TYPE = "anomaly.detected"
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "faceservice-alerts/1"


def count_in_metrics(anomaly: Anomaly) -> None:
    """One count per anomaly raised, labelled by rule name only (never the subject: unbounded)."""
    metrics.count_anomaly(anomaly.rule)


def payload(anomaly: Anomaly, event: AuditEvent) -> dict:
    """What the operator receives: the rule, the subject and the numbers; never face data."""
    return {
        "type": ALERT_TYPE, "rule": anomaly.rule, "summary": anomaly.summary(),
        "subject": anomaly.subject, "tenant_id": anomaly.tenant_id, "count": anomaly.count,
        "threshold": anomaly.threshold, "window_seconds": anomaly.window_seconds, "facts": anomaly.facts,
        "audit_event": {"id": event.id, "chain": event.chain, "seq": event.seq, "hash": event.hash},
        "occurred_at": event.occurred_at.isoformat(),
    }


def notify_operator(anomaly: Anomaly, event: AuditEvent) -> bool:
    """POST the alert to the operator's webhook, when one is configured. True when it was accepted."""
    url = settings.OPERATOR_ALERT_WEBHOOK_URL
    if not url:
        return False
    body = _body(payload(anomaly, event))
    try:
        response = safe_request("POST", url, body=body, headers=_headers(body), timeout=_timeouts(),
                                max_bytes=MAX_RESPONSE_BYTES, allowed_networks=settings.FETCH_ALLOWED_NETWORKS,
                                follow_redirects=False)
    except ImageError as exc:
        logger.error("operator alert not delivered: %s", exc.code, extra={"rule": anomaly.rule})
        return False
    if not response.is_success:
        logger.error("operator alert refused: HTTP %s", response.status_code, extra={"rule": anomaly.rule})
        return False
    return True


def _body(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def _headers(body: bytes) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    secret = settings.OPERATOR_ALERT_WEBHOOK_SECRET
    if secret:
        message_id, now = f"alert_{uuid.uuid4().hex}", timezone.now()
        headers |= {"webhook-id": message_id, "webhook-timestamp": str(int(now.timestamp())),
                    "webhook-signature": Webhook(secret).sign(message_id, now, body.decode())}
    return headers


def _timeouts() -> Timeouts:
    # The tenants' webhook limits: an alert receiver is held to the same manners.
    return Timeouts(connect=settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS, read=settings.WEBHOOK_READ_TIMEOUT_SECONDS,
                    total=settings.WEBHOOK_TOTAL_TIMEOUT_SECONDS)
