"""POST /v1/detect: the faces of a photo, with boxes, landmarks, quality and pose. Stores and searches nothing."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from embeddings.api import IMAGE_ERRORS, ImageSourceInput, image_from, plain_data
from embeddings.detect import services
from embeddings.store.quality_fields import LEFT_OUT_REASONS_HELP, pose_output, quality_filter_field, quality_output
from faceservice.api.fields import InputSerializer
from faceservice.api.views import TenantAPIView
from faceservice.errors import InvalidRequest


class DetectedFaceOutput(serializers.Serializer):
    bbox = serializers.ListField(child=serializers.FloatField(), help_text="[x1, y1, x2, y2] in pixels")
    landmarks = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()),
                                      help_text="[x, y] of the eyes, the nose tip and the mouth corners")
    det_score = serializers.FloatField()
    size = serializers.FloatField(help_text="the box's shorter side, pixels")
    quality = quality_output()
    pose = pose_output()


class LeftOutFaceOutput(DetectedFaceOutput):
    reason = serializers.CharField(help_text=LEFT_OUT_REASONS_HELP)


class DetectOutput(serializers.Serializer):
    model_id = serializers.CharField()
    image_width = serializers.IntegerField()
    image_height = serializers.IntegerField()
    quality_filter = serializers.CharField()
    faces = DetectedFaceOutput(many=True)
    left_out = LeftOutFaceOutput(many=True)


EXAMPLE_FACE = {"bbox": [245.3, 118.9, 402.7, 331.2],
                "landmarks": [[290.1, 204.5], [360.8, 203.9], [326.4, 246.0], [296.7, 284.3], [355.2, 283.8]],
                "det_score": 0.8912, "size": 157.4, "quality": {"sharpness": 0.8123, "brightness": 0.4671},
                "pose": {"yaw": 2.3, "pitch": -4.1, "roll": -0.5}}
EXAMPLE = {"model_id": "scrfd500m-mobilefacenet:c5d767ed", "image_width": 640, "image_height": 480,
           "quality_filter": "HIGH", "faces": [EXAMPLE_FACE],
           "left_out": [{**EXAMPLE_FACE, "bbox": [20.0, 30.5, 44.0, 60.0], "size": 24.0, "reason": "too_small",
                         "quality": {"sharpness": 0.12, "brightness": 0.41}}]}


class DetectApi(TenantAPIView):
    """Find the faces of a photo and say how usable each is; nothing is stored or searched."""

    allowed_roles = ("admin", "searcher", "comparer")

    class DetectInput(InputSerializer):
        image = ImageSourceInput(required=False, help_text="JSON image; or send multipart field `image`")
        max_faces = serializers.IntegerField(min_value=1, max_value=100, default=100)
        min_face_size = serializers.FloatField(min_value=0, max_value=10_000, default=0,
                                               help_text="pixels, the box's shorter side")
        quality_filter = quality_filter_field(default="NONE", what="faces")

    class DetectUpload(serializers.Serializer):
        """The multipart form: the photo as a file, the options as form fields."""

        image = serializers.FileField(help_text="The photo (JPEG, PNG or WebP)")
        max_faces = serializers.IntegerField(min_value=1, max_value=100, default=100)
        min_face_size = serializers.FloatField(min_value=0, max_value=10_000, default=0)
        quality_filter = quality_filter_field(default="NONE", what="faces")

    @extend_schema(request={"application/json": DetectInput, "multipart/form-data": DetectUpload},
                   responses={200: DetectOutput, **IMAGE_ERRORS},
                   examples=[OpenApiExample("One face kept, one too small", value=EXAMPLE, response_only=True,
                                            status_codes=["200"]),
                             OpenApiExample("By URL", value={"image": {"url": "https://example.com/team.jpg"},
                                                             "quality_filter": "HIGH"}, request_only=True)],
                   summary="Detect faces: boxes, landmarks, quality and pose (stores nothing)")
    def post(self, request):
        """Every face of a photo, largest first: its box, five landmarks, detection score, size, quality
        (sharpness, brightness) and pose (yaw, pitch, roll). With `quality_filter`, faces below that
        level's bar are listed in `left_out` with the reason, as indexing would leave them out. Nothing
        is stored, searched or logged: the photo is processed in memory and forgotten (the audit log
        records that a detection happened, never the image). Send the photo as multipart file `image`,
        or as JSON `image` (base64, an https URL or an S3 object). Limits: as for search.

        Example: `curl -H "Authorization: Bearer $KEY" -F image=@team.jpg -F quality_filter=HIGH .../v1/detect`
        """
        data = self.DetectInput(data=plain_data(request))
        data.is_valid(raise_exception=True)
        options = data.validated_data
        source = image_from(request, "image", options)
        if source is None:
            raise InvalidRequest("Send an image: multipart file `image` or JSON `image`.")
        query = services.DetectQuery(max_faces=options["max_faces"], quality_filter=options["quality_filter"],
                                     min_face_size=options["min_face_size"])
        result = services.detect_faces(tenant_id=self.tenant_id, source=source, query=query, actor=self.actor())
        return Response(DetectOutput(result).data)
