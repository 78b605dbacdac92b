"""Reads of the audit log, for the tenant API and the staff console."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from uuid import UUID

from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL

from audit.models import PLATFORM_CHAIN, AuditAnchor, AuditChainHead, AuditEvent, AuditVerification, chain_of

# Ids are ours (UUIDs) or the tenant's own (asset and subject ids): plain tokens.
TARGET_ID = re.compile(r"^[A-Za-z0-9._:@/+-]{1,200}$")


@dataclass(frozen=True)
class EventFilters:
    since: datetime | None = None
    until: datetime | None = None
    action: str = ""  # exact, or a prefix ending in "*" / "." ("key.*", "key.")
    actor_id: str = ""
    actor_type: str = ""
    outcome: str = ""
    target_id: str = ""
    receipt_id: UUID | None = None
    has_receipt: bool = False
    chain: str = ""  # console only ("platform" or a tenant id): the API is always one tenant
    text: str = ""  # console only: free-text search

    def as_details(self) -> dict:
        """The filters in use, for the audit event of a read or an export."""
        return {k: str(v) for k, v in asdict(self).items() if v not in (None, "", False)}


def tenant_events(*, tenant_id: UUID, filters: EventFilters) -> QuerySet[AuditEvent]:
    """One tenant's events, newest first. RLS binds this too; the filter says it plainly."""
    events = AuditEvent.objects.filter(chain=chain_of(tenant_id), tenant_id=tenant_id)
    return apply_filters(events, filters).order_by("-seq")


def all_events(*, filters: EventFilters) -> QuerySet[AuditEvent]:
    """Events of every tenant and the platform. Call inside platform_scope()."""
    events = AuditEvent.objects.all()
    if filters.chain:
        events = events.filter(chain=filters.chain)
    return apply_filters(events, filters).order_by("-id")


def apply_filters(events: QuerySet[AuditEvent], filters: EventFilters) -> QuerySet[AuditEvent]:
    if filters.since:
        events = events.filter(occurred_at__gte=filters.since)
    if filters.until:
        events = events.filter(occurred_at__lt=filters.until)
    if filters.action:
        events = _by_action(events, filters.action)
    for name in ("actor_id", "actor_type", "outcome"):
        if getattr(filters, name):
            events = events.filter(**{name: getattr(filters, name)})
    if filters.target_id:
        events = events.filter(_target_contains(filters.target_id))
    if filters.receipt_id:
        events = events.filter(receipt_id=filters.receipt_id)
    elif filters.has_receipt:
        events = events.filter(receipt_id__isnull=False)
    if filters.text:
        events = events.filter(_text_search(filters.text))
    return events


def _by_action(events: QuerySet[AuditEvent], action: str) -> QuerySet[AuditEvent]:
    if action.endswith("*"):
        return events.filter(action__startswith=action[:-1])
    if action.endswith("."):
        return events.filter(action__startswith=action)
    return events.filter(action=action)


def _target_contains(target_id: str) -> RawSQL:
    """Any value in `target` (or in a list under it) equal to the id: GIN-indexed jsonpath."""
    if not TARGET_ID.match(target_id):
        raise ValueError("target_id may hold letters, digits and ._:@/+- only")
    path = f"$.* == {json.dumps(target_id)}"
    return RawSQL("target @@ %s::jsonpath", [path], output_field=BooleanField())


def _text_search(text: str) -> Q:
    text = text.strip()[:200]
    query = (Q(action__icontains=text) | Q(actor_name__icontains=text) | Q(actor_id=text)
             | Q(request_id=text) | Q(outcome=text))
    if TARGET_ID.match(text):
        query |= Q(_target_contains(text))
    with contextlib.suppress(ValueError):
        query |= Q(receipt_id=UUID(text)) | Q(tenant_id=UUID(text))
    return query


def chain_overview(*, after: str = "", limit: int = 50) -> tuple[list[dict], str]:
    """One page of chains: head, last anchor, last verification; and the chain to continue after.

    Keyset pages in chain order (tenant ids), the platform chain first on the
    first page. Call inside platform_scope().
    """
    heads = list(AuditChainHead.objects.exclude(chain=PLATFORM_CHAIN).filter(chain__gt=after)
                 .order_by("chain")[: limit + 1])
    more, heads = len(heads) > limit, heads[:limit]
    if not after:
        heads = [*AuditChainHead.objects.filter(chain=PLATFORM_CHAIN), *heads]
    chains = [head.chain for head in heads]
    anchors = {a.chain: a for a in AuditAnchor.objects.filter(chain__in=chains).order_by("chain", "-seq")
               .distinct("chain")}
    verifications = {v.chain: v for v in AuditVerification.objects.filter(chain__in=chains)}
    rows = [{"head": head, "anchor": anchors.get(head.chain), "verification": verifications.get(head.chain)}
            for head in heads]
    return rows, heads[-1].chain if more else ""
