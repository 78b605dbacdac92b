"""Reads of webhook endpoints and their delivery log. A missing id and another tenant's id read the same."""

from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet

from faceservice.errors import NotFound
from tenants.models import WebhookDelivery, WebhookEndpoint


class EndpointNotFound(NotFound):
    """No such endpoint of this tenant (a foreign id reads the same)."""

    default_message = "No such webhook endpoint."


class DeliveryNotFound(NotFound):
    """No such delivery of this endpoint and tenant (nor an endpoint of that id)."""

    default_message = "No such delivery."


def endpoints_of(*, tenant_id: UUID | str) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(tenant_id=tenant_id)


def endpoint_of(*, tenant_id: UUID | str, endpoint_id: UUID | str, lock: bool = False) -> WebhookEndpoint:
    """The tenant's endpoint (lock: FOR UPDATE, for a write); EndpointNotFound for a missing and a foreign id alike."""
    rows = WebhookEndpoint.objects.filter(tenant_id=tenant_id, id=endpoint_id)
    endpoint = (rows.select_for_update() if lock else rows).first()
    if endpoint is None:
        raise EndpointNotFound()
    return endpoint


def deliveries_of(*, tenant_id: UUID | str, endpoint_id: UUID | str, state: str | None = None,
                  event_type: str | None = None) -> QuerySet[WebhookDelivery]:
    endpoint = endpoint_of(tenant_id=tenant_id, endpoint_id=endpoint_id)
    deliveries = WebhookDelivery.objects.filter(tenant_id=tenant_id, endpoint=endpoint)
    if state:
        deliveries = deliveries.filter(state=state)
    if event_type:
        deliveries = deliveries.filter(event_type=event_type)
    return deliveries


def delivery_of(*, tenant_id: UUID | str, endpoint_id: UUID | str, delivery_id: UUID | str) -> WebhookDelivery:
    try:
        deliveries = deliveries_of(tenant_id=tenant_id, endpoint_id=endpoint_id)
    except EndpointNotFound:
        raise DeliveryNotFound() from None
    delivery = deliveries.prefetch_related("attempt_log").filter(id=delivery_id).first()
    if delivery is None:
        raise DeliveryNotFound()
    return delivery
