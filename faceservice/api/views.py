"""The base for every tenant API view: one transaction per request, bound to the tenant."""

from __future__ import annotations

from django.db import connection, transaction
from rest_framework import parsers
from rest_framework.views import APIView

from audit.services import record_event
from faceservice.api.authentication import presented_key
from faceservice.api.errors import OUTAGES, outage, outage_response
from faceservice.api.parsers import JSONParser
from faceservice.api.throttles import allow_all
from faceservice.tenancy import current_tenant_id, restore_tenant, tenant_context, tenant_transaction
from tenants.selectors import is_verified_recently


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


class TenantAPIView(APIView):
    """Runs the request in one transaction whose RLS tenant is the API key's tenant.

    Authentication sets `app.tenant_id` for the transaction (see
    ApiKeyAuthentication). Errors roll the transaction back (our exception
    handler calls set_rollback), so a failed request leaves nothing behind.
    """

    allowed_roles: dict[str, tuple[str, ...]] | tuple[str, ...] = ()

    def dispatch(self, request, *args, **kwargs):
        # Inside an outer transaction (tests, management code) the tenant
        # binding must not outlive the request; on its own it ends with it.
        nested = connection.in_atomic_block
        try:
            with tenant_transaction():
                outer_tenant = current_tenant_id() if nested else None
                response = super().dispatch(request, *args, **kwargs)
                if outer_tenant is not None and not transaction.get_rollback():
                    restore_tenant(outer_tenant)
        except OUTAGES as exc:
            # The database went away as the transaction opened or committed, outside
            # DRF's handler: the same retryable 503 a failure inside the view gets.
            return outage_response(outage(exc))
        refused = getattr(request, "refused_role", None)
        if refused:
            self._audit_refusal(request, refused)
        return response

    def get_parsers(self) -> list[parsers.BaseParser]:
        # Every JSON body goes through our bounded parser, even where a view names DRF's
        # own in parser_classes: one place, so no view can bring back the RecursionError 500.
        return [JSONParser() if isinstance(parser, parsers.JSONParser) else parser
                for parser in super().get_parsers()]

    def initial(self, request, *args, **kwargs):
        # Count the client address before authenticating, so that a flood of
        # bad keys is rate limited before each costs a key lookup. A key this
        # process verified a moment ago costs no lookup: its address is then
        # counted with the key, in the same round trip to Valkey.
        throttles = self.get_throttles()
        self._after_authentication = [t for t in throttles if not _before_authentication(t)]
        if is_verified_recently(presented_key(request)):
            self._after_authentication = throttles
        else:
            self._count(request, [t for t in throttles if _before_authentication(t)])
        super().initial(request, *args, **kwargs)

    def perform_authentication(self, request) -> None:
        super().perform_authentication(request)
        # Before the role check, so that refused requests (each audited) count too.
        self._count(request, self._after_authentication)

    def check_throttles(self, request) -> None:
        """Counted already: before and just after authentication (see initial)."""

    def _count(self, request, throttles: list) -> None:
        waits = allow_all(throttles, request, self)
        if waits:
            self.throttled(request, max((w for w in waits if w is not None), default=None))

    def _audit_refusal(self, request, refused: dict) -> None:
        # The request's own transaction was rolled back: record in a fresh one.
        principal = self.request.user
        with tenant_context(principal.tenant_id):
            record_event(tenant_id=principal.tenant_id, actor=self.actor(), action="api_key.role_refused",
                         target={"api_key_id": str(principal.api_key.id)}, outcome="refused",
                         details={"endpoint": request.path, **refused})

    # Helpers for subclasses ---------------------------------------------------------
    @property
    def tenant_id(self):
        return self.request.user.tenant_id

    def actor(self):
        return self.request.user.actor(client_ip=client_ip(self.request))


def _before_authentication(throttle) -> bool:
    return getattr(throttle, "before_authentication", False)
