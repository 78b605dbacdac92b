"""Tenant self-service: the tenant's settings and its API keys."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from faceservice.api.pagination import NewestFirstCursorPagination
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

    class UpdateInput(serializers.Serializer):
        face_retention_days = serializers.IntegerField(min_value=1, max_value=36500, allow_null=True)

    @extend_schema(responses=TenantOutput, summary="Read your tenant's settings")
    def get(self, request):
        return Response(TenantOutput(selectors.tenant_by_id(self.tenant_id)).data)

    @extend_schema(request=UpdateInput, responses=TenantOutput, summary="Change your tenant's settings")
    def patch(self, request):
        data = self.UpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = services.update_tenant_settings(
            tenant=selectors.tenant_by_id(self.tenant_id),
            face_retention_days=data.validated_data["face_retention_days"], actor=self.actor())
        return Response(TenantOutput(tenant).data)


class ApiKeyListApi(TenantAPIView):
    allowed_roles = ("admin",)

    class CreateInput(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        roles = serializers.ListField(child=serializers.ChoiceField(choices=Role.values),
                                      min_length=1, max_length=len(Role.values))
        expires_at = serializers.DateTimeField(required=False, allow_null=True)

    @extend_schema(responses=ApiKeyOutput(many=True), summary="List your API keys")
    def get(self, request):
        paginator = NewestFirstCursorPagination()
        keys = selectors.api_keys_of(tenant_id=self.tenant_id)
        page = paginator.paginate_queryset(keys, request, view=self)
        return paginator.get_paginated_response(ApiKeyOutput(page, many=True).data)

    @extend_schema(request=CreateInput, responses={201: IssuedApiKeyOutput},
                   summary="Create an API key (the key is shown once)")
    def post(self, request):
        data = self.CreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.create_api_key(tenant_id=self.tenant_id, actor=self.actor(), **data.validated_data)
        body = {**ApiKeyOutput(issued.api_key).data, "key": issued.plaintext}
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyDetailApi(TenantAPIView):
    allowed_roles = ("admin",)

    @extend_schema(responses=ApiKeyOutput, summary="Revoke an API key")
    def delete(self, request, api_key_id):
        api_key = services.revoke_api_key(tenant_id=self.tenant_id, api_key_id=api_key_id, actor=self.actor())
        return Response(ApiKeyOutput(api_key).data)
