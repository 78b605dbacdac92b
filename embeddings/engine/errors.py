"""Errors of the face engine and image intake.

Every failure the engine reports is an :class:`ImageError` (faceservice/errors.py,
shared with outbound fetching) and carries a stable ``code`` (safe to show to API
clients and to match on in code) and an ``http_status`` the API layer answers
with. Messages never contain image bytes or other secrets: they are safe to
return and to log.
"""

from __future__ import annotations

from faceservice.errors import ImageError, ImageTooLarge


class NotAnImage(ImageError):
    code = "not_an_image"
    http_status = 415
    default_message = "the data is not an image"


class UnsupportedFormat(ImageError):
    code = "unsupported_format"
    http_status = 415
    default_message = "this image format is not accepted"


class TooManyPixels(ImageError):
    # 413 rather than 422: like image_too_large, the client must send a smaller
    # image; the request itself is well formed.
    code = "too_many_pixels"
    http_status = 413
    default_message = "the image has more pixels than the limit"


class CorruptImage(ImageError):
    code = "corrupt_image"
    http_status = 422
    default_message = "the image data is corrupt or truncated"


class ModelsUnavailable(ImageError):
    """The model pack is missing or unreadable; the message says which folders were searched.

    That message names server paths, so it is for operators only: the API's
    503 answer, as_dict() and an index job's asset results hold default_message,
    and the API's error handler logs the detailed one (faceservice/api/errors.py).
    """

    code = "models_unavailable"
    http_status = 503
    default_message = "the face models are not available"
    message_is_public = False


ALL_ERRORS: tuple[type[ImageError], ...] = (
    NotAnImage,
    UnsupportedFormat,
    ImageTooLarge,
    TooManyPixels,
    CorruptImage,
    ModelsUnavailable,
)

__all__ = ["ALL_ERRORS", "CorruptImage", "ImageError", "ImageTooLarge", "ModelsUnavailable", "NotAnImage",
           "TooManyPixels", "UnsupportedFormat"]
