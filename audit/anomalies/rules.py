"""The anomaly rules: each reads a window of the audit log (and the refusal counters) and
returns what crosses its threshold. Reads only; call inside platform_scope().

    refused_by_key            403 (`api_key.role_refused`) + 429 of one API key    tenant chain
    refused_by_address        401 + 403 + 429 from one client address              platform chain
    key_many_addresses        distinct client addresses of one API key             tenant chain
    search_volume             a tenant's searches against its own median           tenant chain
    export_volume             a tenant's audit exports against its own median      tenant chain
    bulk_deletion             a tenant's deletion requests, faces deleted          tenant chain
    console_failures_user     failed console sign-ins of one user                  platform chain
    console_failures_address  failed console sign-ins from one address             platform chain
    console_lockout           any console lock-out (a user name from an address)   platform chain

Thresholds and windows are settings (faceservice/settings/anomalies.py).
"""

from __future__ import annotations

import logging
import statistics
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.contrib.postgres.aggregates import ArrayAgg
from django.db import connection
from django.db.models import Count, IntegerField, Q, QuerySet, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce

from audit.anomalies import refusals
from audit.models import AuditEvent
from tenants.models import ApiKey

logger = logging.getLogger(__name__)

SEARCH_ACTIONS = ("faces.searched", "faces.compared", "subjects.searched", "subject.verified")
EXPORT_ACTIONS = ("audit.exported",)
DELETION_ACTIONS = ("faces.deleted", "faces.purged")
ADDRESSES_SHOWN = 10  # a sample in the event and the alert; the count says how many


@dataclass(frozen=True)
class Anomaly:
    """One threshold crossed: by whom (`subject`), how much, against what."""

    rule: str
    subject: dict[str, str]
    count: int
    threshold: float
    window_seconds: int
    tenant_id: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """The same rule about the same subject: raised once per cooldown."""
        parts = [self.rule, self.tenant_id or "platform", *(f"{k}={v}" for k, v in sorted(self.subject.items()))]
        return "|".join(parts)

    def summary(self) -> str:
        about = ", ".join(f"{k} {v}" for k, v in sorted(self.subject.items()))
        return (f"{self.rule}: {about}: {self.count} in {self.window_seconds} s "
                f"(threshold {self.threshold:g})")


def _since(now: datetime, seconds: int) -> datetime:
    return now - timedelta(seconds=seconds)


def _events(actions: tuple[str, ...] | str, since: datetime, now: datetime) -> QuerySet[AuditEvent]:
    actions = (actions,) if isinstance(actions, str) else actions
    return AuditEvent.objects.filter(action__in=actions, occurred_at__gte=since, occurred_at__lte=now).order_by()


# --- Refused requests -------------------------------------------------------------------

def refused_requests(now: datetime) -> list[Anomaly]:
    """403s from the audit log, 401s and 429s from the Valkey counters (see refusals.py)."""
    window = settings.ANOMALY_BURST_WINDOW_SECONDS
    since = _since(now, window)
    refused = _events("api_key.role_refused", since, now)
    rows = refused.values("actor_id", "tenant_id").annotate(n=Count("id"))
    by_key = Counter({row["actor_id"]: row["n"] for row in rows})
    known = {row["actor_id"]: str(row["tenant_id"]) for row in rows}
    by_address = Counter({row["client_ip"]: row["n"] for row in refused.exclude(client_ip=None)
                          .values("client_ip").annotate(n=Count("id"))})
    counted = _counted_refusals(since, now)
    return [*_over(by_key + counted.by_key, settings.ANOMALY_REFUSED_PER_KEY, "refused_by_key", "api_key_id",
                   window, tenants=lambda keys: known | _tenants_of_keys([k for k in keys if k not in known])),
            *_over(by_address + counted.by_address, settings.ANOMALY_REFUSED_PER_ADDRESS, "refused_by_address",
                   "address", window)]


