"""Reads for tenants and API keys."""

from __future__ import annotations

import hmac
from uuid import UUID

from django.db.models import QuerySet
from django.utils import timezone

from faceservice.tenancy import platform_scope
from tenants.models import ApiKey, Tenant
from tenants.services import digest_secret, parse_key


def api_key_for_secret(plaintext: str) -> ApiKey | None:
    """The usable key matching this secret, with its tenant, or None.

    Runs in platform scope: before the key is known we do not know the tenant
    whose rows we may see. It returns only the one matching row.
    """
    prefix = parse_key(plaintext)
    if prefix is None:
        return None
    with platform_scope():
        api_key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
    if api_key is None or not hmac.compare_digest(api_key.digest, digest_secret(plaintext)):
        return None
    return api_key


def api_keys_of(*, tenant_id: UUID) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(tenant_id=tenant_id).order_by("-created_at", "id")


def tenant_by_id(tenant_id: UUID) -> Tenant:
    return Tenant.objects.get(id=tenant_id)


def usable(api_key: ApiKey) -> bool:
    return api_key.is_usable(timezone.now()) and api_key.tenant.is_active
