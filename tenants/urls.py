from django.urls import include, path

from tenants import apis

urlpatterns = [
    path("tenant", apis.TenantApi.as_view(), name="tenant"),
    path("api-keys", apis.ApiKeyListApi.as_view(), name="api-keys"),
    path("api-keys/<uuid:api_key_id>", apis.ApiKeyDetailApi.as_view(), name="api-key-detail"),
    path("", include("tenants.webhooks.urls")),
]
