"""Subjects over HTTP. Subject ids travel in query strings and bodies, never in paths (logs hold paths)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from embeddings.store.apis import FaceOutput
from embeddings.store.fields import collection_field
from embeddings.subjects import selectors, services
from faceservice.api.fields import InputSerializer
from faceservice.api.pagination import StrictCursorPagination, paginate
from faceservice.api.queries import query_params
from faceservice.api.views import TenantAPIView

READ_ROLES = ("admin", "indexer", "searcher")
WRITE_ROLES = ("admin", "indexer")
SUBJECT_ID = serializers.CharField(max_length=255)
ERRORS = {
    400: OpenApiResponse(description="Invalid request (invalid_request)"),
    404: OpenApiResponse(description="No such collection or subject, or another tenant's (not_found)"),
}
LIMIT_ERROR = {422: OpenApiResponse(description="The subject would exceed SUBJECT_MAX_FACES (subject_face_limit)")}


class SubjectCursorPagination(StrictCursorPagination):
    page_size = 100
    max_page_size = 1000
    ordering = ("subject_id",)


class SubjectOutput(serializers.Serializer):
    subject_id = serializers.CharField()
    face_count = serializers.IntegerField()
    last_indexed_at = serializers.DateTimeField(help_text="When its newest face was indexed")


class SubjectDetailOutput(SubjectOutput):
    faces = FaceOutput(many=True)


class SubjectListInput(serializers.Serializer):
    collection = collection_field()


class SubjectInput(serializers.Serializer):
    collection = collection_field()
    subject_id = serializers.CharField(max_length=255)


class SubjectListApi(TenantAPIView):
    allowed_roles = READ_ROLES
    pagination_class = SubjectCursorPagination

    @extend_schema(parameters=[SubjectListInput], responses={200: SubjectOutput(many=True), **ERRORS},
                   summary="List a collection's subjects with their face counts")
    def get(self, request):
        """The collection's subjects (persons), by subject id, each with its face count and when it was
        last indexed. A page holds `limit` subjects (default 100, at most 1000); follow `next`."""
        filters = query_params(SubjectListInput, request)
        subjects = selectors.subjects_of(tenant_id=self.tenant_id, collection=filters.get("collection"))
        return paginate(self, subjects, SubjectOutput)


class SubjectApi(TenantAPIView):
    allowed_roles = READ_ROLES

    @extend_schema(parameters=[SubjectInput], responses={200: SubjectDetailOutput, **ERRORS},
                   summary="Describe one subject and its faces")
    def get(self, request):
        """One subject: its face count, when it was last indexed, and its faces' metadata (ids, boxes,
        assets; never an embedding). Example: `GET /v1/subjects/describe?subject_id=alice`"""
        filters = query_params(SubjectInput, request)
        subject = selectors.subject_detail(tenant_id=self.tenant_id, collection=filters.get("collection"),
                                           subject_id=filters["subject_id"])
        return Response(SubjectDetailOutput(subject).data)


class SubjectRenameInput(InputSerializer):
    collection = collection_field()
    subject_id = serializers.CharField(max_length=255)
    new_subject_id = serializers.CharField(max_length=255)


class SubjectMergeInput(InputSerializer):
    collection = collection_field()
    subject_ids = serializers.ListField(child=serializers.CharField(max_length=255), min_length=1,
                                        max_length=100, help_text="The subjects to merge into `into`")
    into = serializers.CharField(max_length=255, help_text="The subject that keeps every face")


class SubjectCountOutput(serializers.Serializer):
    subject_id = serializers.CharField()
    face_count = serializers.IntegerField()


class SubjectRenameApi(TenantAPIView):
    allowed_roles = WRITE_ROLES

    @extend_schema(request=SubjectRenameInput, responses={200: SubjectCountOutput, 409: OpenApiResponse(
        description="The new id has faces: merge instead (subject_exists)"), **ERRORS},
        examples=[OpenApiExample("Rename", value={"subject_id": "alice", "new_subject_id": "alice-smith"},
                                 request_only=True)],
        summary="Rename a subject")
    def post(self, request):
        """Give a subject's faces (and the assets indexed for it) a new subject id. The new id must have
        no faces in the collection; to join two subjects, merge them."""
        data = SubjectRenameInput(data=request.data)
        data.is_valid(raise_exception=True)
        faces = services.rename_subject(tenant_id=self.tenant_id, actor=self.actor(), **data.validated_data)
        return Response(SubjectCountOutput({"subject_id": data.validated_data["new_subject_id"],
                                       "face_count": faces}).data)


class SubjectMergeApi(TenantAPIView):
    allowed_roles = WRITE_ROLES

    @extend_schema(request=SubjectMergeInput, responses={200: SubjectCountOutput, **ERRORS, **LIMIT_ERROR},
                   examples=[OpenApiExample("Merge", value={"subject_ids": ["alice-2"], "into": "alice"},
                                            request_only=True)],
                   summary="Merge subjects into one")
    def post(self, request):
        """Move every face of `subject_ids` to the subject `into` (which may be new). Refused whole, with
        `subject_face_limit`, if `into` would then hold more than `SUBJECT_MAX_FACES` faces."""
        data = SubjectMergeInput(data=request.data)
        data.is_valid(raise_exception=True)
        total = services.merge_subjects(tenant_id=self.tenant_id, actor=self.actor(), **data.validated_data)
        return Response(SubjectCountOutput({"subject_id": data.validated_data["into"], "face_count": total}).data)


class FacesOfSubjectInput(InputSerializer):
    collection = collection_field()
    subject_id = serializers.CharField(max_length=255)
    face_ids = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=100)


class FaceUnchangedOutput(serializers.Serializer):
    face_id = serializers.UUIDField()
    reason = serializers.ChoiceField(choices=["not_found", "already_associated", "not_associated"])


class FaceChangesOutput(serializers.Serializer):
    subject_id = serializers.CharField()
    changed = serializers.ListField(child=serializers.UUIDField(), help_text="The faces changed")
    unchanged = FaceUnchangedOutput(many=True, help_text="The faces not changed, and why")


class AssociateFacesApi(TenantAPIView):
    allowed_roles = WRITE_ROLES

    @extend_schema(request=FacesOfSubjectInput, responses={200: FaceChangesOutput, **ERRORS, **LIMIT_ERROR},
                   summary="Associate faces with a subject (AssociateFaces)")
    def post(self, request):
        """Give up to 100 faces of the collection the subject, moving them from any other subject. Searches
        answer with the new subject at once. A face that is not in the collection is listed in `unchanged`
        with reason `not_found`."""
        data = FacesOfSubjectInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        changes = services.associate_faces(tenant_id=self.tenant_id, actor=self.actor(),
                                           face_ids=list(dict.fromkeys(values.pop("face_ids"))), **values)
        return Response(FaceChangesOutput(changes).data)


class DisassociateFacesApi(TenantAPIView):
    allowed_roles = WRITE_ROLES

    @extend_schema(request=FacesOfSubjectInput, responses={200: FaceChangesOutput, **ERRORS},
                   summary="Disassociate faces from a subject (DisassociateFaces)")
    def post(self, request):
        """Take the subject off up to 100 of its faces; they stay indexed, without a subject. A face of
        another subject is listed in `unchanged` with reason `not_associated`."""
        data = FacesOfSubjectInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        changes = services.disassociate_faces(tenant_id=self.tenant_id, actor=self.actor(),
                                              face_ids=list(dict.fromkeys(values.pop("face_ids"))), **values)
        return Response(FaceChangesOutput(changes).data)
