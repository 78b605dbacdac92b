"""Collections over HTTP. Thin: parse, call a service or selector, render."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.response import Response

from embeddings.collections import selectors, services
from embeddings.store.apis import DeletionOutput, ReceiptOutput, deletion_body
from embeddings.store.models import COLLECTION_NAME_PATTERN, Collection
from faceservice.api.fields import InputSerializer
from faceservice.api.pagination import NewestFirstCursorPagination, paginate
from faceservice.api.views import TenantAPIView

READ_ROLES = ("admin", "indexer", "searcher", "auditor")
ERRORS = {
    400: OpenApiResponse(description="Invalid request (invalid_request, invalid_collection_name)"),
    404: OpenApiResponse(description="No such collection, or another tenant's (not_found)"),
}


class CollectionOutput(serializers.Serializer):
    name = serializers.CharField()
    model_id = serializers.CharField(allow_null=True, help_text="The face model its faces are made with; "
                                     "null until the first face when no model was installed at creation")
    face_retention_days = serializers.IntegerField(allow_null=True,
                                                   help_text="Null: the tenant's retention applies")
    face_count = serializers.IntegerField()
    subject_count = serializers.IntegerField(help_text="Distinct subjects among its faces")
    created_at = serializers.DateTimeField()

    def to_representation(self, collection: Collection) -> dict:
        return {"name": collection.name, "model_id": collection.model_id,
                "face_retention_days": collection.face_retention_days,
                "face_count": getattr(collection, "face_count", 0),
                "subject_count": getattr(collection, "subject_count", 0),
                "created_at": serializers.DateTimeField().to_representation(collection.created_at)}


class CollectionCreateInput(InputSerializer):
    name = serializers.RegexField(COLLECTION_NAME_PATTERN, max_length=100,
                                  help_text="1-100 letters, digits, `_`, `.` or `-`, starting with a letter or digit")
    face_retention_days = serializers.IntegerField(min_value=1, max_value=36500, required=False, allow_null=True,
                                                   help_text="Delete its faces this many days after indexing")


class CollectionUpdateInput(InputSerializer):
    face_retention_days = serializers.IntegerField(min_value=1, max_value=36500, allow_null=True,
                                                   help_text="Null: the tenant's retention")


class CollectionListApi(TenantAPIView):
    allowed_roles = {"GET": READ_ROLES, "POST": ("admin",)}
    pagination_class = NewestFirstCursorPagination

    @extend_schema(responses={200: CollectionOutput(many=True)}, summary="List collections, newest first")
    def get(self, request):
        """Your collections with their face and subject counts, newest first. A page holds `limit`
        collections (default 50, at most 500); follow `next`. The `default` collection appears once
        something used it."""
        return paginate(self, selectors.collections_of(tenant_id=self.tenant_id), CollectionOutput)

    @extend_schema(request=CollectionCreateInput, responses={201: CollectionOutput, 409: OpenApiResponse(
        description="A collection of that name exists (collection_exists)"), **ERRORS},
        examples=[OpenApiExample("A collection", value={"name": "staff-2026", "face_retention_days": 365},
                                 request_only=True)],
        summary="Create a collection")
    def post(self, request):
        """Create an empty collection. It is tied to the installed face model: indexing into it with
        another model later is refused (`collection_model_mismatch`), so moving to a new model is
        indexing into a new collection while the old one goes on answering searches."""
        data = CollectionCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        collection = services.create_collection(tenant_id=self.tenant_id, actor=self.actor(), **data.validated_data)
        body = CollectionOutput(collection).data
        return Response(body, status=201, headers={"Location": f"/v1/collections/{collection.name}"})


NAME_PARAMETER = OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, pattern=COLLECTION_NAME_PATTERN,
                                  description="The collection's name")


@extend_schema_view(get=extend_schema(parameters=[NAME_PARAMETER]), patch=extend_schema(parameters=[NAME_PARAMETER]),
                    delete=extend_schema(parameters=[NAME_PARAMETER]))
class CollectionApi(TenantAPIView):
    allowed_roles = {"GET": READ_ROLES, "PATCH": ("admin",), "DELETE": ("admin",)}

    @extend_schema(responses={200: CollectionOutput, **ERRORS}, summary="Describe a collection")
    def get(self, request, name):
        """A collection's model, retention, and face and subject counts."""
        return Response(CollectionOutput(selectors.collection_detail(tenant_id=self.tenant_id, name=name)).data)

    @extend_schema(request=CollectionUpdateInput, responses={200: CollectionOutput, **ERRORS},
                   summary="Change a collection's retention")
    def patch(self, request, name):
        """Set `face_retention_days` (null: the tenant's). It applies to faces indexed from then on."""
        data = CollectionUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.update_collection(tenant_id=self.tenant_id, name=name, actor=self.actor(), **data.validated_data)
        return Response(CollectionOutput(selectors.collection_detail(tenant_id=self.tenant_id, name=name)).data)

    @extend_schema(responses={200: ReceiptOutput, 202: DeletionOutput, **ERRORS},
                   summary="Delete a collection with its faces; a receipt (200), or a deletion to poll (202)")
    def delete(self, request, name):
        """Delete the collection, its faces, assets and index jobs (unfinished assets are dropped), with a
        deletion receipt and a `faces.deleted` webhook, like every deletion. The name is free again at once.
        Past `DELETE_SYNC_MAX_FACES` faces the deletion runs in the background: `202` and a deletion to poll."""
        deleted = services.delete_collection(tenant_id=self.tenant_id, name=name, actor=self.actor())
        if deleted.queued is not None:
            body = DeletionOutput(deletion_body(deleted.queued)).data
            return Response(body, status=202, headers={"Location": body["status_url"]})
        return Response(ReceiptOutput(deleted.receipt).data)
