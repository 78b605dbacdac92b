"""Errors of the face engine and image intake.

Every failure the engine reports derives from :class:`ImageError` and carries a
stable ``code`` (safe to show to API clients and to match on in code) and an
``http_status`` the API layer can answer with. Messages never contain image
bytes, URLs' credentials or other secrets: they are safe to return and to log.
"""

from __future__ import annotations


class ImageError(Exception):
    """Base of every engine / intake failure."""

    code: str = "image_error"
    http_status: int = 422
    default_message = "the image could not be processed"
    # False when the detailed message is for operators (logs) only.
    message_is_public = True

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0])

    @property
    def public_message(self) -> str:
        return self.message if self.message_is_public else self.default_message

    def as_dict(self) -> dict[str, object]:
        """The shape an API error body can use directly."""
        return {"code": self.code, "message": self.public_message}


# Alias: the same base also covers model and fetch failures.
EngineError = ImageError


class NotAnImage(ImageError):
    code = "not_an_image"
    http_status = 415
    default_message = "the data is not an image"


class UnsupportedFormat(ImageError):
    code = "unsupported_format"
    http_status = 415
    default_message = "this image format is not accepted"


class ImageTooLarge(ImageError):
    code = "image_too_large"
    http_status = 413
    default_message = "the image is larger than the byte limit"


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


class FetchRefused(ImageError):
    """The URL (or a redirect) points somewhere we never connect to."""

    code = "fetch_refused"
    http_status = 422
    default_message = "the URL is not allowed"


class FetchFailed(ImageError):
    code = "fetch_failed"
    http_status = 422
    default_message = "the URL could not be fetched"


class FetchTimeout(ImageError):
    # 504: the remote server did not answer in time; a client may retry, unlike
    # the 422 family, which will fail the same way again.
    code = "fetch_timeout"
    http_status = 504
    default_message = "fetching the URL timed out"


class S3ObjectNotFound(ImageError):
    # 422 rather than 404: the request names an object that does not exist; a
    # 404 would read as "this API resource does not exist".
    code = "s3_object_not_found"
    http_status = 422
    default_message = "the S3 object does not exist"


class ModelsUnavailable(ImageError):
    """The message names server folders: for operators' logs, not for clients."""

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
    FetchRefused,
    FetchFailed,
    FetchTimeout,
    S3ObjectNotFound,
    ModelsUnavailable,
)
