"""The platform operator's Django admin for tenants (at /staff/, TOTP required).

Tenant tables other than `tenants_tenant` are under row-level security, so the
admin reads them in platform scope. Keys and data keys are read-only here:
secrets are never shown, and changes go through the audited services.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.template.response import TemplateResponse

from audit.services import Actor
from faceservice.tenancy import platform_scope
from tenants import services
from tenants.models import ApiKey, Tenant, TenantKey


def staff_actor(request) -> Actor:
    return Actor(type="staff", id=str(request.user.pk), name=request.user.get_username(),
                 client_ip=request.META.get("REMOTE_ADDR"))


class PlatformScopedAdmin(admin.ModelAdmin):
    """Runs each admin view, template rendering included, past the tenant policies."""

    def _scoped(self, view, *args, **kwargs):
        with platform_scope():
            response = view(*args, **kwargs)
            if isinstance(response, TemplateResponse):
                response.render()  # templates query lazily: render inside the scope
            return response

    def changelist_view(self, request, extra_context=None):
        return self._scoped(super().changelist_view, request, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return self._scoped(super().changeform_view, request, object_id, form_url, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        return self._scoped(super().history_view, request, object_id, extra_context)


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "face_retention_days", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "id"]
    readonly_fields = ["id", "status", "created_at", "updated_at"]
    fields = ["id", "name", "status", "face_retention_days", "created_at", "updated_at"]
    actions = ["suspend", "reactivate"]

    def has_delete_permission(self, request, obj=None):
        return False  # a tenant's data is purged through the API (receipts, shredding), not here

    def has_add_permission(self, request):
        return False  # `manage.py create_tenant` creates the tenant and its first key together

    @admin.action(description="Suspend the selected tenants (their keys get 401)")
    def suspend(self, request, queryset):
        self._set_status(request, queryset, Tenant.Status.SUSPENDED)

    @admin.action(description="Reactivate the selected tenants")
    def reactivate(self, request, queryset):
        self._set_status(request, queryset, Tenant.Status.ACTIVE)

    def _set_status(self, request, queryset, status: str) -> None:
        for tenant in queryset:
            services.set_tenant_status(tenant=tenant, status=status, actor=staff_actor(request))
        self.message_user(request, f"{queryset.count()} tenant(s) now {status}.", messages.SUCCESS)


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyMixin, PlatformScopedAdmin):
    list_display = ["name", "tenant", "prefix", "roles", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "tenant__name"]
    exclude = ["digest"]


@admin.register(TenantKey)
class TenantKeyAdmin(ReadOnlyMixin, PlatformScopedAdmin):
    list_display = ["tenant", "version", "status", "provider", "master_key_id", "created_at", "retired_at",
                    "destroyed_at"]
    list_filter = ["status", "provider"]
    exclude = ["wrapped_key"]
