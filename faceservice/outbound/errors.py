"""Errors of outbound requests: image URLs, S3 objects, webhook deliveries.

Each is an ImageError (faceservice/errors.py): the fetch client exists to get
images, and code that handles an image (compare, an index job's assets)
catches these and the engine's errors together. A body over the byte limit is
faceservice.errors.ImageTooLarge. Messages name the host or bucket at most,
never the full URL (query strings can carry tokens) or credentials.
"""

from __future__ import annotations

from faceservice.errors import ImageError, ImageTooLarge


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


__all__ = ["FetchFailed", "FetchRefused", "FetchTimeout", "ImageTooLarge", "S3ObjectNotFound"]
