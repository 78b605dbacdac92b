"""Search (1:N) and compare (1:1, 1:few) over HTTP.

Query images (search, compare) are decoded in memory, analysed, and dropped
when the request ends: nothing of them is stored, logged or sent to the broker.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from embeddings.api import IMAGE_ERRORS, ImageSourceInput, image_from, plain_data
from embeddings.image_sources import uploaded_source
from embeddings.search import services as search_service
from embeddings.search import subjects as person_search
from embeddings.search.subjects import PersonQuery
from embeddings.store.fields import COLLECTION_ERRORS, collection_field
from faceservice.api.fields import InputSerializer
from faceservice.api.views import TenantAPIView
from faceservice.errors import InvalidRequest


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
    collection = serializers.CharField(help_text="The collection searched")
    threshold = serializers.FloatField()
    faces = SearchedFaceOutput(many=True)
    left_out = serializers.ListField(child=serializers.DictField(), required=False)
    timings_ms = serializers.DictField(child=serializers.FloatField())


class SearchApi(TenantAPIView):
    """Search the tenant's faces by a photo, or by one of its indexed face ids."""

    allowed_roles = ("admin", "searcher")

    class SearchInput(InputSerializer):
        exactly_one_of = ("image", "face_id")

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
        collection = collection_field(help_text="The collection searched; absent: `default` (by `face_id`: "
                                                "the face's own collection)")

    class SearchUpload(serializers.Serializer):
        """The multipart form: the photo as a file, the options as form fields."""

        exactly_one_of = ("image", "face_id")

        image = serializers.FileField(required=False, help_text="The photo (JPEG, PNG or WebP)")
        face_id = serializers.UUIDField(required=False, help_text="Search by an indexed face instead")
        faces = serializers.ChoiceField(choices=["all", "largest"], default="all")
        max_faces = serializers.IntegerField(min_value=1, max_value=100, default=10)
        top_k = serializers.IntegerField(min_value=1, max_value=100, default=10)
        threshold = serializers.FloatField(min_value=-1.0, max_value=1.0, required=False)
        subject_ids = serializers.ListField(child=serializers.CharField(max_length=255), required=False,
                                            max_length=1000)
        asset_ids = serializers.ListField(child=serializers.CharField(max_length=255), required=False,
                                          max_length=1000)
        group_by = serializers.ChoiceField(choices=["subject"], required=False)
        collection = collection_field()

    @extend_schema(request={"application/json": SearchInput, "multipart/form-data": SearchUpload},
                   responses={200: SearchOutput, **IMAGE_ERRORS, **COLLECTION_ERRORS},
                   summary="Search by photo (1:N) or by face id")
    def post(self, request):
        """Find who is in a photo: each face found (all, or the largest) is matched against your indexed
        faces, and the matches at or above `threshold` come back best first, at most `top_k` per face.
        Give exactly one of a photo (multipart file `image`, or JSON `image` as base64, an https URL or
        an S3 object) or the `face_id` of an indexed face. Narrow with `subject_ids` / `asset_ids`;
        `group_by=subject` keeps the best face per person. The photo is processed in memory and
        forgotten: nothing of it is stored or logged. Limits: 15 MiB and 40 megapixels per image.

        Example: `curl -H "Authorization: Bearer $KEY" -F image=@photo.jpg -F top_k=5 .../v1/search`
        """
        data = self.SearchInput(data=plain_data(request))
        data.is_valid(raise_exception=True)
        options = data.validated_data
        source = image_from(request, "image", options)
        if (source is None) == ("face_id" not in options):
            raise InvalidRequest("Send exactly one of an image (multipart `image` or JSON `image`) or `face_id`.")
        query = search_service.SearchQuery(
            top_k=options["top_k"], threshold=options.get("threshold", settings.SEARCH_MATCH_THRESHOLD),
            largest_only=options["faces"] == "largest", max_faces=options["max_faces"],
            subject_ids=options.get("subject_ids"), asset_ids=options.get("asset_ids"),
            group_by_subject=options.get("group_by") == "subject", collection=options.get("collection"))
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


class CompareReferenceInput(InputSerializer):
    name = serializers.CharField(max_length=100)
    image = ImageSourceInput()


