"""Request body parsers: a body that cannot be read is a 400 malformed_request, never a 500.

DRF's JSONParser turns a ValueError into a ParseError, but a body nested deeper
than the interpreter's recursion limit (a 2 kB `[[[[…]]]]`) raises RecursionError
instead, which reached the error handler as our bug. Nesting is also bounded far
below that limit: no documented body is more than a few levels deep, and every
layer after the parser (serializers, the type checks of faceservice/api/fields.py,
error details) walks a body recursively.
"""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

# The deepest documented body (an index job: assets → asset → image → s3) has 5 levels.
MAX_JSON_DEPTH = 32


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing bodies nested deeper than MAX_JSON_DEPTH as malformed."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(too_deep_message()) from None
        if nesting_depth(data) > MAX_JSON_DEPTH:
            raise ParseError(too_deep_message())
        return data


def too_deep_message() -> str:
    return f"JSON parse error - the body is nested deeper than {MAX_JSON_DEPTH} levels."


def nesting_depth(value: Any) -> int:
    """How many arrays and objects deep a parsed JSON value is (a scalar is 0).

    A loop with a stack, not recursion: the value may be as deep as the parser allowed.
    """
    deepest, stack = 0, [(value, 1)] if _is_container(value) else []
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if _is_container(child))
    return deepest


def _is_container(value: Any) -> bool:
    return isinstance(value, (dict, list))
