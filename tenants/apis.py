"""Tenant self-service: the tenant's settings and its API keys."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from faceservice.api.fields import InputSerializer
from faceservice.api.pagination import NewestFirstCursorPagination, paginate
from faceservice.api.views import TenantAPIView
from tenants import selectors, services
from tenants.models import ApiKey, Role, Tenant

ALL_ROLES = tuple(Role.values)


class TenantOutput(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = ["id", "name", "status", "face_retention_days", "created_at", "updated_at"]


class ApiKeyOutput(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "roles", "created_at", "expires_at", "revoked_at", "last_used_at"]


class IssuedApiKeyOutput(ApiKeyOutput):
    key = serializers.CharField(help_text="The API key. Shown only in this response: store it now.")

    class Meta(ApiKeyOutput.Meta):
        fields = [*ApiKeyOutput.Meta.fields, "key"]


class TenantApi(TenantAPIView):
    allowed_roles = {"GET": ALL_ROLES, "PATCH": ("admin",)}

    class UpdateInput(InputSerializer):
        face_retention_days = serializers.IntegerField(min_value=1, max_value=36500, allow_null=True)

    @extend_schema(responses=TenantOutput, summary="Read your tenant's settings")
    def get(self, request):
        """Your tenant: its name, status and face retention.

        Example: `curl -H "Authorization: Bearer $KEY" https://faces.example.com/v1/tenant`
        """
        return Response(TenantOutput(selectors.tenant_by_id(self.tenant_id)).data)

    @extend_schema(request=UpdateInput, responses=TenantOutput, summary="Change your tenant's settings")
    def patch(self, request):
        """Change how long faces are kept: `face_retention_days` (1-36500; faces older than that are
        purged daily), or `null` to keep them until you delete them.

        Example body: `{"face_retention_days": 365}`
        """
        data = self.UpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = services.update_tenant_settings(
            tenant=selectors.tenant_by_id(self.tenant_id),
            face_retention_days=data.validated_data["face_retention_days"], actor=self.actor())
        return Response(TenantOutput(tenant).data)


class ApiKeyListApi(TenantAPIView):
    allowed_roles = ("admin",)
    pagination_class = NewestFirstCursorPagination

    class CreateInput(InputSerializer):
        name = serializers.CharField(max_length=100)
        roles = serializers.ListField(child=serializers.ChoiceField(choices=Role.values),
                                      min_length=1, max_length=len(Role.values))
        expires_at = serializers.DateTimeField(required=False, allow_null=True,
                                               help_text="A future time; omit or null for no expiry")

        def validate_expires_at(self, value):
            # A key born expired would be refused at once: a typo in the year, never what was meant.
            if value is not None and value <= timezone.now():
                raise serializers.ValidationError("expires_at must be in the future.")
            return value

    @extend_schema(responses=ApiKeyOutput(many=True), summary="List your API keys")
    def get(self, request):
        """Your tenant's API keys, newest first, revoked ones included: never the secret itself,
        only its public `prefix`. A page holds `limit` keys (default 50); follow `next`."""
        return paginate(self, selectors.api_keys_of(tenant_id=self.tenant_id), ApiKeyOutput)

    @extend_schema(request=CreateInput, responses={201: IssuedApiKeyOutput},
                   summary="Create an API key (the key is shown once)")
    def post(self, request):
        """Issue a key with one or more roles (`admin`, `indexer`, `searcher`, `comparer`, `auditor`) and an
        optional expiry. The answer holds the key in `key`, shown this once: store it now.

        Example body: `{"name": "indexing worker", "roles": ["indexer"], "expires_at": "2030-01-01T00:00:00Z"}`
        """
        data = self.CreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.create_api_key(tenant_id=self.tenant_id, actor=self.actor(), **data.validated_data)
        body = {**ApiKeyOutput(issued.api_key).data, "key": issued.plaintext}
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyDetailApi(TenantAPIView):
    allowed_roles = ("admin",)

    @extend_schema(responses={204: None}, summary="Revoke an API key")
    def delete(self, request, api_key_id):
        """Revoke a key at once: it is refused from this moment in this process, and within
        `API_KEY_CACHE_SECONDS` (5 s by default) everywhere. A revoked key stays listed, with `revoked_at`."""
        services.revoke_api_key(tenant_id=self.tenant_id, api_key_id=api_key_id, actor=self.actor())
        return Response(status=status.HTTP_204_NO_CONTENT)
