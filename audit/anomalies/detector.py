"""The periodic anomaly run: evaluate the rules, raise what was not raised recently.

Each anomaly raised is an `anomaly.detected` audit event (on its tenant's chain,
or the platform chain), a metric and an operator alert. The audit log is also
the memory of what was raised: a rule about the same subject (its fingerprint)
is not raised again while an event for it is younger than the cooldown, so
overlapping windows of consecutive runs raise an attack once, and a still
running one again after the cooldown.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from audit.anomalies import alerts
from audit.anomalies.rules import RULES, Anomaly
from audit.models import AuditEvent
from audit.services import Actor, record_event
from faceservice.tenancy import platform_scope, tenant_context

logger = logging.getLogger(__name__)

ACTION = "anomaly.detected"
DETECTOR = Actor.system("anomaly-detector")


@dataclass(frozen=True)
class Raised:
    anomaly: Anomaly
    event: AuditEvent


def detect(*, now: datetime) -> list[Raised]:
    """One run: every rule over its window ending at `now`; returns what was raised."""
    with transaction.atomic(), platform_scope():
        found = [anomaly for rule in RULES for anomaly in rule(now)]
        recent = raised_recently(now=now, seconds=_lookback(found))
    raised = []
    for anomaly in found:
        if anomaly.fingerprint in recent:
            continue
        recent.add(anomaly.fingerprint)
        raised.append(Raised(anomaly, _record(anomaly)))
    for item in raised:
        logger.warning("anomalous access: %s", item.anomaly.summary(),
                       extra={"rule": item.anomaly.rule, "audit_event_id": item.event.id})
        alerts.count_in_metrics(item.anomaly)
        alerts.notify_operator(item.anomaly, item.event)
    return raised


def _lookback(found: list[Anomaly]) -> int:
    # At least each rule's own window, so a window longer than the cooldown
    # cannot see the same events (and raise the same anomaly) twice.
    return max([settings.ANOMALY_COOLDOWN_SECONDS, *(a.window_seconds for a in found)])


def raised_recently(*, now: datetime, seconds: int) -> set[str]:
    """Fingerprints of the anomalies raised in the last `seconds`. Call inside platform_scope()."""
    events = AuditEvent.objects.filter(action=ACTION, occurred_at__gte=now - timedelta(seconds=seconds)).order_by()
    return {fingerprint for fingerprint in events.values_list("details__fingerprint", flat=True) if fingerprint}


def _record(anomaly: Anomaly) -> AuditEvent:
    """The event, committed on its own: one failure does not lose the others."""
    details = {"rule": anomaly.rule, "fingerprint": anomaly.fingerprint, "count": anomaly.count,
               "threshold": anomaly.threshold, "window_seconds": anomaly.window_seconds, **anomaly.facts}
    # A tenant's anomaly goes on its chain, where its own auditors see it too.
    scope = tenant_context(anomaly.tenant_id) if anomaly.tenant_id else nullcontext()
    with transaction.atomic(), scope:
        return record_event(tenant_id=anomaly.tenant_id, actor=DETECTOR, action=ACTION,
                            target=anomaly.subject, details=details)
