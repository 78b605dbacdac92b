"""The `collection` input every face route takes (API layer): a name, the tenant's `default` collection when absent."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from embeddings.store.collections import DEFAULT_COLLECTION
from embeddings.store.models import COLLECTION_NAME_PATTERN

COLLECTION_HELP = (f"The collection's name (1-100 letters, digits, `_`, `.`, `-`); absent: `{DEFAULT_COLLECTION}`, "
                   "made on first use")


def collection_field(**kwargs) -> serializers.RegexField:
    return serializers.RegexField(COLLECTION_NAME_PATTERN, max_length=100, required=False,
                                  help_text=kwargs.pop("help_text", COLLECTION_HELP), **kwargs)


class CollectionQueryInput(serializers.Serializer):
    collection = collection_field()


# The errors a route that takes a collection adds to its own.
COLLECTION_ERRORS = {
    409: OpenApiResponse(description="The collection holds another face model's faces (collection_model_mismatch)"),
}
