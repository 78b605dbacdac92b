"""API pieces that the embeddings packages' views share: image fields and their documented errors.

Views only; nothing below the API layer imports this module.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from embeddings.engine import ImageTooLarge, NotAnImage, UnsupportedFormat
from embeddings.engine.intake import sniff_format
from embeddings.image_sources import ImageSource, decode_base64, image_limits, uploaded_source
from faceservice.api.fields import FormFields, InputSerializer

IMAGE_ERRORS = {
    400: OpenApiResponse(description="Invalid request (code invalid_request / malformed_request)"),
    404: OpenApiResponse(description="Unknown or another tenant's id (code not_found)"),
    413: OpenApiResponse(description="Image or body too large (image_too_large / request_too_large)"),
    415: OpenApiResponse(description="Not an image, or a format we do not accept"),
    422: OpenApiResponse(description="Corrupt image, fetch refused/failed, no face found"),
    429: OpenApiResponse(description="Rate limited (Retry-After says when to try again)"),
    503: OpenApiResponse(description="Face models are not installed (models_unavailable), or a backing service is "
                                 "unreachable for a moment (service_unavailable: retry after `Retry-After`)"),
}


class S3LocationInput(InputSerializer):
    bucket = serializers.CharField(max_length=63)
    key = serializers.CharField(max_length=1024)


class ImageSourceInput(InputSerializer):
    """An image given inline (base64 or a data URI), by URL, or as an S3 object."""

    exactly_one_of = ("base64", "url", "s3")

    # Blank is allowed so that an empty image gets the engine's own error (not_an_image).
    base64 = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                   help_text="Base64 bytes or a data: URI")
    url = serializers.URLField(required=False, max_length=2048, help_text="An http(s) URL we may fetch")
    s3 = S3LocationInput(required=False)

    def validate(self, attrs):
        given = [name for name in ("base64", "url", "s3") if attrs.get(name) is not None]
        if len(given) != 1:
            raise serializers.ValidationError("give exactly one of base64, url or s3")
        return attrs

    @staticmethod
    def to_source(attrs: dict) -> ImageSource:
        if attrs.get("base64") is not None:
            return ImageSource(data=within_image_limit(decode_base64(attrs["base64"])))
        if attrs.get("url"):
            return ImageSource(url=attrs["url"])
        return ImageSource(s3_bucket=attrs["s3"]["bucket"], s3_key=attrs["s3"]["key"])


def within_image_limit(data: bytes) -> bytes:
    """Decoded inline bytes, refused at once when over MAX_IMAGE_BYTES.

    decode_base64 refuses early from the encoded length, an estimate that lets an
    image a few bytes over the limit through (padding, whitespace): an index job then
    accepted it (202) and its worker failed it later. The decoded length is exact,
    the same number the worker's decode checks.
    """
    if len(data) > settings.MAX_IMAGE_BYTES:
        raise ImageTooLarge(f"the image is larger than {settings.MAX_IMAGE_BYTES} bytes")
    return data


def image_from(request, field: str, data: dict):
    """An ImageSource from a multipart file field or a JSON image object."""
    upload = request.FILES.get(field)
    if upload is not None:
        return uploaded_source(upload)
    if data.get(field):
        return ImageSourceInput.to_source(data[field])
    return None


def checked_upload(upload) -> bytes:
    """An uploaded image's bytes, refused at once where its first bytes already say the worker would.

    Empty, not an image, or a format we do not accept: checked from the magic
    bytes only (the full decode, with the pixel limit, runs on the worker). A
    file over MAX_IMAGE_BYTES raises image_too_large on read (faceservice/api/uploads.py).
    """
    data = upload.read()
    kind = sniff_format(data) if data else None
    if kind is None:
        raise NotAnImage("the file is not a recognised image (JPEG, PNG or WebP expected)")
    accepted = image_limits().formats
    if kind not in accepted:
        raise UnsupportedFormat(f"{kind} images are not accepted; send one of: {', '.join(sorted(accepted))}")
    return data


def plain_data(request) -> dict:
    """The non-file fields of the request as a plain dict (multipart QueryDicts hold lists).

    A form's fields come back as FormFields: text that typed fields may parse, where a
    JSON body's values must already have their documented types (faceservice/api/fields.py).
    """
    data = request.data
    if not hasattr(data, "getlist"):
        return data
    plain = FormFields()
    for key in data:
        if key in request.FILES:
            continue
        values = data.getlist(key)
        plain[key] = values if key.endswith("_ids") else values[-1]
    return plain