class CompareApi(TenantAPIView):
    """Compare a photo with named reference photos. Stores nothing at all."""

    allowed_roles = ("admin", "searcher", "comparer")
    MAX_REFERENCES = 10

    ReferenceInput = CompareReferenceInput

    class CompareInput(InputSerializer):
        target = ImageSourceInput(required=False, help_text="JSON image; or multipart field `target`")
        references = serializers.ListField(child=serializers.DictField(), required=False, max_length=10,
                                           help_text="[{name, image}]; or multipart files `reference`")
        threshold = serializers.FloatField(min_value=-1.0, max_value=1.0, required=False)

    class CompareJson(InputSerializer):
        """The JSON body as documented: a target and 1-10 named references."""

        target = ImageSourceInput()
        references = serializers.ListField(child=CompareReferenceInput(), min_length=1, max_length=10)
        threshold = serializers.FloatField(min_value=-1.0, max_value=1.0, required=False)

    class CompareUpload(serializers.Serializer):
        """The multipart form: the target and 1-10 `reference` files (each named by its file name)."""

        target = serializers.FileField(help_text="The photo to compare")
        reference = serializers.ListField(child=serializers.FileField(), min_length=1, max_length=10,
                                          help_text="The reference photos: repeat the part once per photo")
        threshold = serializers.FloatField(min_value=-1.0, max_value=1.0, required=False)

    @extend_schema(request={"application/json": CompareJson, "multipart/form-data": CompareUpload},
                   responses={200: CompareOutput, **IMAGE_ERRORS},
                   summary="Compare a photo with 1-10 reference photos (1:1 / 1:few), stateless")
    def post(self, request):
        """Compare one photo's largest face with 1-10 reference photos (1:1 or 1:few) and say, per
        reference, the similarity and whether it is a `match` at `threshold` (default
        `FACE_MATCH_THRESHOLD`). Stateless: nothing is stored, searched or logged, so the `comparer` role
        may use it without access to your indexed faces. A reference that cannot be read gets its own
        `error` instead of failing the request.

        Example: `curl -H "Authorization: Bearer $KEY" -F target=@a.jpg -F reference=@b.jpg .../v1/compare`
        """
        data = self.CompareInput(data=plain_data(request))
        data.is_valid(raise_exception=True)
        target = image_from(request, "target", data.validated_data)
        references = self._references(request, data.validated_data.get("references") or [])
        if target is None or not references:
            raise InvalidRequest("Send a `target` image and 1-10 `references`.")
        threshold = data.validated_data.get("threshold", settings.FACE_MATCH_THRESHOLD)
        result = search_service.compare(tenant_id=self.tenant_id, target=target, references=references,
                                        threshold=threshold, actor=self.actor())
        return Response(CompareOutput(result).data)

    def _references(self, request, given: list) -> list:
        files = request.FILES.getlist("reference")
        if len(files) + len(given) > self.MAX_REFERENCES:
            raise InvalidRequest(f"At most {self.MAX_REFERENCES} references.")
        references = [(upload.name or f"reference-{i + 1}", uploaded_source(upload))
                      for i, upload in enumerate(files)]
        for item in given:
            parsed = self.ReferenceInput(data=item)
            parsed.is_valid(raise_exception=True)
            references.append((parsed.validated_data["name"],
                               ImageSourceInput.to_source(parsed.validated_data["image"])))
        return references


# --- Persons -------------------------------------------------------------------------------

class SubjectMatchOutput(serializers.Serializer):
    subject_id = serializers.CharField()
    score = serializers.FloatField(help_text="The subject score over its faces (see `method`)")
    faces = serializers.IntegerField(help_text="How many of its faces entered the score")
    best_face_id = serializers.UUIDField()
    best_similarity = serializers.FloatField()


class PersonSearchedFaceOutput(serializers.Serializer):
    bbox = serializers.ListField(child=serializers.FloatField())
    det_score = serializers.FloatField()
    subjects = SubjectMatchOutput(many=True)


class PersonSearchOutput(serializers.Serializer):
    model_id = serializers.CharField()
    collection = serializers.CharField()
    threshold = serializers.FloatField()
    method = serializers.CharField(help_text="How face similarities become a subject score")
    faces = PersonSearchedFaceOutput(many=True)
    timings_ms = serializers.DictField(child=serializers.FloatField())


class PersonSearchInput(InputSerializer):
    image = ImageSourceInput(required=False, help_text="JSON image; or send multipart field `image`")
    collection = collection_field()
    faces = serializers.ChoiceField(choices=["all", "largest"], default="all")
    max_faces = serializers.IntegerField(min_value=1, max_value=100, default=10)
    top_k = serializers.IntegerField(min_value=1, max_value=100, default=10, help_text="Subjects per face")
    threshold = serializers.FloatField(min_value=-1.0, max_value=1.0, required=False,
                                       help_text="Minimum subject score; default SEARCH_MATCH_THRESHOLD")


