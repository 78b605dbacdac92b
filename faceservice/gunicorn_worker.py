"""Gunicorn's threaded worker, answering the requests gunicorn refuses itself in our JSON shape.

Gunicorn refuses some requests before Django sees them: a request line over
`limit_request_line` (414), too many or too large headers (431), bytes that are not
HTTP (400). Its own answer is an HTML page; a client of this API must get
`{"error": {"code", "message", "request_id"}}` and an `X-Request-ID` like everywhere
else (docs/API.md, Errors). Gunicorn has no setting or hook for that body: its
workers' `handle_error` is the one place, so this worker overrides it.

Raising the limits instead would not do: a request that is not valid HTTP still gets
HTML, and a limit of 0 means no bound at all on what a client may make us buffer.

Loaded by gunicorn's arbiter (deploy/gunicorn.conf.py `worker_class`), so it imports
no Django: the body is built here, in the same shape as faceservice/api/errors.py.
"""

from __future__ import annotations

import json
import uuid
from ssl import SSLError

from gunicorn import util
from gunicorn.http import errors
from gunicorn.workers.gthread import ThreadWorker

# (error class, HTTP status, our code, message); the first match wins.
REFUSALS: tuple[tuple[type[Exception], int, str, str], ...] = (
    (errors.LimitRequestLine, 414, "request_line_too_long",
     "The request line (method, path and query string) is longer than the server accepts."),
    (errors.LimitRequestHeaders, 431, "request_headers_too_large",
     "The request has too many headers, or a header longer than the server accepts."),
    (errors.ExpectationFailed, 417, "expectation_failed", "The server cannot meet the Expect header."),
    (errors.UnsupportedTransferCoding, 501, "unsupported_transfer_coding",
     "The request's Transfer-Encoding is not supported."),
    # The application's own fault (a response header it tried to send), and a server
    # misconfiguration: gunicorn answers 500 for both.
    (errors.InvalidResponseHeader, 500, "internal_error", "Something went wrong on our side."),
    (errors.InvalidResponseHeaderName, 500, "internal_error", "Something went wrong on our side."),
    (errors.ConfigurationProblem, 500, "internal_error", "Something went wrong on our side."),
    (errors.ForbiddenProxyRequest, 403, "forbidden", "You may not do this."),
    (errors.ParseException, 400, "malformed_request", "The request is not valid HTTP."),
    (SSLError, 400, "malformed_request", "The request is not valid HTTP."),
)
REASONS = {400: "Bad Request", 403: "Forbidden", 414: "URI Too Long", 417: "Expectation Failed",
           431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented"}


def refusal(exc: BaseException) -> tuple[int, str, str]:
    """The status, code and message for an error gunicorn met before the application answered."""
    for cls, status, code, message in REFUSALS:
        if isinstance(exc, cls):
            return status, code, message
    return 500, "internal_error", "Something went wrong on our side."


def json_error_response(status: int, code: str, message: str, request_id: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message, "request_id": request_id}}).encode()
    head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
            "Connection: close\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"X-Request-ID: {request_id}\r\n\r\n")
    return head.encode("latin-1") + body


class JsonErrorWorker(ThreadWorker):
    def handle_error(self, req, client, addr, exc) -> None:
        status, code, message = refusal(exc)
        request_id = uuid.uuid4().hex
        # Status and code only: gunicorn's own line would repeat the raw request line,
        # whose query string may hold ids (our access log never logs query strings).
        if status >= 500:
            self.log.error("request failed before the application answered: %s %s (request_id %s)",
                           status, type(exc).__name__, request_id, exc_info=exc)
        else:
            self.log.warning("request refused by the HTTP server: %s %s (request_id %s)",
                             status, code, request_id)
        try:
            util.write_nonblock(client, json_error_response(status, code, message, request_id))
        except Exception:  # noqa: BLE001 - the client may be gone; nothing more to tell it
            self.log.debug("could not send the error answer")
