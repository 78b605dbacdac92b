"""Writing audit events: in the caller's transaction, chained per tenant."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from audit.models import PLATFORM_CHAIN, AuditChainHead, AuditEvent
from faceservice.api.logging import current_request_id
from faceservice.tenancy import platform_scope

GENESIS_HASH = "0" * 64
HASHED_FIELDS = ("chain", "seq", "occurred_at", "tenant_id", "actor_type", "actor_id",
                 "actor_name", "role", "action", "target", "outcome", "details",
                 "request_id", "client_ip", "receipt_id", "prev_hash")


@dataclass(frozen=True)
class Actor:
    """Who acts: an API key, a staff user, the system, or the operator's CLI."""

    type: str
    id: str = ""
    name: str = ""
    roles: tuple[str, ...] = field(default_factory=tuple)
    client_ip: str | None = None

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(type="system", name=name)

    @classmethod
    def operator(cls, name: str = "manage.py") -> Actor:
        return cls(type="operator", name=name)


def chain_of(tenant_id: UUID | str | None) -> str:
    return str(tenant_id) if tenant_id else PLATFORM_CHAIN


def event_hash(values: dict[str, Any]) -> str:
    """SHA-256 over a canonical JSON of the hashed fields (stable across restarts)."""
    canonical = {}
    for name in HASHED_FIELDS:
        value = values.get(name)
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        elif value is not None and not isinstance(value, (str, int, float, bool, dict, list)):
            value = str(value)
        canonical[name] = value
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def record_event(*, tenant_id: UUID | str | None, actor: Actor, action: str,
                 target: dict[str, Any] | None = None, outcome: str = "success",
                 details: dict[str, Any] | None = None,
                 receipt_id: UUID | None = None) -> AuditEvent:
    """Append one event to the tenant's chain, inside the caller's transaction.

    The chain head row is locked until the caller commits, so events of one
    tenant are appended one after another; call this late in a transaction.
    """
    chain = chain_of(tenant_id)
    with transaction.atomic(), platform_scope():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(
            chain=chain, defaults={"tenant_id": tenant_id, "seq": 0, "hash": GENESIS_HASH})
        values = {
            "chain": chain, "seq": head.seq + 1,
            "occurred_at": timezone.now(),
            "tenant_id": str(tenant_id) if tenant_id else None,
            "actor_type": actor.type, "actor_id": actor.id, "actor_name": actor.name,
            "role": ",".join(actor.roles), "action": action, "target": target or {},
            "outcome": outcome, "details": details or {},
            "request_id": current_request_id() if current_request_id() != "-" else "",
            "client_ip": actor.client_ip, "receipt_id": str(receipt_id) if receipt_id else None,
            "prev_hash": head.hash,
        }
        values["hash"] = event_hash(values)
        event = AuditEvent.objects.create(**values)
        head.seq, head.hash = values["seq"], values["hash"]
        head.save(update_fields=["seq", "hash"])
    return event
