"""The tenant's audit log API (role `auditor`): list with filters, export as CSV / JSON Lines.

Reading the log is itself audited: each list page and each export is an event.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation

from audit import exports, selectors
from audit.models import AuditEvent
from audit.services import record_event
from faceservice.api.pagination import AuditCursorPagination
from faceservice.api.views import TenantAPIView
from faceservice.errors import InvalidRequest

AUDITOR = ("auditor",)


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


class FirstRendererNegotiation(BaseContentNegotiation):
    """Exports ignore Accept: the body is CSV or JSON Lines by URL, errors are JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None


def _parse_filters(request) -> selectors.EventFilters:
    # A plain dict: in a QueryDict DRF reads `?until=` as "not given"; an empty filter is refused.
    data = FilterInput(data=request.query_params.dict())
    data.is_valid(raise_exception=True)
    return data.filters()


class AuditEventListApi(TenantAPIView):
    allowed_roles = AUDITOR
    pagination_class = AuditCursorPagination

    @extend_schema(operation_id="audit_events_list", parameters=[FilterInput],
                   responses=AuditEventOutput(many=True),
                   summary="List your tenant's audit events (newest first, cursor-paginated)")
    def get(self, request):
        """Your tenant's audit events, newest first: who (API key, staff, system) did what to which object,
        and the outcome. Filter by time, `action` (exact, or a prefix like `faces.*`), actor, outcome or
        target. Reading the log is itself recorded. A page holds `limit` events (default 100, at most
        1000); follow `next`.

        Example: `GET /v1/audit/events?action=faces.*&since=2025-01-01T00:00:00Z`
        """
        filters = _parse_filters(request)
        paginator = self.pagination_class()
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
        """Every audit event matching the filters, streamed as CSV (`.csv`) or JSON Lines (`.jsonl`), newest
        first, with the fields of the list. The export is itself recorded.

        Example: `curl -H "Authorization: Bearer $KEY" ".../v1/audit/events/export.csv?since=2025-01-01T00:00:00Z"`
        """
        if file_format not in exports.FORMATS:
            raise InvalidRequest("Unknown export format.")
        filters = _parse_filters(request)
        # The export event commits with this request's transaction, before the
        # body streams: an export is recorded even if the download is cut short.
        record_event(tenant_id=self.tenant_id, actor=self.actor(), action="audit.exported",
                     details={"format": file_format, "filters": filters.as_details()})
        return exports.tenant_export(tenant_id=self.tenant_id, filters=filters, fmt=file_format)
