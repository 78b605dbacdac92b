"""Per-tenant data keys: create, unwrap (cached), rotate, shred.

The KMS provider wraps each tenant's AES-256 data key under the operator's
master key with an encryption context naming the tenant, so a wrapped key
copied to another tenant's row will not unwrap. Plaintext keys live only in
this process's bounded cache (tenants.kms.DataKeyCache).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import Actor, record_event
from faceservice.tenancy import tenant_context
from tenants.kms import DataKeyCache, KmsProvider, get_provider
from tenants.models import Tenant, TenantKey


class NoDataKey(Exception):
    """The tenant has no usable data key for that version (never made, or shredded)."""


@dataclass(frozen=True)
class DataKeyRef:
    version: int
    key: bytes  # plaintext: memory only

    def __repr__(self) -> str:
        return f"DataKeyRef(version={self.version}, key=<redacted>)"

    def __reduce__(self):
        raise TypeError("DataKeyRef holds a plaintext key and must not be pickled")


@functools.cache
def kms_provider() -> KmsProvider:
    if settings.KMS_PROVIDER == "aws":
        return get_provider("aws", key_id=settings.KMS_KEY_ID)
    return get_provider("local", path=settings.LOCAL_KMS_KEY_FILE)


@functools.cache
def key_cache() -> DataKeyCache:
    return DataKeyCache(settings.DATA_KEY_CACHE_TTL_SECONDS, settings.DATA_KEY_CACHE_MAX_ENTRIES)


def encryption_context(tenant_id: UUID | str, version: int) -> dict[str, str]:
    return {"tenant_id": str(tenant_id), "key_version": str(version), "purpose": "face-data"}


def _unwrap(row: TenantKey) -> bytes:
    if row.wrapped_key is None or row.status == TenantKey.Status.DESTROYED:
        raise NoDataKey(f"data key v{row.version} of this tenant was destroyed")
    provider = kms_provider()
    return provider.decrypt_data_key(wrapped=bytes(row.wrapped_key),
                                     context=encryption_context(row.tenant_id, row.version),
                                     master_key_id=row.master_key_id)


def data_key(*, tenant_id: UUID | str, version: int) -> bytes:
    """The plaintext data key of one version (from the cache when warm)."""

    def load() -> bytes:
        with tenant_context(tenant_id):
            row = TenantKey.objects.filter(tenant_id=tenant_id, version=version).first()
        if row is None:
            raise NoDataKey(f"this tenant has no data key v{version}")
        return _unwrap(row)

    return key_cache().get_or_load(tenant_id, version, load)


def key_ref(*, tenant_id: UUID | str, version: int) -> DataKeyRef:
    """A version the caller read from the database (e.g. the active one, inside its own transaction)."""
    return DataKeyRef(version=version, key=data_key(tenant_id=tenant_id, version=version))


def readable_versions(*, tenant_id: UUID | str) -> list[int]:
    """Versions whose faces may exist: the active one and any still retiring."""
    with tenant_context(tenant_id):
        return list(TenantKey.objects.filter(
            tenant_id=tenant_id, status__in=[TenantKey.Status.ACTIVE, TenantKey.Status.RETIRING],
        ).order_by("-version").values_list("version", flat=True))


def _new_key_row(tenant_id: UUID | str, version: int) -> TenantKey:
    provider = kms_provider()
    generated = provider.generate_data_key(context=encryption_context(tenant_id, version))
    row = TenantKey.objects.create(
        tenant_id=tenant_id, version=version, provider=provider.name,
        master_key_id=generated.master_key_id, wrapped_key=generated.wrapped,
    )
    key_cache().put(tenant_id, version, generated.plaintext)
    return row


def active_key(*, tenant_id: UUID | str, actor: Actor | None = None) -> DataKeyRef:
    """The tenant's active data key, made on first use."""
    with tenant_context(tenant_id):
        row = TenantKey.objects.filter(tenant_id=tenant_id, status=TenantKey.Status.ACTIVE).first()
    if row is None:
        row = _create_first_key(tenant_id, actor or Actor.system("key-manager"))
    return DataKeyRef(version=row.version, key=data_key(tenant_id=tenant_id, version=row.version))


