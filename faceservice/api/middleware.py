"""Request ids, one safe access-log line, the request's metrics and trace; no other log line shows a query string."""

from __future__ import annotations

import logging
import re
import time
import uuid

from audit.anomalies.refusals import count_refusal
from faceservice import metrics, tracing
from faceservice.request_id import request_id_var

logger = logging.getLogger("faceservice.access")
# A caller-supplied id is echoed back only when it is short and plain.
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# What a request that matched no URL pattern (static files, the catch-all JSON 404) is
# counted under: its path could be anything a client sends, so it is never a label.
UNMATCHED = "unmatched"


def route_of(request) -> str:
    """The URL pattern that answered (`v1/faces/<uuid:face_id>`), never the path with its ids."""
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if not route or route == r"^.*$":
        return UNMATCHED
    return route


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            with tracing.server_span(request.method, request.headers) as span:
                response = self.get_response(request)
                route = route_of(request)
                tracing.name_request_span(span, method=request.method, route=route, status=response.status_code)
            response["X-Request-ID"] = request_id
            # The time spent in Django (W3C Server-Timing): what a caller's
            # own measurement adds beyond it is HTTP and the network.
            response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
            metrics.observe_request(route=route, method=request.method, status=response.status_code,
                                    seconds=time.perf_counter() - started)
            self._log(request, response.status_code, started)
            return response
        finally:
            request_id_var.reset(token)

    @staticmethod
    def _log(request, status: int, started: float) -> None:
        # Method, route and outcome only: never bodies, query strings, headers or keys.
        api_key = getattr(request, "api_key_id", None)
        logger.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "tenant_id": getattr(request, "tenant_id", None),
                "api_key_id": str(api_key) if api_key else None,
            },
        )
        if status in (401, 429):
            # Refusals that write no audit event are counted for the anomaly rules (audit/anomalies/).
            count_refusal(status=status, client_ip=request.META.get("REMOTE_ADDR"),
                          api_key_id=str(api_key) if api_key else None)


class SafeRequestFilter(logging.Filter):
    """Django's own log lines name the request by method and path only.

    Django attaches the request object to the lines it writes about one (`django.request`
    on a 500, `django.security.*` on a suspicious request such as an unknown Host), and the
    JSON formatter writes its repr, `<WSGIRequest: GET '/v1/faces?subject_id=…'>`, query
    string included. The query string may hold subject and asset ids, so it is dropped
    here, as in the access line above. Installed on the log handler (settings LOGGING).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if request is not None and hasattr(request, "path"):
            record.request = f"<{request.__class__.__name__}: {request.method} {request.path!r}>"
        return True
