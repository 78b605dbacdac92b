"""Search, compare, delete and statistics: the calls a tenant makes every day.

Query images (search, compare) are decoded in memory, analysed, and dropped
when the request ends: nothing of them is stored, logged or sent to the broker.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from embeddings import deletions, selectors, services
from embeddings import search as search_service
from embeddings.image_sources import ImageSourceInput, uploaded_source
from embeddings.models import DeletionRequest
from embeddings.statistics import tenant_statistics
from faceservice.api.errors import ApiError, NotFound
from faceservice.api.views import TenantAPIView

ERRORS = {
    400: OpenApiResponse(description="Invalid request (code invalid_request / malformed_request)"),
    404: OpenApiResponse(description="Unknown or another tenant's id (code not_found)"),
    413: OpenApiResponse(description="Image or body too large (image_too_large / request_too_large)"),
    415: OpenApiResponse(description="Not an image, or a format we do not accept"),
    422: OpenApiResponse(description="Corrupt image, fetch refused/failed, no face found"),
    429: OpenApiResponse(description="Rate limited (Retry-After says when to try again)"),
    503: OpenApiResponse(description="Face models are not installed (models_unavailable)"),
}


def image_from(request, field: str, data: dict):
    """An ImageSource from a multipart file field or a JSON image object."""
    upload = request.FILES.get(field)
    if upload is not None:
        return uploaded_source(upload)
    if data.get(field):
        return ImageSourceInput.to_source(data[field])
    return None


class MatchOutput(serializers.Serializer):
    face_id = serializers.UUIDField()
    asset_id = serializers.CharField()
    subject_id = serializers.CharField(allow_null=True)
    similarity = serializers.FloatField()


class SearchedFaceOutput(serializers.Serializer):
    bbox = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    det_score = serializers.FloatField(allow_null=True)
    matches = MatchOutput(many=True)


class SearchOutput(serializers.Serializer):
    model_id = serializers.CharField()
    threshold = serializers.FloatField()
    faces = SearchedFaceOutput(many=True)
    left_out = serializers.ListField(child=serializers.DictField(), required=False)
    timings_ms = serializers.DictField(child=serializers.FloatField())


class SearchApi(TenantAPIView):
    """Search the tenant's faces by a photo, or by one of its indexed face ids."""

    allowed_roles = ("admin", "searcher")

    class SearchInput(serializers.Serializer):
        image = ImageSourceInput(required=False, help_text="JSON image; or send multipart field `image`")
        face_id = serializers.UUIDField(required=False, help_text="Search by an indexed face instead")
        faces = serializers.ChoiceField(choices=["all", "largest"], default="all",
                                        help_text="Search with every face in the image, or the largest")
        max_faces = serializers.IntegerField(min_value=1, max_value=100, default=10)
        top_k = serializers.IntegerField(min_value=1, max_value=100, default=10)
        threshold = serializers.FloatField(min_value=-1.0, max_value=1.0, required=False,
                                           help_text="Default: SEARCH_MATCH_THRESHOLD (0.45 for the test pack), "
                                                     "the 1:N operating point")
        subject_ids = serializers.ListField(child=serializers.CharField(max_length=255), required=False,
                                            max_length=1000)
        asset_ids = serializers.ListField(child=serializers.CharField(max_length=255), required=False,
                                          max_length=1000)
        group_by = serializers.ChoiceField(choices=["subject"], required=False, allow_null=True,
                                           help_text="subject: only the best face per subject")

    @extend_schema(request=SearchInput, responses={200: SearchOutput, **ERRORS},
                   summary="Search by photo (1:N) or by face id")
    def post(self, request):
        data = self.SearchInput(data=_plain(request))
        data.is_valid(raise_exception=True)
        options = data.validated_data
        source = image_from(request, "image", options)
        if (source is None) == ("face_id" not in options):
            raise ApiError("Send exactly one of an image (multipart `image` or JSON `image`) or `face_id`.",
                           code="invalid_request")
        query = search_service.SearchQuery(
            top_k=options["top_k"], threshold=options.get("threshold", settings.SEARCH_MATCH_THRESHOLD),
            largest_only=options["faces"] == "largest", max_faces=options["max_faces"],
            subject_ids=options.get("subject_ids"), asset_ids=options.get("asset_ids"),
            group_by_subject=options.get("group_by") == "subject")
        if source is not None:
            result = search_service.search_by_image(tenant_id=self.tenant_id, source=source, query=query,
                                                    actor=self.actor())
        else:
            result = search_service.search_by_face(tenant_id=self.tenant_id, face_id=options["face_id"],
                                                   query=query, actor=self.actor())
        # as_dict() is SearchOutput's shape already (the schema and the tests hold it to
        # that): serializing it again cost ~0.5 ms a search.
        return Response(result.as_dict())


class ComparisonOutput(serializers.Serializer):
    name = serializers.CharField()
    similarity = serializers.FloatField(allow_null=True)
    match = serializers.BooleanField()
    faces_found = serializers.IntegerField()
    error = serializers.CharField(allow_null=True)


class CompareOutput(serializers.Serializer):
    model_id = serializers.CharField()
    threshold = serializers.FloatField()
    target_faces_found = serializers.IntegerField()
    comparisons = ComparisonOutput(many=True)


