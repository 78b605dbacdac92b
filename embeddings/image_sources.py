"""Where an image comes from (upload, base64, URL, S3) and getting its bytes, in memory.

Shared by the web API (search, compare) and the indexing workers, so every
path applies the same limits, the same SSRF guard and the same error codes.
The request field that names an image is embeddings/api.py's ImageSourceInput.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from django.conf import settings

from embeddings.engine import ImageLimits, ImageTooLarge, NotAnImage
from faceservice.outbound.http import Timeouts, fetch_image_url
from faceservice.outbound.s3 import fetch_s3_object

DATA_URI = re.compile(r"^data:image/[a-z0-9.+-]+;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class ImageSource:
    """Exactly one of: inline bytes, an http(s) URL, or an S3 bucket + key."""

    data: bytes | None = None
    url: str | None = None
    s3_bucket: str | None = None
    s3_key: str | None = None

    def __repr__(self) -> str:  # never print image bytes
        if self.data is not None:
            return f"ImageSource(<{len(self.data)} bytes>)"
        return f"ImageSource(url={self.url!r})" if self.url else f"ImageSource(s3={self.s3_bucket!r})"

    @property
    def kind(self) -> str:
        return "inline" if self.data is not None else "url" if self.url else "s3"


def image_limits() -> ImageLimits:
    return ImageLimits(max_bytes=settings.MAX_IMAGE_BYTES, max_pixels=settings.MAX_IMAGE_PIXELS)


def decode_base64(text: str) -> bytes:
    payload = DATA_URI.sub("", text.strip(), count=1)
    # Refuse early rather than decode megabytes we will throw away.
    if len(payload) * 3 // 4 > settings.MAX_IMAGE_BYTES + 3:
        raise ImageTooLarge(f"the image is larger than {settings.MAX_IMAGE_BYTES} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise NotAnImage("the base64 image data is not valid base64") from None


def fetch_bytes(source: ImageSource) -> bytes:
    """The image's bytes, read into memory with the size limit applied."""
    if source.data is not None:
        return source.data
    if source.url:
        return fetch_image_url(source.url, max_bytes=settings.MAX_IMAGE_BYTES,
                               timeout=Timeouts.of(settings.FETCH_TIMEOUT_SECONDS),
                               allowed_networks=settings.FETCH_ALLOWED_NETWORKS)
    return fetch_s3_object(source.s3_bucket, source.s3_key, max_bytes=settings.MAX_IMAGE_BYTES,
                           allowed_buckets=settings.S3_ALLOWED_BUCKETS or None)


def uploaded_source(uploaded_file) -> ImageSource:
    """A multipart upload (already in memory: see faceservice/api/uploads.py)."""
    return ImageSource(data=uploaded_file.read())
