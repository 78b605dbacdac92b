"""Input that accepts exactly what the schema documents.

DRF coerces: a CharField takes the JSON number 5 as "5", an IntegerField takes
"5" and true, a BooleanField takes 1 and "yes", a UUIDField takes an integer.
A body the OpenAPI schema forbids would be served. `InputSerializer`, the base
of every Input serializer of a request body, checks each JSON value's type
against its field before DRF coerces it: one place, so no field can forget.

Text is parsed only where text is the medium: a multipart form's fields and a
query string arrive as strings by nature (`?limit=10`, `-F top_k=5`). A form
reaches a serializer as a QueryDict, or as `FormFields` (embeddings/api.py's
`plain_data`), and DRF parses its values as before. Query filters are plain
serializers: they never read JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rest_framework import serializers


class FormFields(dict):
    """A multipart form's text fields: strings by nature, which typed fields may parse."""


def _is_boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    # JSON Schema's integer is a number without a fraction: 5.0 is one, "5" and true are not.
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


# The JSON type each DRF field documents, where DRF would coerce another one. Subclasses come
# first (BooleanField is no IntegerField, but bool is an int). CharField covers URLField,
# RegexField and the like. Dates, choices, lists and objects already refuse a wrong type.
JSON_TYPES: list[tuple[type[serializers.Field], Callable[[Any], bool], str]] = [
    (serializers.BooleanField, _is_boolean, "Must be true or false."),
    (serializers.IntegerField, _is_integer, "Must be an integer."),
    (serializers.FloatField, _is_number, "Must be a number."),
    (serializers.DecimalField, _is_number, "Must be a number."),
    (serializers.CharField, _is_string, "Must be a string."),
    (serializers.UUIDField, _is_string, "Must be a string."),
]


def type_error(field: serializers.Field, value: Any) -> list | dict | None:
    """DRF's error detail for a JSON value of another type than `field` documents, else None.

    Null is left to the field's allow_null; a nested serializer checks its own values
    (it is an InputSerializer too); a list's or a dict's items are checked against its child.
    """
    if value is None or isinstance(field, serializers.BaseSerializer):
        return None
    if isinstance(field, (serializers.ListField, serializers.DictField)):
        container = list if isinstance(field, serializers.ListField) else dict
        if not isinstance(value, container):
            return None  # DRF refuses it with its own message
        items = enumerate(value) if container is list else value.items()
        errors = {key: error for key, item in items if (error := type_error(field.child, item))}
        return errors or None
    for kind, is_valid, message in JSON_TYPES:
        if isinstance(field, kind):
            return None if is_valid(value) else [message]
    return None


class InputSerializer(serializers.Serializer):
    """The base of every Input serializer of a request body: a JSON value must have its field's type.

    A wrong type answers 400 invalid_request with the field in `details`, next to the
    body's other field errors, as any validation error does.
    """

    def to_internal_value(self, data):
        errors = self._type_errors(data) if self._reads_json() and isinstance(data, Mapping) else {}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if errors and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **errors}) from None
            raise
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def _type_errors(self, data: Mapping) -> dict:
        errors = {}
        for name, field in self.fields.items():
            if not field.read_only and name in data and (error := type_error(field, data[name])):
                errors[name] = error
        return errors

    def _reads_json(self) -> bool:
        # The top serializer's data says where the values came from; a nested one reads its root's.
        data = getattr(self.root, "initial_data", None)
        return not isinstance(data, FormFields) and not hasattr(data, "getlist")
