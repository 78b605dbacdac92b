"""Writes for tenants and API keys. Every change is audited in the same transaction."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from audit.services import Actor, record_event
from faceservice.errors import NotFound
from faceservice.tenancy import tenant_context
from tenants.api_keys import KEY_SCHEME, KEY_SECRET_BYTES, digest_secret, forget_cached_keys, new_prefix
from tenants.models import ApiKey, Role, Tenant


class ApiKeyNotFound(NotFound):
    """No such key of this tenant (a foreign id reads the same)."""

    default_message = "No such API key."


@dataclass(frozen=True)
class IssuedKey:
    """An API key as shown to its owner exactly once."""

    api_key: ApiKey
    plaintext: str


def validate_roles(roles: list[str]) -> list[str]:
    unknown = sorted(set(roles) - set(Role.values))
    if unknown or not roles:
        raise ValueError(f"roles must be a non-empty subset of {Role.values}; unknown: {unknown}")
    return sorted(set(roles))


@transaction.atomic
def create_tenant(*, name: str, face_retention_days: int | None = None,
                  actor: Actor) -> Tenant:
    tenant = Tenant.objects.create(name=name, face_retention_days=face_retention_days)
    with tenant_context(tenant.id):
        record_event(tenant_id=tenant.id, actor=actor, action="tenant.created",
                     target={"tenant_id": str(tenant.id)})
    return tenant


@transaction.atomic
def set_tenant_status(*, tenant: Tenant, status: str, actor: Actor) -> Tenant:
    if status not in Tenant.Status.values:
        raise ValueError(f"status must be one of {Tenant.Status.values}")
    previous = tenant.status
    tenant.status = status
    tenant.save(update_fields=["status", "updated_at"])
    forget_cached_keys()
    with tenant_context(tenant.id):
        record_event(tenant_id=tenant.id, actor=actor, action="tenant.status_changed",
                     target={"tenant_id": str(tenant.id)},
                     details={"from": previous, "to": status})
    return tenant


@transaction.atomic
def update_tenant_settings(*, tenant: Tenant, face_retention_days: int | None,
                           actor: Actor) -> Tenant:
    tenant.face_retention_days = face_retention_days
    tenant.save(update_fields=["face_retention_days", "updated_at"])
    with tenant_context(tenant.id):
        record_event(tenant_id=tenant.id, actor=actor, action="tenant.settings_changed",
                     target={"tenant_id": str(tenant.id)},
                     details={"face_retention_days": face_retention_days})
    return tenant


def create_api_key(*, tenant_id: UUID, name: str, roles: list[str],
                   expires_at: datetime | None = None, actor: Actor) -> IssuedKey:
    roles = validate_roles(roles)
    prefix = new_prefix(tenant_id)
    plaintext = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(KEY_SECRET_BYTES)}"
    with tenant_context(tenant_id):
        api_key = ApiKey.objects.create(
            tenant_id=tenant_id, name=name, prefix=prefix, digest=digest_secret(plaintext),
            roles=roles, expires_at=expires_at,
        )
        record_event(tenant_id=tenant_id, actor=actor, action="api_key.created",
                     target={"api_key_id": str(api_key.id)},
                     details={"name": name, "roles": roles})
    return IssuedKey(api_key=api_key, plaintext=plaintext)


def revoke_api_key(*, tenant_id: UUID, api_key_id: UUID, actor: Actor) -> ApiKey:
    """Revoke a key of this tenant. A foreign or unknown id raises ApiKeyNotFound."""
    with tenant_context(tenant_id):
        api_key = ApiKey.objects.select_for_update().filter(tenant_id=tenant_id, id=api_key_id).first()
        if api_key is None:
            raise ApiKeyNotFound()
        if api_key.revoked_at is None:
            api_key.revoked_at = timezone.now()
            api_key.save(update_fields=["revoked_at"])
            forget_cached_keys()
            record_event(tenant_id=tenant_id, actor=actor, action="api_key.revoked",
                         target={"api_key_id": str(api_key.id)})
    return api_key


def touch_last_used(*, api_key: ApiKey, now: datetime) -> None:
    """Record use at most once a minute, so authentication is not a write per request."""
    if api_key.last_used_at and (now - api_key.last_used_at).total_seconds() < 60:
        return
    ApiKey.objects.filter(id=api_key.id).update(last_used_at=now)
    api_key.last_used_at = now
