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


class ConflictingCredentials(exceptions.APIException):
    """Two different keys in one request: which one the caller meant is a guess we do not make."""

    status_code = 400
    default_code = "conflicting_credentials"
    default_detail = "Send one API key: `Authorization: Bearer` and `X-API-Key` hold different keys."


def presented_keys(request) -> list[str]:
    """The keys in `Authorization: Bearer` and `X-API-Key`, in that order (empty ones left out)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    bearer = value.strip() if scheme.lower() == "bearer" else ""
    return [key for key in (bearer, request.headers.get("X-API-Key", "")) if key]


def presented_key(request) -> str | None:
    keys = presented_keys(request)
    return keys[0] if keys else None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        keys = presented_keys(request)
        if len(set(keys)) > 1:
            raise ConflictingCredentials()
        plaintext = keys[0] if keys else None
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
