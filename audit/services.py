"""Writing audit events: in the caller's transaction, chained per tenant.

`record_event` is the one way in. It runs inside the caller's transaction (so an
action and its event commit or roll back together) and appends to the tenant's
hash chain: each event carries the SHA-256 of the previous one, and the chain
head row is locked until the caller commits, so a chain is strictly linear.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditChainHead, AuditEvent, chain_of
from faceservice.request_id import current_request_id
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

    @classmethod
    def staff(cls, user: Any, *, roles: tuple[str, ...] = ("auditor",),
              client_ip: str | None = None) -> Actor:
        """A platform staff member signed in to the console (a Django user)."""
        return cls(type="staff", id=str(user.pk), name=user.get_username(), roles=roles,
                   client_ip=client_ip)


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


def stored_values(event: AuditEvent) -> dict[str, Any]:
    """The hashed fields of a stored event, as `event_hash` expects them."""
    return {name: getattr(event, name) for name in HASHED_FIELDS}


def _json_safe(value: dict[str, Any] | None) -> dict[str, Any]:
    # What is hashed must be exactly what jsonb gives back later: UUIDs and
    # datetimes become strings, tuples lists, before hashing and storing.
    return _jsonb_numbers(json.loads(json.dumps(value or {}, default=str, allow_nan=False)))


def _jsonb_numbers(value: Any) -> Any:
    # jsonb keeps numbers as numeric: 1e+20 comes back as the integer 10**20.
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1e16:
        return int(value)
    if isinstance(value, dict):
        return {key: _jsonb_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonb_numbers(item) for item in value]
    return value


def _canonical_ip(value: str | None) -> str | None:
    # PostgreSQL's inet prints addresses in canonical form; hash that form.
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def record_event(*, tenant_id: UUID | str | None, actor: Actor, action: str,
                 target: dict[str, Any] | None = None, outcome: str = "success",
                 details: dict[str, Any] | None = None,
                 receipt_id: UUID | None = None) -> AuditEvent:
    """Append one event to the tenant's chain, inside the caller's transaction.

    The chain head row is locked until the caller commits, so events of one
    tenant are appended one after another; call this late in a transaction.
    `tenant_id=None` appends to the platform chain (staff and operator events).
    """
    request_id = current_request_id()
    return append_event(
        tenant_id=tenant_id, occurred_at=timezone.now(),
        values={
            "actor_type": actor.type, "actor_id": actor.id, "actor_name": actor.name,
            "role": ",".join(actor.roles), "action": action, "target": _json_safe(target),
            "outcome": outcome, "details": _json_safe(details),
            "request_id": request_id if request_id != "-" else "",
            "client_ip": _canonical_ip(actor.client_ip), "receipt_id": str(receipt_id) if receipt_id else None,
        })


def append_event(*, tenant_id: UUID | str | None, occurred_at: datetime,
                 values: dict[str, Any]) -> AuditEvent:
    """Link and insert one event. Callers other than record_event: tests and imports only."""
    chain = chain_of(tenant_id)
    row = {**values, "chain": chain, "occurred_at": occurred_at,
           "tenant_id": str(tenant_id) if tenant_id else None}
    head = _lock_visible_head(chain) if tenant_id else None
    if head is None:
        return _append_in_platform_scope(chain, row)
    return _link_and_insert(row, head)


def _lock_visible_head(chain: str) -> tuple[int, str] | None:
    # The fast path, one round trip: in a transaction bound to the tenant (a
    # request, a job) its chain head is visible under row-level security.
    # None when it is not (another binding, or a chain's first event).
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq, hash FROM audit_chainhead WHERE chain = %s FOR UPDATE", [chain])
        return cursor.fetchone()


def _append_in_platform_scope(chain: str, row: dict[str, Any]) -> AuditEvent:
    with transaction.atomic(), platform_scope():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(
            chain=chain, defaults={"tenant_id": row["tenant_id"], "seq": 0, "hash": GENESIS_HASH})
        return _link_and_insert(row, (head.seq, head.hash))


_EVENT_COLUMNS = ("tenant_id", "chain", "seq", "occurred_at", "actor_type", "actor_id", "actor_name", "role",
                  "action", "target", "outcome", "details", "request_id", "client_ip", "receipt_id",
                  "prev_hash", "hash")
_JSON_COLUMNS = {"target", "details"}
# The event and the new chain head in one statement (one round trip). Only our
# own column names are formatted in; every value is a parameter.
_COLUMN_LIST = ", ".join(_EVENT_COLUMNS)
_PLACEHOLDERS = ", ".join("%s::jsonb" if c in _JSON_COLUMNS else "%s" for c in _EVENT_COLUMNS)
_INSERT_AND_ADVANCE = (
    f"WITH event AS (INSERT INTO audit_event ({_COLUMN_LIST}) VALUES ({_PLACEHOLDERS}) RETURNING id) "  # noqa: S608
    "UPDATE audit_chainhead SET seq = %s, hash = %s WHERE chain = %s RETURNING (SELECT id FROM event)"
)


def _link_and_insert(row: dict[str, Any], head: tuple[int, str]) -> AuditEvent:
    """Insert the event after `head` (locked by the caller) and advance the head."""
    seq, prev_hash = head
    row = {**row, "seq": seq + 1, "prev_hash": prev_hash}
    row["hash"] = event_hash(row)
    params = [json.dumps(row[c]) if c in _JSON_COLUMNS else row[c] for c in _EVENT_COLUMNS]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_AND_ADVANCE, [*params, row["seq"], row["hash"], row["chain"]])
        (event_id,) = cursor.fetchone()
    event = AuditEvent(id=event_id, **row)
    event._state.adding = False
    event._state.db = connection.alias
    return event
