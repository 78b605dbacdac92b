"""One JSON error shape everywhere: {"error": {"code", "message", "details"?, "request_id"}}.

Rendering only. Services, selectors and the engine raise ApplicationError
subclasses (faceservice/errors.py) that carry their code, HTTP status, public
message and details; this handler renders every one of them from those
attributes, and DRF's own exceptions with the stable codes below. Codes are
stable strings that clients may branch on; messages are for people.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import (
    BadRequest,
    DisallowedHost,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError, connection, transaction
from django.http import Http404, JsonResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt
from kombu.exceptions import OperationalError as BrokerUnavailable
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeout
from rest_framework import exceptions
from rest_framework.response import Response

from faceservice.errors import ApplicationError, MalformedRequest, NotFound, PayloadTooLarge, ServiceUnavailable
from faceservice.request_id import current_request_id

logger = logging.getLogger(__name__)


# DRF's own exceptions, mapped to our stable codes.
DRF_CODES: list[tuple[type[Exception], str]] = [
    (exceptions.ValidationError, "invalid_request"),
    (exceptions.ParseError, "malformed_request"),
    (exceptions.AuthenticationFailed, "invalid_api_key"),
    (exceptions.NotAuthenticated, "unauthenticated"),
    (exceptions.PermissionDenied, "forbidden"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "rate_limited"),
]


def error_body(code: str, message: str, details: Any = None) -> dict:
    body: dict[str, Any] = {"code": code, "message": message, "request_id": current_request_id()}
    if details is not None:
        body["details"] = details
    return {"error": body}


def refused_by_django(exc: Exception) -> ApplicationError | None:
    """Django's own refusal of a request (too large, suspicious, unreadable) as our error, else None.

    Django raises these while it reads a request: inside a DRF view (request.data,
    request.query_params) they reach exception_handler, elsewhere (a console form,
    the CSRF check, the Host check) Django hands them to handler400. Both answer
    through this one mapping, so a refusal reads the same wherever it happens.
    """
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, TooManyFieldsSent):
        return PayloadTooLarge("The request has more form fields or query parameters than this service accepts.")
    if isinstance(exc, TooManyFilesSent):
        return PayloadTooLarge("The request carries more files than this service accepts "
                               "(at most one per asset of an index job).")
    if isinstance(exc, DisallowedHost):
        return MalformedRequest("The Host header names no host this service answers to.")
    if isinstance(exc, UnreadablePostError):
        return MalformedRequest("The request body could not be read to its end.")
    # SuspiciousMultipartForm and Django's other suspicious operations, a multipart body
    # it cannot parse, and BadRequest: the request is malformed, whatever the detail.
    if isinstance(exc, (SuspiciousOperation, MultiPartParserError, BadRequest)):
        return MalformedRequest()
    return None


# A backing service that cannot be reached (down, restarting, a connection cut):
# the request was fine and may be retried. Not our bug, so no 500.
OUTAGES = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeout, BrokerUnavailable)


def outage(exc: BaseException) -> ServiceUnavailable | None:
    """A 503 `service_unavailable` for an unreachable PostgreSQL, Valkey or broker, else None."""
    if isinstance(exc, OUTAGES):
        logger.warning("a backing service is unavailable", extra={"error": type(exc).__name__})
        return ServiceUnavailable()
    return None


def outage_response(error: ServiceUnavailable) -> JsonResponse:
    """The 503 where DRF's handler cannot answer (the request's transaction failed to open or commit)."""
    response = JsonResponse(error_body(error.code, error.public_message), status=error.http_status)
    response["Retry-After"] = str(error.retry_after_seconds)
    return response


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, Http404):
        return NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    return refused_by_django(exc) or outage(exc) or exc


def _roll_back_request() -> None:
    # A request that failed must leave nothing behind (see TenantAPIView).
    if connection.in_atomic_block:
        transaction.set_rollback(True)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    exc = _translate(exc)
    _roll_back_request()
    headers: dict[str, str] = {}
    if isinstance(exc, ServiceUnavailable):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    if isinstance(exc, ApplicationError):
        if not exc.message_is_public:
            # The client gets the generic message; the detail (server paths, say) is for operators.
            logger.warning("error detail for operators", extra={"code": exc.code, "detail": exc.message})
        return Response(error_body(exc.code, exc.public_message, exc.details), status=exc.http_status,
                        headers=headers)
    if isinstance(exc, exceptions.APIException):
        # Ours (ConflictingCredentials, say) name their code in default_code.
        code = next((c for cls, c in DRF_CODES if isinstance(exc, cls)), getattr(exc, "default_code", "error"))
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if isinstance(exc, exceptions.ValidationError):
            return Response(error_body(code, "The request is not valid.", exc.detail),
                            status=exc.status_code, headers=headers)
        if isinstance(exc, exceptions.PermissionDenied):
            return Response(error_body(code, _message(exc), _refusal_details(context)),
                            status=exc.status_code, headers=headers)
        return Response(error_body(code, _message(exc)), status=exc.status_code, headers=headers)
    # Anything else is our bug: log the type and traceback, answer without detail.
    logger.error("unhandled error", exc_info=exc)
    return Response(error_body("internal_error", "Something went wrong on our side."),
                    status=500)


def _refusal_details(context: dict) -> dict | None:
    """The roles that would have been allowed (HasRole remembers them on the request)."""
    refused = getattr(context.get("request"), "refused_role", None)
    return {"allowed_roles": refused["needed"]} if refused else None


def _message(exc: exceptions.APIException) -> str:
    detail = exc.detail
    if isinstance(detail, (list, dict)):
        return "The request is not valid."
    return str(detail)


@csrf_exempt  # else an unknown POST route gets Django's HTML CSRF page instead of this 404
def json_not_found(request, exception=None, *args, **kwargs) -> JsonResponse:
    return JsonResponse(error_body("not_found", "No such endpoint."), status=404)


def json_server_error(request, *args, **kwargs) -> JsonResponse:
    return JsonResponse(error_body("internal_error", "Something went wrong on our side."), status=500)


def json_bad_request(request, exception=None, *args, **kwargs) -> JsonResponse:
    """Django's handler400: what it refused as suspicious or malformed, in our shape and codes."""
    error = refused_by_django(exception) or MalformedRequest()
    return JsonResponse(error_body(error.code, error.public_message), status=error.http_status)


def json_permission_denied(request, exception=None, *args, **kwargs) -> JsonResponse:
    return JsonResponse(error_body("forbidden", "You may not do this."), status=403)
