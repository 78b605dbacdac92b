"""Cursor pagination: stable under concurrent inserts, no page counting."""

from rest_framework.pagination import CursorPagination


class NewestFirstCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500
    ordering = ("-created_at", "-id")