def _counted_refusals(since: datetime, now: datetime) -> refusals.RefusalCounts:
    try:
        return refusals.counts_since(since=since.timestamp(), until=now.timestamp())
    except redis.RedisError:
        # The audit log's 403s still count; a lost Valkey must not stop the other rules.
        logger.warning("anomaly detection: refusal counters unreadable, 401 and 429 not counted this run")
        return refusals.RefusalCounts(Counter(), Counter())


def _tenants_of_keys(key_ids: list[str]) -> dict[str, str]:
    # Keys with only 429s (counted in Valkey, no audit row): their tenant from the key.
    valid = [k for k in key_ids if _is_uuid(k)]
    if not valid:
        return {}
    return {str(k): str(t) for k, t in ApiKey.objects.filter(id__in=valid).values_list("id", "tenant_id")}


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _over(counts: Counter, threshold: int, rule: str, subject_name: str, window: int, *,
          tenants: Callable[[list[str]], dict[str, str]] | None = None) -> list[Anomaly]:
    found = {subject: n for subject, n in counts.items() if subject and n >= threshold}
    tenant_of = tenants(list(found)) if tenants and found else {}
    return [Anomaly(rule=rule, subject={subject_name: str(subject)}, count=n, threshold=threshold,
                    window_seconds=window, tenant_id=tenant_of.get(str(subject)))
            for subject, n in sorted(found.items())]


# --- One key, many addresses ------------------------------------------------------------------

def key_many_addresses(now: datetime) -> list[Anomaly]:
    window, limit = settings.ANOMALY_WINDOW_SECONDS, settings.ANOMALY_KEY_MAX_ADDRESSES
    rows = (AuditEvent.objects.filter(actor_type="api_key", occurred_at__gte=_since(now, window),
                                      occurred_at__lte=now).exclude(client_ip=None).order_by()
            .values("tenant_id", "actor_id")
            .annotate(n=Count("client_ip", distinct=True), addresses=ArrayAgg("client_ip", distinct=True))
            .filter(n__gt=limit))
    return [Anomaly(rule="key_many_addresses", subject={"api_key_id": row["actor_id"]}, count=row["n"],
                    threshold=limit, window_seconds=window, tenant_id=str(row["tenant_id"]),
                    facts={"addresses": sorted(row["addresses"])[:ADDRESSES_SHOWN]})
            for row in rows]


# --- Volume against the tenant's own baseline -------------------------------------------------

def search_volume(now: datetime) -> list[Anomaly]:
    return _volume("search_volume", SEARCH_ACTIONS, settings.ANOMALY_VOLUME_MIN_SEARCHES, now)


def export_volume(now: datetime) -> list[Anomaly]:
    return _volume("export_volume", EXPORT_ACTIONS, settings.ANOMALY_VOLUME_MIN_EXPORTS, now)


def _volume(rule: str, actions: tuple[str, ...], minimum: int, now: datetime) -> list[Anomaly]:
    """This window's count against factor x the median of the same-sized windows before it.

    Only tenants already over the minimum have their baseline read, so a run
    costs one scan of the window plus an index range per busy tenant.
    """
    window, factor = settings.ANOMALY_WINDOW_SECONDS, settings.ANOMALY_VOLUME_FACTOR
    start = _since(now, window)
    current = (_events(actions, start, now).exclude(tenant_id=None).values("tenant_id")
               .annotate(n=Count("id")).filter(n__gte=minimum))
    found = []
    for row in current:
        median = baseline_median(tenant_id=row["tenant_id"], actions=actions, before=start, window=window)
        threshold = max(minimum, factor * median)
        if row["n"] >= threshold:
            found.append(Anomaly(rule=rule, subject={"tenant_id": str(row["tenant_id"])}, count=row["n"],
                                 threshold=threshold, window_seconds=window, tenant_id=str(row["tenant_id"]),
                                 facts={"baseline_median": median, "factor": factor}))
    return found


