"""The one domain error base, and the generic errors that services and the engine raise.

An ApplicationError carries everything needed to answer a client: a stable
`code` (clients may branch on it), an `http_status`, a message and optional
`details`. Services and selectors raise them; the API layer renders them all
the same way ({"error": {"code", "message", "details"?, "request_id"}}, see
faceservice/api/errors.py), so no view translates exceptions one by one.

Pure Python on purpose (no Django, no DRF): the face engine, which imports no
Django, derives its errors from here too. Messages never hold image bytes,
embeddings, keys, credentials or full URLs: they are returned and logged.
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """Base of every error this service answers a client with (a bug is not one: that is a 500)."""

    code: str = "error"
    http_status: int = 400
    default_message: str = "The request could not be completed."
    # False: the detailed message is for operators' logs; clients get default_message.
    message_is_public: bool = True

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        super().__init__(message or self.default_message)
        self.details = details

    @property
    def message(self) -> str:
        return str(self.args[0])

    @property
    def public_message(self) -> str:
        return self.message if self.message_is_public else self.default_message

    def as_dict(self) -> dict[str, Any]:
        """The code and message as a client sees them."""
        return {"code": self.code, "message": self.public_message}


class InvalidRequest(ApplicationError):
    code = "invalid_request"
    http_status = 400
    default_message = "The request is not valid."


class MalformedRequest(ApplicationError):
    """The request could not be read: a body that does not parse, or one Django refuses as suspicious."""

    code = "malformed_request"
    http_status = 400
    default_message = "The request could not be read."


class NotFound(ApplicationError):
    # A foreign tenant's id reads the same as a missing one.
    code = "not_found"
    http_status = 404
    default_message = "Not found."


class ServiceUnavailable(ApplicationError):
    """PostgreSQL, Valkey or the broker cannot be reached: nothing went wrong with the request; retry it."""

    code = "service_unavailable"
    http_status = 503
    default_message = "A service this request needs is unavailable for a moment; retry shortly."
    retry_after_seconds = 5


class Conflict(ApplicationError):
    code = "conflict"
    http_status = 409
    default_message = "The request conflicts with the current state."


class PayloadTooLarge(ApplicationError):
    code = "request_too_large"
    http_status = 413
    default_message = "The request body is larger than this service accepts."


class Unprocessable(ApplicationError):
    code = "unprocessable"
    http_status = 422
    default_message = "The request is well-formed but cannot be processed."


# --- Images ---------------------------------------------------------------------------
# Getting an image (faceservice/outbound) and reading it (embeddings/engine) fail
# in ways a caller handles together: compare reports them per reference, an index
# job records them per asset. Both families derive from ImageError, defined here
# because neither package may import the other.

class ImageError(ApplicationError):
    """An image could not be fetched, read or analysed."""

    code = "image_error"
    http_status = 422
    default_message = "the image could not be processed"


class ImageTooLarge(ImageError):
    """Over the byte limit: an upload, a base64 body, a fetched URL or S3 object."""

    code = "image_too_large"
    http_status = 413
    default_message = "the image is larger than the byte limit"