class PersonSearchUpload(PersonSearchInput):
    image = serializers.FileField(required=False, help_text="The photo (JPEG, PNG or WebP)")


class PersonSearchApi(TenantAPIView):
    """Search the collection's subjects (persons) by a photo: Rekognition's SearchUsersByImage."""

    allowed_roles = ("admin", "searcher")

    @extend_schema(request={"application/json": PersonSearchInput, "multipart/form-data": PersonSearchUpload},
                   responses={200: PersonSearchOutput, **IMAGE_ERRORS, **COLLECTION_ERRORS},
                   summary="Search for persons (subjects) by photo")
    def post(self, request):
        """Like `/v1/search`, but the answer ranks subjects, not faces: each face found in the photo gets
        the collection's subjects whose faces look most like it, each with a subject score aggregated over
        its faces (`method`), at or above `threshold`. Faces without a subject are not persons and never
        appear. The photo is processed in memory and forgotten.

        Example: `curl -H "Authorization: Bearer $KEY" -F image=@photo.jpg .../v1/search/subjects`
        """
        data = PersonSearchInput(data=plain_data(request))
        data.is_valid(raise_exception=True)
        options = data.validated_data
        source = image_from(request, "image", options)
        if source is None:
            raise InvalidRequest("Send an image (multipart `image` or JSON `image`).")
        threshold = options.get("threshold", settings.SEARCH_MATCH_THRESHOLD)
        query = PersonQuery(top_k=options["top_k"], threshold=threshold,
                            largest_only=options["faces"] == "largest", max_faces=options["max_faces"],
                            collection=options.get("collection"))
        result = person_search.search_subjects_by_image(tenant_id=self.tenant_id, source=source, query=query,
                                                        actor=self.actor())
        return Response(PersonSearchOutput(result).data)


class VerifyOutput(serializers.Serializer):
    model_id = serializers.CharField()
    collection = serializers.CharField()
    subject_id = serializers.CharField()
    score = serializers.FloatField(help_text="The subject score of the photo's largest face (see `method`)")
    match = serializers.BooleanField(help_text="score >= threshold")
    threshold = serializers.FloatField()
    method = serializers.CharField()
    faces_compared = serializers.IntegerField(help_text="The subject's enrolled faces compared")
    best_face_id = serializers.UUIDField()
    best_similarity = serializers.FloatField()


class VerifyInput(InputSerializer):
    image = ImageSourceInput(required=False, help_text="JSON image; or send multipart field `image`")
    subject_id = serializers.CharField(max_length=255)
    collection = collection_field()
    threshold = serializers.FloatField(min_value=-1.0, max_value=1.0, required=False,
                                       help_text="Default FACE_MATCH_THRESHOLD, the 1:1 operating point")


class VerifyUpload(VerifyInput):
    image = serializers.FileField(required=False, help_text="The photo (JPEG, PNG or WebP)")


class VerifyApi(TenantAPIView):
    """Verify a photo against a stored person (Azure's face-to-person verify), 1:1, storing nothing."""

    allowed_roles = ("admin", "searcher")

    @extend_schema(request={"application/json": VerifyInput, "multipart/form-data": VerifyUpload},
                   responses={200: VerifyOutput, **IMAGE_ERRORS, **COLLECTION_ERRORS},
                   summary="Verify a photo against a subject's enrolled faces (1:1)")
    def post(self, request):
        """Is the largest face of the photo the subject `subject_id`? It is compared with every enrolled face
        of the subject in the collection and the similarities aggregated into one `score`; `match` when it
        reaches `threshold`. Nothing is stored; `404` when the subject has no faces in the collection.

        Example: `curl -H "Authorization: Bearer $KEY" -F image=@selfie.jpg -F subject_id=alice .../v1/verify`
        """
        data = VerifyInput(data=plain_data(request))
        data.is_valid(raise_exception=True)
        options = data.validated_data
        source = image_from(request, "image", options)
        if source is None:
            raise InvalidRequest("Send an image (multipart `image` or JSON `image`).")
        result = person_search.verify_subject(tenant_id=self.tenant_id, source=source,
                                              subject_id=options["subject_id"], collection=options.get("collection"),
                                              threshold=options.get("threshold"), actor=self.actor())
        return Response(VerifyOutput(result).data)
