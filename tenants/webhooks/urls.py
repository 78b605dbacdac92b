from django.urls import path

from tenants.webhooks import apis

urlpatterns = [
    path("webhooks", apis.WebhookEndpointListApi.as_view(), name="webhooks"),
    path("webhooks/<uuid:endpoint_id>", apis.WebhookEndpointApi.as_view(), name="webhook"),
    path("webhooks/<uuid:endpoint_id>/rotate-secret", apis.WebhookSecretRotationApi.as_view(),
         name="webhook-rotate-secret"),
    path("webhooks/<uuid:endpoint_id>/test", apis.WebhookTestApi.as_view(), name="webhook-test"),
    path("webhooks/<uuid:endpoint_id>/deliveries", apis.WebhookDeliveryListApi.as_view(),
         name="webhook-deliveries"),
    path("webhooks/<uuid:endpoint_id>/deliveries/<uuid:delivery_id>", apis.WebhookDeliveryApi.as_view(),
         name="webhook-delivery"),
    path("webhooks/<uuid:endpoint_id>/deliveries/<uuid:delivery_id>/redeliver",
         apis.WebhookRedeliveryApi.as_view(), name="webhook-redeliver"),
]
