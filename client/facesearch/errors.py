"""Exceptions: every error answer of the API becomes an `APIError` carrying its code and request id."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx


class FaceSearchError(Exception):
    """Base of everything this package raises on purpose."""


class APIError(FaceSearchError):
    """The service answered an error: `{"error": {code, message, request_id, details?}}`.

    `code` is the API's stable error code (docs/API.md's table); branch on it, not on `message`.
    Quote `request_id` when asking for support.
    """

    def __init__(self, *, status: int, code: str, message: str, request_id: str | None = None,
                 details: Any = None, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (request id {request_id})" if request_id else ""))
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.details = details
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, response: httpx.Response) -> APIError:
        """The error of a response, also when a proxy or the WSGI server answered it in HTML or plain text."""
        request_id = response.headers.get("X-Request-ID")
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error.get("message", ""))
            request_id = error.get("request_id") or request_id
            details = error.get("details")
        except (ValueError, KeyError, TypeError):
            code, message, details = f"http_{response.status_code}", _text_of(response), None
        kind = _BY_STATUS.get(response.status_code, ServerError if response.status_code >= 500 else APIError)
        return kind(status=response.status_code, code=code, message=message, request_id=request_id,
                    details=details, retry_after=retry_after_seconds(response))


class InvalidRequest(APIError):
    """400: a field is missing or wrong (`details` says which)."""


class AuthenticationFailed(APIError):
    """401: no key, or an unknown, revoked or expired key."""


class PermissionDenied(APIError):
    """403: the key's roles do not allow this."""


class NotFound(APIError):
    """404: no such id in your tenant."""


class Conflict(APIError):
    """409: e.g. cancelling a job that has already finished."""


class RateLimited(APIError):
    """429 after the client's retries ran out; `retry_after` says when to try again."""


class ServerError(APIError):
    """5xx (503 `models_unavailable` included) after the client's retries ran out."""


_BY_STATUS: dict[int, type[APIError]] = {400: InvalidRequest, 401: AuthenticationFailed, 403: PermissionDenied,
                                         404: NotFound, 409: Conflict, 429: RateLimited}


class WaitTimeout(FaceSearchError):
    """A `wait_for_*` method gave up before the work finished; the work itself goes on."""


class JobTimeout(WaitTimeout):
    """`wait_for_job` gave up before the job finished; the job itself keeps running."""

    def __init__(self, job: dict) -> None:
        super().__init__(f"index job {job['id']} is still {job['state']} ({job['progress']:.0%} done)")
        self.job = job


class DeletionTimeout(WaitTimeout):
    """`wait_for_deletion` gave up before the deletion finished; the worker still carries it out."""

    def __init__(self, deletion: dict) -> None:
        super().__init__(f"deletion {deletion['id']} is still {deletion['status']}")
        self.deletion = deletion


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date (RFC 9110 allows both)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _text_of(response: httpx.Response) -> str:
    text = response.text.strip() if response.content else ""
    return (text[:200] or response.reason_phrase or "error").replace("\n", " ")
