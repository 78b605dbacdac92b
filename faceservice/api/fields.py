"""Input fields that accept exactly what the schema documents.

DRF's CharField turns a JSON number into a string (`{"asset_ids": [0]}` is
taken as "0"), so a body the OpenAPI schema forbids is served. An id is a
string: refuse anything else, as the schema says.
"""

from __future__ import annotations

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