class CompareApi(TenantAPIView):
    """Compare a photo with named reference photos. Stores nothing at all."""

    allowed_roles = ("admin", "searcher", "comparer")
    MAX_REFERENCES = 10

    class ReferenceInput(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        image = ImageSourceInput()

    class CompareInput(serializers.Serializer):
        target = ImageSourceInput(required=False, help_text="JSON image; or multipart field `target`")
        references = serializers.ListField(child=serializers.DictField(), required=False, max_length=10,
                                           help_text="[{name, image}]; or multipart files `reference`")
        threshold = serializers.FloatField(min_value=-1.0, max_value=1.0, required=False)

    @extend_schema(request=CompareInput, responses={200: CompareOutput, **ERRORS},
                   summary="Compare a photo with 1-10 reference photos (1:1 / 1:few), stateless")
    def post(self, request):
        data = self.CompareInput(data=_plain(request))
        data.is_valid(raise_exception=True)
        target = image_from(request, "target", data.validated_data)
        references = self._references(request, data.validated_data.get("references") or [])
        if target is None or not references:
            raise ApiError("Send a `target` image and 1-10 `references`.", code="invalid_request")
        threshold = data.validated_data.get("threshold", settings.FACE_MATCH_THRESHOLD)
        result = search_service.compare(tenant_id=self.tenant_id, target=target, references=references,
                                        threshold=threshold, actor=self.actor())
        return Response(CompareOutput(result).data)

    def _references(self, request, given: list) -> list:
        files = request.FILES.getlist("reference")
        if len(files) + len(given) > self.MAX_REFERENCES:
            raise ApiError(f"At most {self.MAX_REFERENCES} references.", code="invalid_request")
        references = [(upload.name or f"reference-{i + 1}", uploaded_source(upload))
                      for i, upload in enumerate(files)]
        for item in given:
            parsed = self.ReferenceInput(data=item)
            parsed.is_valid(raise_exception=True)
            references.append((parsed.validated_data["name"],
                               ImageSourceInput.to_source(parsed.validated_data["image"])))
        return references


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
            "receipt": deletions.receipt_of(deletion) if done else None}


def delete_now_or_queue(view, requested: dict, delete_now) -> Response:
    """A receipt now (200), or, past DELETE_SYNC_MAX_FACES, a deletion for a worker (202)."""
    if deletions.count_matching(tenant_id=view.tenant_id, requested=requested) > settings.DELETE_SYNC_MAX_FACES:
        deletion = deletions.request_deletion(tenant_id=view.tenant_id, requested=requested, actor=view.actor())
        return Response(DeletionOutput(deletion_body(deletion)).data, status=202)
    return Response(ReceiptOutput(delete_now()).data)


class DeletionApi(TenantAPIView):
    """A large deletion's progress, and its receipt once done."""

    allowed_roles = ("admin", "auditor")

    @extend_schema(responses={200: DeletionOutput, 404: ERRORS[404]}, summary="A queued deletion and its receipt")
    def get(self, request, deletion_id):
        deletion = selectors.deletion_request(tenant_id=self.tenant_id, deletion_id=deletion_id)
        if deletion is None:
            raise NotFound("No such deletion.")
        return Response(DeletionOutput(deletion_body(deletion)).data)


class DeleteFacesApi(TenantAPIView):
    """Delete face data by face ids, asset ids or subject ids (the right to erasure)."""

    allowed_roles = ("admin",)

    class DeleteInput(serializers.Serializer):
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
        data = self.DeleteInput(data=request.data)
        data.is_valid(raise_exception=True)
        requested = {k: [str(v) for v in values] for k, values in data.validated_data.items() if values}
        return delete_now_or_queue(self, requested, lambda: services.delete_faces(
            tenant_id=self.tenant_id, actor=self.actor(), **data.validated_data))


class PurgeFacesApi(TenantAPIView):
    """Delete ALL face data of the tenant and destroy its data keys (crypto-shredding)."""

    allowed_roles = ("admin",)
    CONFIRMATION = "delete all face data"

    class PurgeInput(serializers.Serializer):
        confirm = serializers.CharField(help_text='Must be exactly "delete all face data"')

    @extend_schema(request=PurgeInput, responses={200: ReceiptOutput, 202: DeletionOutput, **ERRORS},
                   summary="Purge every face of the tenant and shred its keys")
    def post(self, request):
        data = self.PurgeInput(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["confirm"] != self.CONFIRMATION:
            raise ApiError(f'Set "confirm" to "{self.CONFIRMATION}" to purge.', code="confirmation_required")
        return delete_now_or_queue(self, {"purge": True}, lambda: services.purge_tenant_face_data(
            tenant_id=self.tenant_id, actor=self.actor()))


class ReceiptApi(TenantAPIView):
    """Read back a deletion receipt (from the audit log, which deletions never touch)."""

    allowed_roles = ("admin", "auditor")

    @extend_schema(responses={200: ReceiptOutput, 404: ERRORS[404]}, summary="A deletion receipt")
    def get(self, request, receipt_id):
        receipt = selectors.deletion_receipt(tenant_id=self.tenant_id, receipt_id=receipt_id)
        if receipt is None:
            raise NotFound("No such receipt.")
        return Response(ReceiptOutput(receipt).data)


class StatisticsApi(TenantAPIView):
    """Counts without personal data: faces, assets, subjects, activity per day, storage."""

    allowed_roles = ("admin", "auditor")

    @extend_schema(responses={200: serializers.DictField()}, summary="Tenant statistics")
    def get(self, request):
        return Response(tenant_statistics(tenant_id=self.tenant_id))


def _plain(request) -> dict:
    """The non-file fields of the request as a plain dict (multipart QueryDicts hold lists)."""
    data = request.data
    if not hasattr(data, "getlist"):
        return data
    plain = {}
    for key in data:
        if key in request.FILES:
            continue
        values = data.getlist(key)
        plain[key] = values if key.endswith("_ids") else values[-1]
    return plain
