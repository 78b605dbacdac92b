"""Face data over HTTP: face listings, deletions, receipts and statistics."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from embeddings.api import IMAGE_ERRORS as ERRORS
from embeddings.store import deletion as deletions
from embeddings.store import selectors, services
from embeddings.store.face_quality import shown_quality
from embeddings.store.fields import CollectionQueryInput, collection_field
from embeddings.store.models import DeletionRequest
from embeddings.store.quality_fields import pose_output, quality_output
from embeddings.store.receipts import DeletionReceipt
from embeddings.store.statistics import tenant_statistics
from faceservice.api.fields import InputSerializer
from faceservice.api.pagination import NewestFirstCursorPagination, paginate
from faceservice.api.queries import query_params
from faceservice.api.views import TenantAPIView
from faceservice.errors import InvalidRequest

FACE_LIST_ROLES = ("admin", "indexer", "searcher")
INVALID_FILTER = OpenApiResponse(description="Invalid request (invalid_request)")


class ConfirmationRequired(InvalidRequest):
    code = "confirmation_required"


class FaceOutput(serializers.Serializer):
    """Face metadata. Never the embedding or the search vector."""

    id = serializers.UUIDField()
    asset_id = serializers.CharField()
    subject_id = serializers.CharField(allow_null=True)
    bbox = serializers.ListField(child=serializers.FloatField())
    det_score = serializers.FloatField()
    quality = quality_output(allow_null=True)
    pose = pose_output(allow_null=True, source="quality")
    model_id = serializers.CharField()
    job_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, face) -> dict:
        # Face.quality is stored flat; shown as quality + pose like every other face.
        shown = super().to_representation(face)
        shown.update(shown_quality(face.quality))
        return shown


class FaceFilterInput(serializers.Serializer):
    collection = collection_field()
    asset_id = serializers.CharField(max_length=255, required=False, help_text="Faces of this asset")
    subject_id = serializers.CharField(max_length=255, required=False, help_text="Faces of this subject")


class FaceListApi(TenantAPIView):
    allowed_roles = FACE_LIST_ROLES
    pagination_class = NewestFirstCursorPagination

    @extend_schema(parameters=[FaceFilterInput],
                   responses={200: FaceOutput(many=True), 400: INVALID_FILTER, 404: ERRORS[404]},
                   summary="List faces (metadata only) of an asset or a subject, newest first")
    def get(self, request):
        """The faces stored for an asset (`asset_id`) or a subject (`subject_id`), newest first: ids, box,
        detection score, quality and pose (measured at indexing; null for faces indexed before that), model
        and expiry. Never an embedding or an image. A page holds `limit` faces
        (default 50, at most 500); follow `next`.

        Example: `GET /v1/faces?subject_id=alice&limit=100`
        """
        filters = query_params(FaceFilterInput, request)
        faces = selectors.faces_for(tenant_id=self.tenant_id, asset_id=filters.get("asset_id"),
                                    subject_id=filters.get("subject_id"), collection=filters.get("collection"))
        return paginate(self, faces, FaceOutput)


class ReceiptOutput(serializers.Serializer):
    receipt_id = serializers.UUIDField()
    requested = serializers.DictField()
    faces_deleted = serializers.IntegerField()
    assets_deleted = serializers.IntegerField()
    keys_destroyed = serializers.IntegerField()
    deleted_at = serializers.DateTimeField()


class DeletionOutput(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=DeletionRequest.Status.choices)
    status_url = serializers.CharField()
    requested = serializers.DictField()
    receipt = ReceiptOutput(allow_null=True, help_text="Present once the deletion has succeeded")
    created_at = serializers.DateTimeField()


def deletion_body(deletion: DeletionRequest) -> dict:
    done = deletion.status == DeletionRequest.Status.SUCCEEDED
    return {"id": deletion.id, "status": deletion.status, "status_url": f"/v1/deletions/{deletion.id}",
            "requested": deletion.requested, "created_at": deletion.created_at,
            "receipt": DeletionReceipt.of_deletion(deletion).payload() if done else None}


def delete_now_or_queue(view, requested: dict, delete_now) -> Response:
    """A receipt now (200), or, past DELETE_SYNC_MAX_FACES, a deletion for a worker (202)."""
    if deletions.count_matching(tenant_id=view.tenant_id, requested=requested) > settings.DELETE_SYNC_MAX_FACES:
        deletion = deletions.request_deletion(tenant_id=view.tenant_id, requested=requested, actor=view.actor())
        body = DeletionOutput(deletion_body(deletion)).data
        return Response(body, status=202, headers={"Location": body["status_url"]})
    return Response(ReceiptOutput(delete_now()).data)


class DeletionApi(TenantAPIView):
    """A large deletion's progress, and its receipt once done."""

    allowed_roles = ("admin", "auditor")

    @extend_schema(responses={200: DeletionOutput, 404: ERRORS[404]}, summary="A queued deletion and its receipt")
    def get(self, request, deletion_id):
        """A deletion that was too large to finish in the request (a `202` from `faces/delete` or
        `faces/purge`): its `status` (`pending`, `running`, `succeeded`, `failed`), and its receipt once it
        has succeeded. Poll it every few seconds."""
        deletion = selectors.deletion_request(tenant_id=self.tenant_id, deletion_id=deletion_id)
        return Response(DeletionOutput(deletion_body(deletion)).data)


