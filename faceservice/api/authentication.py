"""API key authentication: `Authorization: Bearer fsk_...` (or `X-API-Key`)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from audit.services import Actor
from faceservice.tenancy import set_tenant_for_transaction
from tenants.models import ApiKey
from tenants.selectors import api_key_for_secret, usable
from tenants.services import touch_last_used


@dataclass(frozen=True)
class TenantPrincipal:
    """request.user for API calls: the key, its tenant and roles."""

    api_key: ApiKey

    is_authenticated = True
    is_anonymous = False

    @property
    def tenant_id(self) -> UUID:
        return self.api_key.tenant_id

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(self.api_key.roles)

    def actor(self, client_ip: str | None = None) -> Actor:
        return Actor(type="api_key", id=str(self.api_key.id), name=self.api_key.name,
                     roles=tuple(sorted(self.roles)), client_ip=client_ip)


def presented_key(request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-API-Key") or None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        plaintext = presented_key(request)
        if plaintext is None:
            return None
        api_key = api_key_for_secret(plaintext)
        if api_key is None or not usable(api_key):
            # One answer for unknown, revoked, expired and suspended: no oracle.
            raise exceptions.AuthenticationFailed(
                "The API key is not valid, or it was revoked or has expired.")
        set_tenant_for_transaction(api_key.tenant_id)
        touch_last_used(api_key=api_key, now=timezone.now())
        request._request.tenant_id = str(api_key.tenant_id)
        request._request.api_key_id = api_key.id
        return TenantPrincipal(api_key), api_key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="faceservice"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "faceservice.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "fsk_<prefix>_<secret>",
                "description": "A tenant API key, shown once when it is created."}