BASELINE_SQL = """
    SELECT floor(extract(epoch FROM (%(before)s - occurred_at)) / %(window)s)::int AS bucket, count(*)
    FROM audit_event
    WHERE tenant_id = %(tenant_id)s AND action = ANY(%(actions)s)
      AND occurred_at >= %(since)s AND occurred_at < %(before)s
    GROUP BY bucket
"""


def baseline_median(*, tenant_id: Any, actions: tuple[str, ...], before: datetime, window: int) -> float:
    """Median count per window over the trailing ANOMALY_VOLUME_BASELINE_DAYS; quiet windows count as 0."""
    buckets = max(1, settings.ANOMALY_VOLUME_BASELINE_DAYS * 86400 // window)
    params = {"tenant_id": tenant_id, "actions": list(actions), "before": before, "window": window,
              "since": before - timedelta(seconds=window * buckets)}
    with connection.cursor() as cursor:
        cursor.execute(BASELINE_SQL, params)
        counts = dict(cursor.fetchall())
    return float(statistics.median(counts.get(i, 0) for i in range(buckets)))


# --- Deletions in bulk ------------------------------------------------------------------------

def bulk_deletion(now: datetime) -> list[Anomaly]:
    window = settings.ANOMALY_WINDOW_SECONDS
    max_faces, max_requests = settings.ANOMALY_BULK_DELETE_FACES, settings.ANOMALY_BULK_DELETE_REQUESTS
    faces = Coalesce(Cast(KT("details__faces_deleted"), IntegerField()), 0)
    rows = (_events(DELETION_ACTIONS, _since(now, window), now).exclude(tenant_id=None).values("tenant_id")
            .annotate(requests=Count("id"), faces=Sum(faces))
            .filter(Q(requests__gte=max_requests) | Q(faces__gte=max_faces)))
    return [Anomaly(rule="bulk_deletion", subject={"tenant_id": str(row["tenant_id"])}, count=row["faces"],
                    threshold=max_faces, window_seconds=window, tenant_id=str(row["tenant_id"]),
                    facts={"requests": row["requests"], "requests_threshold": max_requests})
            for row in rows]


# --- Console sign-ins -------------------------------------------------------------------------

def console_sign_ins(now: datetime) -> list[Anomaly]:
    window, limit = settings.ANOMALY_WINDOW_SECONDS, settings.ANOMALY_CONSOLE_FAILURES
    since = _since(now, window)
    failed = _events("console.login_failed", since, now)
    # Known users by id (their name is in the event); an unknown name is never written down.
    by_user = Counter({(row["actor_id"], row["actor_name"]): row["n"] for row in
                       failed.exclude(actor_id="").values("actor_id", "actor_name").annotate(n=Count("id"))})
    by_address = Counter({row["client_ip"]: row["n"] for row in
                          failed.exclude(client_ip=None).values("client_ip").annotate(n=Count("id"))})
    found = [Anomaly(rule="console_failures_user", subject={"user_id": user_id, "username": name}, count=n,
                     threshold=limit, window_seconds=window)
             for (user_id, name), n in sorted(by_user.items()) if n >= limit]
    found += _over(by_address, limit, "console_failures_address", "address", window)
    return found + _lockouts(since, now, window)


def _lockouts(since: datetime, now: datetime, window: int) -> list[Anomaly]:
    rows = (_events("console.locked_out", since, now).values("actor_name", "client_ip")
            .annotate(n=Count("id")))
    return [Anomaly(rule="console_lockout", subject={"username": row["actor_name"],
                                                     "address": row["client_ip"] or "unknown"},
                    count=row["n"], threshold=1, window_seconds=window)
            for row in rows]


RULES: tuple[Callable[[datetime], list[Anomaly]], ...] = (
    refused_requests, key_many_addresses, search_volume, export_volume, bulk_deletion, console_sign_ins,
)
