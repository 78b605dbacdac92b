from django.urls import path

from tenants import apis, webhook_apis

urlpatterns = [
    path("tenant", apis.TenantApi.as_view(), name="tenant"),
    path("api-keys", apis.ApiKeyListApi.as_view(), name="api-keys"),
    path("api-keys/<uuid:api_key_id>", apis.ApiKeyDetailApi.as_view(), name="api-key-detail"),
    path("webhooks", webhook_apis.WebhookEndpointListApi.as_view(), name="webhooks"),
    path("webhooks/<uuid:endpoint_id>", webhook_apis.WebhookEndpointApi.as_view(), name="webhook"),
    path("webhooks/<uuid:endpoint_id>/rotate-secret", webhook_apis.WebhookSecretRotationApi.as_view(),
         name="webhook-rotate-secret"),
    path("webhooks/<uuid:endpoint_id>/test", webhook_apis.WebhookTestApi.as_view(), name="webhook-test"),
    path("webhooks/<uuid:endpoint_id>/deliveries", webhook_apis.WebhookDeliveryListApi.as_view(),
         name="webhook-deliveries"),
    path("webhooks/<uuid:endpoint_id>/deliveries/<uuid:delivery_id>", webhook_apis.WebhookDeliveryApi.as_view(),
         name="webhook-delivery"),
    path("webhooks/<uuid:endpoint_id>/deliveries/<uuid:delivery_id>/redeliver",
         webhook_apis.WebhookRedeliveryApi.as_view(), name="webhook-redeliver"),
]
