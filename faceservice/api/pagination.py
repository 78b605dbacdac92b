"""Cursor pagination: stable under concurrent inserts, no page counting.

Every list answers a page `{"next", "previous", "results"}` and takes `cursor`
and `limit`. A view names its class in `pagination_class` (drf-spectacular
documents the page and its parameters from it) and pages with `paginate`.
A cursor or limit the server would not honour is a 400, never a silent default
or DRF's 404: the schema says what is accepted, and the server holds to it.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from faceservice.errors import InvalidRequest


class InvalidCursor(InvalidRequest):
    default_message = "The cursor is not valid: use a `next` or `previous` link as given."


class StrictCursorPagination(CursorPagination):
    page_size_query_param = "limit"
    cursor_query_description = "Opaque cursor from a page's `next` or `previous` link."

    def get_page_size(self, request) -> int:
        given = request.query_params.get(self.page_size_query_param)
        if given is None:
            return self.page_size
        field = serializers.IntegerField(min_value=1, max_value=self.max_page_size)
        try:
            return field.run_validation(given)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({self.page_size_query_param: exc.detail}) from exc

    def decode_cursor(self, request):
        if request.query_params.get(self.cursor_query_param) == "":
            raise InvalidCursor(details={self.cursor_query_param: ["empty"]})
        try:
            return super().decode_cursor(request)
        except NotFound as exc:
            raise InvalidCursor(details={self.cursor_query_param: ["not a cursor"]}) from exc

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except (DjangoValidationError, DataError, ValueError, TypeError) as exc:
            # A well-formed cursor whose position is not of the ordering's type.
            raise InvalidCursor(details={self.cursor_query_param: ["not a cursor"]}) from exc

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = (f"Items per page (default {self.page_size}, "
                                            f"at most {self.max_page_size}).")
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
            else:
                parameter["schema"] = {"type": "string", "minLength": 1}
        return parameters

    def get_paginated_response_schema(self, schema: dict) -> dict:
        link = {"type": "string", "nullable": True, "format": "uri"}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {**link, "description": "The next page, or null on the last one."},
                "previous": {**link, "description": "The previous page, or null on the first one."},
                "results": schema,
            },
        }


def paginate(view, queryset, serializer_class) -> Response:
    """One page of `queryset` rendered with `serializer_class`, by the view's `pagination_class`."""
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, view.request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


class NewestFirstCursorPagination(StrictCursorPagination):
    page_size = 50
    max_page_size = 500
    ordering = ("-created_at", "-id")


class PositionCursorPagination(StrictCursorPagination):
    """An index job's assets, in submission order."""

    page_size = 100
    max_page_size = 1000
    ordering = ("position",)


class AuditCursorPagination(StrictCursorPagination):
    page_size = 100
    max_page_size = 1000
    ordering = ("-seq",)  # unique within a tenant's chain: a stable cursor
