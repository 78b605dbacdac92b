"""The tenant's audit log API (role `auditor`): list with filters, export as CSV / JSON Lines.

Reading the log is itself audited: each list page and each export is an event.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import CursorPagination

from audit import exports, selectors
from audit.models import AuditEvent
from audit.services import record_event
from faceservice.api.views import TenantAPIView
from faceservice.errors import InvalidRequest

AUDITOR = ("auditor",)


class AuditCursorPagination(CursorPagination):
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000
    ordering = ("-seq",)  # unique within a tenant's chain: a stable cursor


class FilterInput(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="Events at or after this time.")
    until = serializers.DateTimeField(required=False, help_text="Events before this time.")
    action = serializers.CharField(required=False, max_length=64,
                                   help_text='Exact action, or a prefix ending in "*" (e.g. "key.*").')
    actor_id = serializers.CharField(required=False, max_length=64,
                                     help_text="API key id (or staff user id) that acted.")
    actor_type = serializers.ChoiceField(required=False,
                                         choices=["api_key", "staff", "system", "operator"])
    outcome = serializers.CharField(required=False, max_length=16)
    target_id = serializers.RegexField(selectors.TARGET_ID, required=False,
                                       help_text="A job, asset, face, subject, key or webhook id.")
    receipt_id = serializers.UUIDField(required=False, help_text="The receipt of a deletion.")

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": "must be after since"})
        return attrs

    def filters(self) -> selectors.EventFilters:
        return selectors.EventFilters(**self.validated_data)


class AuditEventOutput(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = list(exports.EXPORT_FIELDS)


class AuditEventPage(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="The next (older) page, or null.")
    previous = serializers.URLField(allow_null=True, help_text="The previous (newer) page, or null.")
    results = AuditEventOutput(many=True)


PAGE_PARAMETERS = [
    OpenApiParameter("cursor", OpenApiTypes.STR, description="Opaque cursor from `next` / `previous`."),
    OpenApiParameter("limit", OpenApiTypes.INT, description="Events per page (default 100, at most 1000)."),
]


class FirstRendererNegotiation(BaseContentNegotiation):
    """Exports ignore Accept: the body is CSV or JSON Lines by URL, errors are JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None


def _parse_filters(request) -> selectors.EventFilters:
    data = FilterInput(data=request.query_params)
    data.is_valid(raise_exception=True)
    return data.filters()


class AuditEventListApi(TenantAPIView):
    allowed_roles = AUDITOR

    @extend_schema(operation_id="audit_events_list", parameters=[FilterInput, *PAGE_PARAMETERS],
                   responses=AuditEventPage,
                   summary="List your tenant's audit events (newest first, cursor-paginated)")
    def get(self, request):
        filters = _parse_filters(request)
        paginator = AuditCursorPagination()
        page = paginator.paginate_queryset(
            selectors.tenant_events(tenant_id=self.tenant_id, filters=filters), request, view=self)
        record_event(tenant_id=self.tenant_id, actor=self.actor(), action="audit.listed",
                     details={"filters": filters.as_details(), "count": len(page)})
        return paginator.get_paginated_response(AuditEventOutput(page, many=True).data)


class AuditEventExportApi(TenantAPIView):
    allowed_roles = AUDITOR
    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        operation_id="audit_events_export",
        parameters=[FilterInput, OpenApiParameter("file_format", OpenApiTypes.STR, OpenApiParameter.PATH,
                                                  enum=list(exports.FORMATS))],
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV, one event a row"),
                   (200, "application/jsonl"): OpenApiResponse(OpenApiTypes.STR,
                                                               description="One JSON event per line")},
        summary="Export your tenant's audit events as CSV or JSON Lines (streamed)")
    def get(self, request, file_format: str):
        if file_format not in exports.FORMATS:
            raise InvalidRequest("Unknown export format.")
        filters = _parse_filters(request)
        # The export event commits with this request's transaction, before the
        # body streams: an export is recorded even if the download is cut short.
        record_event(tenant_id=self.tenant_id, actor=self.actor(), action="audit.exported",
                     details={"format": file_format, "filters": filters.as_details()})
        return exports.tenant_export(tenant_id=self.tenant_id, filters=filters, fmt=file_format)
