"""Query-string filters parsed with a serializer (lists as ?k=a,b or ?k=a&k=b)."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.request import Request


def query_params(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    data = {key: (request.query_params.getlist(key) if key == "state" else request.query_params.get(key))
            for key in request.query_params}
    if "state" in data:  # ?state=a,b and ?state=a&state=b both work
        data["state"] = [s for value in data["state"] for s in value.split(",") if s]
    parsed = serializer_class(data=data)
    parsed.is_valid(raise_exception=True)
    return parsed.validated_data