class DeleteFacesApi(TenantAPIView):
    """Delete face data by face ids, asset ids or subject ids (the right to erasure)."""

    allowed_roles = ("admin",)

    class DeleteInput(InputSerializer):
        exactly_one_of = ("face_ids", "asset_ids", "subject_ids")  # a non-empty list (see the schema)

        collection = collection_field()
        face_ids = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=10000)
        asset_ids = serializers.ListField(child=serializers.CharField(max_length=255), required=False,
                                          max_length=10000)
        subject_ids = serializers.ListField(child=serializers.CharField(max_length=255), required=False,
                                            max_length=10000)

        def validate(self, attrs):
            if sum(bool(attrs.get(k)) for k in ("face_ids", "asset_ids", "subject_ids")) != 1:
                raise serializers.ValidationError("give exactly one of face_ids, asset_ids, subject_ids")
            return attrs

    @extend_schema(request=DeleteInput, responses={200: ReceiptOutput, 202: DeletionOutput, **ERRORS},
                   summary="Delete faces; a receipt (200), or a deletion to poll when large (202)")
    def post(self, request):
        """Delete face data by exactly one of `face_ids`, `asset_ids` or `subject_ids` (up to 10 000 each): the
        faces are gone when the answer comes, and the answer is the deletion receipt (`200`). Past
        `DELETE_SYNC_MAX_FACES` faces the deletion runs in the background instead: `202` with the deletion to
        poll (`Location`, `status_url`).

        Example body: `{"subject_ids": ["alice"]}`
        """
        data = self.DeleteInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        collection = values.pop("collection", None)
        requested = {**({"collection": collection} if collection else {}),
                     **{k: [str(v) for v in ids] for k, ids in values.items() if ids}}
        return delete_now_or_queue(self, requested, lambda: services.delete_faces(
            tenant_id=self.tenant_id, actor=self.actor(), collection=collection, **values))


@extend_schema_field({"type": "string", "enum": ["delete all face data"]})
class ConfirmationField(serializers.CharField):
    """The purge phrase: documented as the one value, checked by the view so that a wrong phrase is
    `confirmation_required` rather than a generic invalid choice."""


class PurgeFacesApi(TenantAPIView):
    """Delete ALL face data of the tenant and destroy its data keys (crypto-shredding)."""

    allowed_roles = ("admin",)
    CONFIRMATION = "delete all face data"

    class PurgeInput(InputSerializer):
        confirm = ConfirmationField(help_text='Must be exactly "delete all face data"')

    @extend_schema(request=PurgeInput, responses={200: ReceiptOutput, 202: DeletionOutput, **ERRORS},
                   summary="Purge every face of the tenant and shred its keys")
    def post(self, request):
        """Delete every face of your tenant and destroy its data keys (crypto-shredding): nothing indexed
        before can be read again, even from backups. Irreversible, so the body must say so:
        `{"confirm": "delete all face data"}`. A receipt (`200`), or `202` and a deletion to poll when large.
        """
        data = self.PurgeInput(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["confirm"] != self.CONFIRMATION:
            raise ConfirmationRequired(f'Set "confirm" to "{self.CONFIRMATION}" to purge.')
        return delete_now_or_queue(self, {"purge": True}, lambda: services.purge_tenant_face_data(
            tenant_id=self.tenant_id, actor=self.actor()))


class ReceiptApi(TenantAPIView):
    """Read back a deletion receipt (from the audit log, which deletions never touch)."""

    allowed_roles = ("admin", "auditor")

    @extend_schema(responses={200: ReceiptOutput, 404: ERRORS[404]}, summary="A deletion receipt")
    def get(self, request, receipt_id):
        """A deletion receipt, read back from the audit log (which deletions never touch): what was asked,
        how many faces and assets were deleted, how many keys destroyed, and when. Keep its id as proof."""
        receipt = selectors.deletion_receipt(tenant_id=self.tenant_id, receipt_id=receipt_id)
        return Response(ReceiptOutput(receipt).data)


class StatisticsApi(TenantAPIView):
    """Counts without personal data: faces, assets, subjects, activity per day, storage."""

    allowed_roles = ("admin", "auditor")

    @extend_schema(parameters=[CollectionQueryInput], responses={200: serializers.DictField(), 404: ERRORS[404]},
                   summary="Tenant statistics")
    def get(self, request):
        """Counts without personal data: faces, assets and subjects stored, collections, activity per day
        (indexing, searches, deletions) and storage used. Of the whole tenant, or of one `collection`
        (activity stays the tenant's)."""
        filters = query_params(CollectionQueryInput, request)
        return Response(tenant_statistics(tenant_id=self.tenant_id, collection=filters.get("collection")))
