"""Webhook endpoints and their delivery log over HTTP (admin only). Thin views over tenants.webhooks."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from faceservice.api.fields import InputSerializer
from faceservice.api.pagination import NewestFirstCursorPagination, paginate
from faceservice.api.views import TenantAPIView
from tenants.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from tenants.webhooks import selectors
from tenants.webhooks import services as webhooks

ROLES = ("admin",)
ERRORS = {
    400: OpenApiResponse(description="Invalid request (invalid_request, invalid_webhook)"),
    404: OpenApiResponse(description="Unknown endpoint or delivery, or another tenant's (not_found)"),
}


# --- Output ---------------------------------------------------------------------------

class EndpointOutput(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "events", "enabled", "disabled_reason", "disabled_at",
                  "consecutive_failures", "failing_since", "last_success_at", "secret_rotated_at",
                  "previous_secret_expires_at", "created_at", "updated_at"]


class EndpointWithSecretOutput(EndpointOutput):
    secret = serializers.CharField(help_text="The signing secret (whsec_...). Shown only in this response.")

    class Meta(EndpointOutput.Meta):
        fields = [*EndpointOutput.Meta.fields, "secret"]


class AttemptOutput(serializers.ModelSerializer):
    class Meta:
        model = WebhookDeliveryAttempt
        fields = ["number", "attempted_at", "status_code", "latency_ms", "succeeded", "error", "error_message"]


class DeliveryOutput(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = ["id", "event_id", "event_type", "state", "attempts", "next_attempt_at", "last_status_code",
                  "last_error", "redelivery_of", "created_at", "finished_at"]


class DeliveryDetailOutput(DeliveryOutput):
    payload = serializers.JSONField()
    attempt_log = AttemptOutput(many=True)

    class Meta(DeliveryOutput.Meta):
        fields = [*DeliveryOutput.Meta.fields, "payload", "attempt_log"]


def _delivery_url(delivery: WebhookDelivery) -> str:
    return reverse("webhook-delivery", kwargs={"endpoint_id": delivery.endpoint_id, "delivery_id": delivery.id})


def _with_secret(issued: webhooks.IssuedSecret) -> dict:
    return {**EndpointOutput(issued.endpoint).data, "secret": issued.secret}


# --- Input ------------------------------------------------------------------------------

class EndpointInput(InputSerializer):
    url = serializers.URLField(max_length=2048, help_text="https URL that receives POSTed events")
    events = serializers.ListField(child=serializers.ChoiceField(choices=webhooks.EVENT_TYPES), min_length=1)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    enabled = serializers.BooleanField(required=False, default=True)


class EndpointUpdateInput(InputSerializer):
    url = serializers.URLField(max_length=2048, required=False)
    events = serializers.ListField(child=serializers.ChoiceField(choices=webhooks.EVENT_TYPES), min_length=1,
                                   required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False, help_text="Enabling again clears the failure record")


class DeliveryFilterInput(serializers.Serializer):
    state = serializers.ChoiceField(choices=WebhookDelivery.State.choices, required=False)
    event_type = serializers.CharField(max_length=64, required=False)


# --- Views --------------------------------------------------------------------------------

class WebhookEndpointListApi(TenantAPIView):
    allowed_roles = ROLES
    pagination_class = NewestFirstCursorPagination

    @extend_schema(responses=EndpointOutput(many=True), summary="List webhook endpoints")
    def get(self, request):
        """Your webhook endpoints, newest first, with their health (failures, last success, why one was
        disabled). Never their secrets. A page holds `limit` endpoints (default 50); follow `next`."""
        return paginate(self, selectors.endpoints_of(tenant_id=self.tenant_id), EndpointOutput)

    @extend_schema(request=EndpointInput, responses={201: EndpointWithSecretOutput, 400: ERRORS[400]},
                   summary="Register a webhook endpoint (its signing secret is shown once)")
    def post(self, request):
        """Register an https URL to receive the events you name (`job.succeeded`, `job.failed`, ...), signed
        with the Standard Webhooks scheme. The answer holds the signing `secret` (`whsec_...`), shown this once.

        Example body: `{"url": "https://example.com/hooks/faces", "events": ["job.succeeded", "job.failed"]}`
        """
        data = EndpointInput(data=request.data)
        data.is_valid(raise_exception=True)
        issued = webhooks.create_endpoint(tenant_id=self.tenant_id, actor=self.actor(), **data.validated_data)
        return Response(_with_secret(issued), status=status.HTTP_201_CREATED)


class WebhookEndpointApi(TenantAPIView):
    allowed_roles = ROLES

    @extend_schema(responses={200: EndpointOutput, 404: ERRORS[404]}, summary="A webhook endpoint")
    def get(self, request, endpoint_id):
        """A webhook endpoint: its URL, the events it receives, and its health (consecutive failures, last
        success, and why it was disabled if it was). Never its secret."""
        return Response(EndpointOutput(selectors.endpoint_of(tenant_id=self.tenant_id, endpoint_id=endpoint_id)).data)

    @extend_schema(request=EndpointUpdateInput, responses={200: EndpointOutput, **ERRORS},
                   summary="Change a webhook endpoint (url, events, description, enabled)")
    def patch(self, request, endpoint_id):
        """Change an endpoint's `url`, `events`, `description`, or turn it off and on with `enabled`
        (enabling it again clears its failure record). Fields left out are kept."""
        data = EndpointUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = webhooks.update_endpoint(tenant_id=self.tenant_id, endpoint_id=endpoint_id,
                                            actor=self.actor(), **data.validated_data)
        return Response(EndpointOutput(endpoint).data)

    @extend_schema(responses={204: None, 404: ERRORS[404]}, summary="Delete a webhook endpoint")
    def delete(self, request, endpoint_id):
        """Delete an endpoint: no more events are sent to it, pending deliveries included."""
        webhooks.delete_endpoint(tenant_id=self.tenant_id, endpoint_id=endpoint_id, actor=self.actor())
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookSecretRotationApi(TenantAPIView):
    allowed_roles = ROLES

    @extend_schema(request=None, responses={200: EndpointWithSecretOutput, 404: ERRORS[404]},
                   summary="Rotate the signing secret (the old one also signs for a grace period)")
    def post(self, request, endpoint_id):
        """Issue a new signing secret (shown this once). The old one keeps signing too for a grace period,
        so your receiver can switch without losing a delivery."""
        issued = webhooks.rotate_secret(tenant_id=self.tenant_id, endpoint_id=endpoint_id, actor=self.actor())
        return Response(_with_secret(issued))


class WebhookTestApi(TenantAPIView):
    allowed_roles = ROLES

    @extend_schema(request=None, responses={202: DeliveryOutput, 404: ERRORS[404],
                                            409: OpenApiResponse(description="The endpoint is disabled")},
                   summary="Send a webhook.test event to this endpoint")
    def post(self, request, endpoint_id):
        """Send a `webhook.test` event to the endpoint now, to check your receiver and its signature check.
        `202`: the delivery is queued; follow it at `Location`."""
        delivery = webhooks.send_test_event(tenant_id=self.tenant_id, endpoint_id=endpoint_id, actor=self.actor())
        return Response(DeliveryOutput(delivery).data, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": _delivery_url(delivery)})


class WebhookDeliveryListApi(TenantAPIView):
    allowed_roles = ROLES
    pagination_class = NewestFirstCursorPagination

    @extend_schema(parameters=[DeliveryFilterInput], responses={200: DeliveryOutput(many=True), **ERRORS},
                   summary="An endpoint's deliveries, newest first (cursor pages)")
    def get(self, request, endpoint_id):
        """An endpoint's deliveries, newest first, filtered by `state` or `event_type`: each event sent, its
        attempts so far and the last answer your receiver gave. A page holds `limit` deliveries (default 50,
        at most 500); follow `next`."""
        filters = DeliveryFilterInput(data=request.query_params.dict())  # `?state=` refused, not ignored
        filters.is_valid(raise_exception=True)
        deliveries = selectors.deliveries_of(tenant_id=self.tenant_id, endpoint_id=endpoint_id,
                                             **filters.validated_data)
        return paginate(self, deliveries, DeliveryOutput)


class WebhookDeliveryApi(TenantAPIView):
    allowed_roles = ROLES

    @extend_schema(responses={200: DeliveryDetailOutput, 404: ERRORS[404]},
                   summary="One delivery with its payload and the log of every attempt")
    def get(self, request, endpoint_id, delivery_id):
        """One delivery: the payload sent, and every attempt with its time, status code and latency."""
        delivery = selectors.delivery_of(tenant_id=self.tenant_id, endpoint_id=endpoint_id, delivery_id=delivery_id)
        return Response(DeliveryDetailOutput(delivery).data)


class WebhookRedeliveryApi(TenantAPIView):
    allowed_roles = ROLES

    @extend_schema(request=None, responses={202: DeliveryOutput, 404: ERRORS[404],
                                            409: OpenApiResponse(description="The endpoint is disabled")},
                   summary="Send a delivery's event again (same webhook-id, new attempts)")
    def post(self, request, endpoint_id, delivery_id):
        """Send a delivery's event again, with the same `webhook-id` (so your receiver can drop a duplicate)
        and a fresh set of attempts. `202`: queued; follow it at `Location`."""
        again = webhooks.redeliver(tenant_id=self.tenant_id, endpoint_id=endpoint_id, delivery_id=delivery_id,
                                   actor=self.actor())
        return Response(DeliveryOutput(again).data, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": _delivery_url(again)})