def _create_first_key(tenant_id: UUID | str, actor: Actor) -> TenantKey:
    with transaction.atomic():
        # Lock the tenant so two workers indexing at once make one key, not two.
        Tenant.objects.select_for_update().get(id=tenant_id)
        with tenant_context(tenant_id):
            row = TenantKey.objects.filter(tenant_id=tenant_id, status=TenantKey.Status.ACTIVE).first()
            if row:
                return row
            latest = TenantKey.objects.filter(tenant_id=tenant_id).order_by("-version").first()
            row = _new_key_row(tenant_id, (latest.version + 1) if latest else 1)
            record_event(tenant_id=tenant_id, actor=actor, action="key.created",
                         target={"key_version": row.version},
                         details={"provider": row.provider, "master_key_id": row.master_key_id})
    return row


def start_key_rotation(*, tenant_id: UUID | str, actor: Actor) -> TenantKey:
    """Make a new active version; the old one turns `retiring` until its faces move."""
    with transaction.atomic():
        Tenant.objects.select_for_update().get(id=tenant_id)
        with tenant_context(tenant_id):
            current = TenantKey.objects.filter(tenant_id=tenant_id, status=TenantKey.Status.ACTIVE).first()
            latest = TenantKey.objects.filter(tenant_id=tenant_id).order_by("-version").first()
            if current:
                current.status = TenantKey.Status.RETIRING
                current.save(update_fields=["status"])
            row = _new_key_row(tenant_id, (latest.version + 1) if latest else 1)
            record_event(tenant_id=tenant_id, actor=actor, action="key.rotation_started",
                         target={"key_version": row.version},
                         details={"previous_version": current.version if current else None})
    return row


def finish_retired_keys(*, tenant_id: UUID | str, in_use_versions: set[int], actor: Actor) -> list[int]:
    """Mark retiring versions that no face uses any more as retired, and drop their wrapped key."""
    finished = []
    with tenant_context(tenant_id):
        for row in TenantKey.objects.filter(tenant_id=tenant_id, status=TenantKey.Status.RETIRING):
            if row.version in in_use_versions:
                continue
            row.status, row.retired_at, row.wrapped_key = TenantKey.Status.RETIRED, timezone.now(), None
            row.save(update_fields=["status", "retired_at", "wrapped_key"])
            key_cache().invalidate(tenant_id, row.version)
            record_event(tenant_id=tenant_id, actor=actor, action="key.retired",
                         target={"key_version": row.version})
            finished.append(row.version)
    return finished


def shred_keys(*, tenant_id: UUID | str, actor: Actor) -> int:
    """Crypto-shredding: destroy every wrapped data key of the tenant."""
    with tenant_context(tenant_id):
        rows = list(TenantKey.objects.filter(tenant_id=tenant_id).exclude(status=TenantKey.Status.DESTROYED))
        for row in rows:
            row.status, row.destroyed_at, row.wrapped_key = TenantKey.Status.DESTROYED, timezone.now(), None
            row.save(update_fields=["status", "destroyed_at", "wrapped_key"])
        key_cache().invalidate(tenant_id)
        record_event(tenant_id=tenant_id, actor=actor, action="key.shredded",
                     target={"key_versions": [row.version for row in rows]})
    return len(rows)


def rewrap_all(*, destination_key_id: str, actor: Actor) -> int:
    """Re-wrap every live tenant key under a new master key; face rows are untouched.

    Resumable: rows already under the destination key are skipped, each row is
    its own transaction.
    """
    provider = kms_provider()
    count = 0
    for tenant_id in Tenant.objects.values_list("id", flat=True):
        with tenant_context(tenant_id):
            rows = TenantKey.objects.filter(tenant_id=tenant_id, wrapped_key__isnull=False).exclude(
                master_key_id=destination_key_id)
            for row in rows:
                row.wrapped_key = provider.rewrap(
                    wrapped=bytes(row.wrapped_key), context=encryption_context(tenant_id, row.version),
                    source_key_id=row.master_key_id, destination_key_id=destination_key_id)
                old = row.master_key_id
                row.master_key_id = destination_key_id
                row.save(update_fields=["wrapped_key", "master_key_id"])
                record_event(tenant_id=tenant_id, actor=actor, action="key.rewrapped",
                             target={"key_version": row.version},
                             details={"from_master_key": old, "to_master_key": destination_key_id})
                count += 1
    return count
