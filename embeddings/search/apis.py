"""Search (1:N) and compare (1:1, 1:few) over HTTP.

Query images (search, compare) are decoded in memory, analysed, and dropped
when the request ends: nothing of them is stored, logged or sent to the broker.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from embeddings.api import IMAGE_ERRORS, ImageSourceInput, image_from, plain_data
from embeddings.engine.quality import NONE
from embeddings.image_sources import ImageSource, uploaded_source
from embeddings.search import services as search_service
from embeddings.search import subjects as person_search
from embeddings.search.subjects import PersonQuery
from embeddings.search.thresholds import (
    DEFAULT,
    DEFAULT_NO_CALIBRATION,
    FIXED,
    MAX_FALSE_MATCH_RATE,
    TARGET_FPIR,
    CalibrationUnavailable,
)
from embeddings.store.fields import COLLECTION_ERRORS, collection_field
from embeddings.store.quality_fields import LEFT_OUT_REASONS_HELP, pose_output, quality_filter_field, quality_output
from faceservice.api.fields import InputSerializer
from faceservice.api.views import TenantAPIView
from faceservice.errors import InvalidRequest

FMR_HELP = ("The calibration's estimate of the chance that two different people score at least this "
            "similarity (the false-match rate, FMR); null when the model pack has no calibration")
THRESHOLD_SOURCE_HELP = ("How `threshold` was chosen: `target_fpir` (from the target false-positive "
                         "identification rate and `gallery_size`, with the pack's calibration), `fixed` (the "
                         "request's `threshold`) or `default, no calibration` (SEARCH_MATCH_THRESHOLD: the pack "
                         "has no calibration)")
VERIFY_SOURCE_HELP = ("How `threshold` was chosen: `max_false_match_rate` (from the pack's calibration), `fixed` "
                      "(the request's `threshold`) or `default` (FACE_MATCH_THRESHOLD)")
TARGET_FPIR_HELP = ("Target false-positive identification rate: the chance that a person who is not in the "
                    "collection gets a match. The threshold follows from it, the pack's calibration and the "
                    "number of faces searched (FPIR = 1 - (1 - FMR(t))^N). Default SEARCH_TARGET_FPIR (0.01). "
                    "Not with `threshold`; `422 calibration_unavailable` if the pack has no calibration")
FIXED_THRESHOLD_HELP = ("A fixed minimum cosine similarity instead of `target_fpir` (not both: 400). It then holds "
                        "no false-match rate: a larger gallery holds more look-alikes")
MAX_FMR_HELP = ("Match when the calibration's false-match rate at the similarity is at most this (1:1: the chance "
                "that two different people are called the same). Not with `threshold`; "
                "`422 calibration_unavailable` if the pack has no calibration. Absent, and no `threshold`: "
                "FACE_MATCH_THRESHOLD")


CALIBRATION_ERROR = OpenApiResponse(description=f"A rate was asked for, but the model pack has no calibration "
                                                f"({CalibrationUnavailable.code}); or an unreadable image")


def target_fpir_field(**kwargs) -> serializers.FloatField:
    # Below 1e-9 the threshold rests on the fitted tail far past any measured score.
    return serializers.FloatField(min_value=1e-9, max_value=0.5, required=False,
                                  help_text=kwargs.pop("help_text", TARGET_FPIR_HELP), **kwargs)


def max_fmr_field() -> serializers.FloatField:
    return serializers.FloatField(min_value=1e-9, max_value=0.5, required=False, help_text=MAX_FMR_HELP)


class OneThreshold:
    """An input with a fixed `threshold` and a rate (`rate_field`) of which at most one may be given.

    Refused with 400 when both are; the schema says so (`not: {required: [both]}`, OneThresholdExtension).
    """

    rate_field = "target_fpir"

    def validate(self, attrs: dict) -> dict:
        if attrs.get("threshold") is not None and attrs.get(self.rate_field) is not None:
            raise serializers.ValidationError({"threshold": [f"Send `threshold` or `{self.rate_field}`, not both."]})
        return attrs


class OneThresholdExtension(OpenApiSerializerExtension):
    target_class = OneThreshold
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        # JSON bodies only: the contract test's generator cannot negate a schema holding a binary part
        # (multipart forms), where the server still refuses both with 400.
        files = any(isinstance(field, serializers.FileField) for field in self.target.fields.values())
        if direction == "request" and not files:
            schema["not"] = {"required": ["threshold", self.target.rate_field]}
        return schema


class MatchOutput(serializers.Serializer):
    face_id = serializers.UUIDField()
    asset_id = serializers.CharField()
    subject_id = serializers.CharField(allow_null=True)
    similarity = serializers.FloatField()
    false_match_rate = serializers.FloatField(allow_null=True, help_text=FMR_HELP)


class SearchedFaceOutput(serializers.Serializer):
    bbox = serializers.ListField(child=serializers.FloatField(), allow_null=True,
                                 help_text="[x1, y1, x2, y2]; null when searching by `face_id`")
    det_score = serializers.FloatField(allow_null=True)
    quality = quality_output(allow_null=True)
    pose = pose_output(allow_null=True)
    matches = MatchOutput(many=True)


class SearchLeftOutOutput(serializers.Serializer):
    bbox = serializers.ListField(child=serializers.FloatField())
    det_score = serializers.FloatField()
    size = serializers.FloatField(help_text="the box's shorter side, pixels")
    reason = serializers.CharField(help_text=LEFT_OUT_REASONS_HELP)
    quality = quality_output(allow_null=True)
    pose = pose_output(allow_null=True)


class DecisionFields(serializers.Serializer):
    """What decided a 1:N match, in every search answer."""

    threshold = serializers.FloatField(help_text="The minimum similarity (or subject score) of a match")
    threshold_source = serializers.ChoiceField(choices=[TARGET_FPIR, FIXED, DEFAULT_NO_CALIBRATION],
                                               help_text=THRESHOLD_SOURCE_HELP)
    target_fpir = serializers.FloatField(allow_null=True,
                                         help_text="The target FPIR the threshold was computed for (null unless "
                                                   "`threshold_source` is `target_fpir`)")
    gallery_size = serializers.IntegerField(
        allow_null=True, help_text="N: the faces searched (the collection's, or those `subject_ids` / `asset_ids` "
        "select; subjects for a person search) that the threshold was computed for; counted up to "
        "SEARCH_GALLERY_COUNT_MAX. Null unless `threshold_source` is `target_fpir`")
    quality_filter = serializers.CharField(help_text="The quality filter the query faces went through")


class SearchOutput(DecisionFields):
    model_id = serializers.CharField()
    collection = serializers.CharField(help_text="The collection searched")
    faces = SearchedFaceOutput(many=True)
    left_out = SearchLeftOutOutput(many=True, help_text="Faces of the photo not searched, and why")
    timings_ms = serializers.DictField(child=serializers.FloatField())


SEARCH_EXAMPLE = {
    "model_id": "scrfd500m-mobilefacenet:c5d767ed", "collection": "default", "threshold": 0.4134,
    "threshold_source": "target_fpir", "target_fpir": 0.01, "gallery_size": 100, "quality_filter": "LOW",
    "faces": [{"bbox": [245.3, 118.9, 402.7, 331.2], "det_score": 0.8912,
               "quality": {"sharpness": 0.8123, "brightness": 0.4671},
               "pose": {"yaw": 2.3, "pitch": -4.1, "roll": -0.5},
               "matches": [{"face_id": "7c0e5f6e-1f0b-4a51-9a55-3f1f7f3b9d11", "asset_id": "photos/alice-1.jpg",
                            "subject_id": "alice", "similarity": 0.6931, "false_match_rate": 1.2e-08}]}],
    "left_out": [{"bbox": [20.0, 30.5, 44.0, 60.0], "det_score": 0.7012, "size": 24.0, "reason": "too_small",
                  "quality": {"sharpness": 0.12, "brightness": 0.41},
                  "pose": {"yaw": 12.0, "pitch": 3.5, "roll": 1.0}}],
    "timings_ms": {"decode": 4.1, "detect_embed": 38.2, "search": 3.3, "vector_search": 1.2, "rerank": 0.6},
}


class SearchApi(TenantAPIView):
    """Search the tenant's faces by a photo, or by one of its indexed face ids."""

    allowed_roles = ("admin", "searcher")

    class SearchInput(OneThreshold, InputSerializer):
        exactly_one_of = ("image", "face_id")

        image = ImageSourceInput(required=False, help_text="JSON image; or send multipart field `image`")
        face_id = serializers.UUIDField(required=False, help_text="Search by an indexed face instead")
        faces = serializers.ChoiceField(choices=["all", "largest"], default="all",
                                        help_text="Search with every face in the image, or the largest")
        max_faces = serializers.IntegerField(min_value=1, max_value=100, default=10)
        top_k = serializers.IntegerField(min_value=1, max_value=100, default=10)
        target_fpir = target_fpir_field()
        threshold = serializers.FloatField(min_value=-1.0, max_value=1.0, required=False,
                                           help_text=FIXED_THRESHOLD_HELP)
        quality_filter = quality_filter_field(default=NONE, what="query faces (they are not searched)")
        subject_ids = serializers.ListField(child=serializers.CharField(max_length=255), required=False,
                                            max_length=1000)
        asset_ids = serializers.ListField(child=serializers.CharField(max_length=255), required=False,
                                          max_length=1000)
        group_by = serializers.ChoiceField(choices=["subject"], required=False, allow_null=True,
                                           help_text="subject: only the best face per subject")
        collection = collection_field(help_text="The collection searched; absent: `default` (by `face_id`: "
                                                "the face's own collection)")

    class SearchUpload(OneThreshold, serializers.Serializer):
        """The multipart form: the photo as a file, the options as form fields."""

        exactly_one_of = ("image", "face_id")

        image = serializers.FileField(required=False, help_text="The photo (JPEG, PNG or WebP)")
        face_id = serializers.UUIDField(required=False, help_text="Search by an indexed face instead")
        faces = serializers.ChoiceField(choices=["all", "largest"], default="all")
        max_faces = serializers.IntegerField(min_value=1, max_value=100, default=10)
        top_k = serializers.IntegerField(min_value=1, max_value=100, default=10)
        target_fpir = target_fpir_field()
        threshold = serializers.FloatField(min_value=-1.0, max_value=1.0, required=False)
        quality_filter = quality_filter_field(default=NONE, what="query faces")
        subject_ids = serializers.ListField(child=serializers.CharField(max_length=255), required=False,
                                            max_length=1000)
        asset_ids = serializers.ListField(child=serializers.CharField(max_length=255), required=False,
                                          max_length=1000)
        group_by = serializers.ChoiceField(choices=["subject"], required=False)
        collection = collection_field()

    @extend_schema(request={"application/json": SearchInput, "multipart/form-data": SearchUpload},
                   responses={200: SearchOutput, **IMAGE_ERRORS, **COLLECTION_ERRORS, 422: CALIBRATION_ERROR},
                   examples=[OpenApiExample("A match at a calibrated threshold", value=SEARCH_EXAMPLE,
                                            response_only=True, status_codes=["200"]),
                             OpenApiExample("A stricter target, good query faces only",
                                            value={"image": {"url": "https://example.com/photo.jpg"},
                                                   "target_fpir": 0.001, "quality_filter": "MEDIUM"},
                                            request_only=True)],
                   summary="Search by photo (1:N) or by face id")
    def post(self, request):
        """Find who is in a photo: each face found (all, or the largest) is matched against your indexed
        faces, and the matches at or above the threshold come back best first, at most `top_k` per face.
        The threshold follows from `target_fpir` (default 1 %: the chance that someone who is not in the
        collection gets a match) and the number of faces searched, through the model pack's calibration;
        or send a fixed `threshold` (not both). The answer says the threshold used, how it was chosen
        (`threshold_source`) and for how many faces (`gallery_size`); each match carries its estimated
        `false_match_rate`, and each query face its `quality` and `pose`. `quality_filter` leaves out
        query faces below a quality bar (`left_out`, with the reason).
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
            top_k=options["top_k"], threshold=options.get("threshold"), target_fpir=options.get("target_fpir"),
            quality_filter=options["quality_filter"], largest_only=options["faces"] == "largest",
            max_faces=options["max_faces"],
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
    false_match_rate = serializers.FloatField(allow_null=True, help_text=FMR_HELP)
    match = serializers.BooleanField()
    faces_found = serializers.IntegerField()
    error = serializers.CharField(allow_null=True)


class VerificationDecisionFields(serializers.Serializer):
    """What decided a 1:1 match, in compare's and verify's answers."""

    threshold = serializers.FloatField(help_text="The minimum similarity (or subject score) of a match")
    threshold_source = serializers.ChoiceField(choices=[MAX_FALSE_MATCH_RATE, FIXED, DEFAULT],
                                               help_text=VERIFY_SOURCE_HELP)
    max_false_match_rate = serializers.FloatField(
        allow_null=True, help_text="The false-match rate the threshold was computed for (null unless "
                                   "`threshold_source` is `max_false_match_rate`)")


class CompareOutput(VerificationDecisionFields):
    model_id = serializers.CharField()
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

    class CompareInput(OneThreshold, InputSerializer):
        rate_field = "max_false_match_rate"

        target = ImageSourceInput(required=False, help_text="JSON image; or multipart field `target`")
        references = serializers.ListField(child=serializers.DictField(), required=False, max_length=10,
                                           help_text="[{name, image}]; or multipart files `reference`")
        threshold = serializers.FloatField(min_value=-1.0, max_value=1.0, required=False)
        max_false_match_rate = max_fmr_field()

    class CompareJson(OneThreshold, InputSerializer):
        """The JSON body as documented: a target and 1-10 named references."""

        rate_field = "max_false_match_rate"

        target = ImageSourceInput()
        references = serializers.ListField(child=CompareReferenceInput(), min_length=1, max_length=10)
        threshold = serializers.FloatField(min_value=-1.0, max_value=1.0, required=False,
                                           help_text="A fixed minimum cosine similarity (not with "
                                                     "`max_false_match_rate`); default FACE_MATCH_THRESHOLD")
        max_false_match_rate = max_fmr_field()

    class CompareUpload(OneThreshold, serializers.Serializer):
        """The multipart form: the target and 1-10 `reference` files (each named by its file name)."""

        rate_field = "max_false_match_rate"

        target = serializers.FileField(help_text="The photo to compare")
        reference = serializers.ListField(child=serializers.FileField(), min_length=1, max_length=10,
                                          help_text="The reference photos: repeat the part once per photo")
        threshold = serializers.FloatField(min_value=-1.0, max_value=1.0, required=False)
        max_false_match_rate = max_fmr_field()

    @extend_schema(request={"application/json": CompareJson, "multipart/form-data": CompareUpload},
                   responses={200: CompareOutput, **IMAGE_ERRORS, 422: CALIBRATION_ERROR},
                   examples=[OpenApiExample("At a false-match rate of 1 in 10,000", value={
                       "target": {"url": "https://example.com/a.jpg"},
                       "references": [{"name": "badge", "image": {"url": "https://example.com/b.jpg"}}],
                       "max_false_match_rate": 0.0001}, request_only=True)],
                   summary="Compare a photo with 1-10 reference photos (1:1 / 1:few), stateless")
    def post(self, request):
        """Compare one photo's largest face with 1-10 reference photos (1:1 or 1:few) and say, per
        reference, the similarity, its estimated `false_match_rate`, and whether it is a `match`: at
        `max_false_match_rate` (the threshold follows from the pack's calibration), or at a fixed `threshold`
        (not both), by default `FACE_MATCH_THRESHOLD`; `threshold_source` says which. Stateless: nothing is
        stored, searched or logged, so the `comparer` role may use it without access to your indexed faces.
        A reference that cannot be read gets its own `error` instead of failing the request.

        Example: `curl -H "Authorization: Bearer $KEY" -F target=@a.jpg -F reference=@b.jpg .../v1/compare`
        """
        data = self.CompareInput(data=plain_data(request))
        data.is_valid(raise_exception=True)
        target = image_from(request, "target", data.validated_data)
        references = self._references(request, data.validated_data.get("references") or [])
        if target is None or not references:
            raise InvalidRequest("Send a `target` image and 1-10 `references`.")
        result = search_service.compare(tenant_id=self.tenant_id, target=target, references=references,
                                        threshold=data.validated_data.get("threshold"),
                                        max_false_match_rate=data.validated_data.get("max_false_match_rate"),
                                        actor=self.actor())
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
    false_match_rate = serializers.FloatField(allow_null=True, help_text=FMR_HELP + " (at the subject score)")
    faces = serializers.IntegerField(help_text="How many of its faces entered the score")
    best_face_id = serializers.UUIDField()
    best_similarity = serializers.FloatField()


class PersonSearchedFaceOutput(serializers.Serializer):
    bbox = serializers.ListField(child=serializers.FloatField())
    det_score = serializers.FloatField()
    quality = quality_output(allow_null=True)
    pose = pose_output(allow_null=True)
    subjects = SubjectMatchOutput(many=True)


class PersonSearchOutput(DecisionFields):
    model_id = serializers.CharField()
    collection = serializers.CharField()
    method = serializers.CharField(help_text="How face similarities become a subject score")
    faces = PersonSearchedFaceOutput(many=True)
    left_out = SearchLeftOutOutput(many=True, help_text="Faces of the photo not searched, and why")
    timings_ms = serializers.DictField(child=serializers.FloatField())


class PersonSearchInput(OneThreshold, InputSerializer):
    image = ImageSourceInput(required=False, help_text="JSON image; or send multipart field `image`")
    collection = collection_field()
    faces = serializers.ChoiceField(choices=["all", "largest"], default="all")
    max_faces = serializers.IntegerField(min_value=1, max_value=100, default=10)
    top_k = serializers.IntegerField(min_value=1, max_value=100, default=10, help_text="Subjects per face")
    target_fpir = target_fpir_field(help_text=TARGET_FPIR_HELP.replace("number of faces searched",
                                                                       "number of subjects in the collection"))
    threshold = serializers.FloatField(min_value=-1.0, max_value=1.0, required=False,
                                       help_text="A fixed minimum subject score instead of `target_fpir` (not both)")
    quality_filter = quality_filter_field(default=NONE, what="query faces (they are not searched)")


class PersonSearchJson(PersonSearchInput):
    """The JSON body as documented: the image is required (the view reads either form with PersonSearchInput)."""

    image = ImageSourceInput(help_text="Exactly one of base64, url (https), s3 {bucket, key}")


class PersonSearchUpload(PersonSearchInput):
    image = serializers.FileField(help_text="The photo (JPEG, PNG or WebP)")


def options_and_image(request, input_class: type[serializers.Serializer]) -> tuple[dict, ImageSource]:
    """The validated fields and the photo (multipart `image` or JSON `image`) a person route needs."""
    data = input_class(data=plain_data(request))
    data.is_valid(raise_exception=True)
    source = image_from(request, "image", data.validated_data)
    if source is None:
        raise InvalidRequest("Send an image (multipart `image` or JSON `image`).")
    return data.validated_data, source


class PersonSearchApi(TenantAPIView):
    """Search the collection's subjects (persons) by a photo: Rekognition's SearchUsersByImage."""

    allowed_roles = ("admin", "searcher")

    @extend_schema(request={"application/json": PersonSearchJson, "multipart/form-data": PersonSearchUpload},
                   responses={200: PersonSearchOutput, **IMAGE_ERRORS, **COLLECTION_ERRORS, 422: CALIBRATION_ERROR},
                   summary="Search for persons (subjects) by photo")
    def post(self, request):
        """Like `/v1/search`, but the answer ranks subjects, not faces: each face found in the photo gets
        the collection's subjects whose faces look most like it, each with a subject score aggregated over
        its faces (`method`), at or above the threshold. The threshold follows from `target_fpir` and the
        number of subjects in the collection (`gallery_size`), as for `/v1/search`, or is a fixed
        `threshold`. Faces without a subject are not persons and never appear. The photo is processed in
        memory and forgotten.

        Example: `curl -H "Authorization: Bearer $KEY" -F image=@photo.jpg .../v1/search/subjects`
        """
        options, source = options_and_image(request, PersonSearchInput)
        query = PersonQuery(top_k=options["top_k"], threshold=options.get("threshold"),
                            target_fpir=options.get("target_fpir"), quality_filter=options["quality_filter"],
                            largest_only=options["faces"] == "largest", max_faces=options["max_faces"],
                            collection=options.get("collection"))
        result = person_search.search_subjects_by_image(tenant_id=self.tenant_id, source=source, query=query,
                                                        actor=self.actor())
        return Response(PersonSearchOutput(result.as_dict()).data)


class VerifyOutput(VerificationDecisionFields):
    model_id = serializers.CharField()
    collection = serializers.CharField()
    subject_id = serializers.CharField()
    score = serializers.FloatField(help_text="The subject score of the photo's largest face (see `method`)")
    false_match_rate = serializers.FloatField(allow_null=True, help_text=FMR_HELP + " (at the score)")
    match = serializers.BooleanField(help_text="score >= threshold")
    method = serializers.CharField()
    faces_compared = serializers.IntegerField(help_text="The subject's enrolled faces compared")
    best_face_id = serializers.UUIDField()
    best_similarity = serializers.FloatField()


class VerifyInput(OneThreshold, InputSerializer):
    rate_field = "max_false_match_rate"

    image = ImageSourceInput(required=False, help_text="JSON image; or send multipart field `image`")
    subject_id = serializers.CharField(max_length=255)
    collection = collection_field()
    threshold = serializers.FloatField(min_value=-1.0, max_value=1.0, required=False,
                                       help_text="A fixed minimum score (not with `max_false_match_rate`); "
                                                 "default FACE_MATCH_THRESHOLD, the 1:1 operating point")
    max_false_match_rate = max_fmr_field()


class VerifyJson(VerifyInput):
    """The JSON body as documented: the image is required (the view reads either form with VerifyInput)."""

    image = ImageSourceInput(help_text="Exactly one of base64, url (https), s3 {bucket, key}")


class VerifyUpload(VerifyInput):
    image = serializers.FileField(help_text="The photo (JPEG, PNG or WebP)")


class VerifyApi(TenantAPIView):
    """Verify a photo against a stored person (Azure's face-to-person verify), 1:1, storing nothing."""

    allowed_roles = ("admin", "searcher")

    @extend_schema(request={"application/json": VerifyJson, "multipart/form-data": VerifyUpload},
                   responses={200: VerifyOutput, **IMAGE_ERRORS, **COLLECTION_ERRORS, 422: CALIBRATION_ERROR},
                   summary="Verify a photo against a subject's enrolled faces (1:1)")
    def post(self, request):
        """Is the largest face of the photo the subject `subject_id`? It is compared with every enrolled face
        of the subject in the collection and the similarities aggregated into one `score`; `match` when it
        reaches the threshold: a fixed `threshold`, or the one `max_false_match_rate` gives (as for compare),
        by default `FACE_MATCH_THRESHOLD`. Nothing is stored; `404` when the subject has no faces in the collection.

        Example: `curl -H "Authorization: Bearer $KEY" -F image=@selfie.jpg -F subject_id=alice .../v1/verify`
        """
        options, source = options_and_image(request, VerifyInput)
        result = person_search.verify_subject(tenant_id=self.tenant_id, source=source,
                                              subject_id=options["subject_id"], collection=options.get("collection"),
                                              threshold=options.get("threshold"),
                                              max_false_match_rate=options.get("max_false_match_rate"),
                                              actor=self.actor())
        return Response(VerifyOutput(result).data)
