"""OpenTelemetry traces: off by default, switched on by the standard OTEL_* environment variables.

On when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`), or when it is
unset and an OTLP endpoint is (`OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); `OTEL_SDK_DISABLED=true` or
`OTEL_TRACES_EXPORTER=none` keep them off. `otlp` is OTLP over HTTP/protobuf (the
gRPC exporter would bring grpcio for no gain). The SDK reads the rest itself:
`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`,
`OTEL_EXPORTER_OTLP_*` (endpoint, headers, timeout), `OTEL_BSP_*` (batching).

What is traced: one trace per HTTP request (faceservice/api/middleware.py, joining a
caller's W3C `traceparent`), one per Celery task (faceservice/celery.py), and inside
them spans for each database statement, gallery loads, KMS calls and webhook POSTs.
Other modules add theirs with `span(name)`.

No personal data in a span: names are fixed words, attributes are counts, sizes,
route patterns, status and error codes. `span()` drops any attribute whose name
suggests an identifier or content (subject, asset, face, key, image, embedding), and
statements are named by their first SQL word only, never their text or parameters.

When traces are off, `span()` costs one check and yields None: nothing is recorded.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

TRUE_WORDS = ("1", "true", "yes", "on")
# Attribute names that could carry an identifier or content: never recorded.
_PERSONAL = re.compile(r"subject|asset|face|key|secret|token|image|embedding|email|name$", re.IGNORECASE)
_ALLOWED_KINDS = (str, int, float, bool)

_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None


def standard_variables() -> dict[str, str]:
    """The OTEL_* variables that decide whether traces are on, from the environment."""
    return {"OTEL_SDK_DISABLED": os.environ.get("OTEL_SDK_DISABLED", ""),
            "OTEL_TRACES_EXPORTER": os.environ.get("OTEL_TRACES_EXPORTER", ""),
            "OTEL_EXPORTER_OTLP_ENDPOINT": os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")}


def exporter_name(environ: Mapping[str, str] | None = None) -> str | None:
    """The exporter the OTEL_* variables (`environ`, else the process's) ask for, or None: traces off."""
    environ = standard_variables() if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() in TRUE_WORDS:
        return None
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names:
        has_endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        return "otlp" if has_endpoint else None
    name = names[0]
    return None if name == "none" else name


def _exporter(name: str) -> SpanExporter:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_*
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER={name!r} is not supported here: use otlp, console or none")


def configure(service_name: str, *, exporter: SpanExporter | None = None, batch: bool = True) -> bool:
    """Start tracing in this process when the environment (or `exporter`, for tests) asks; whether it did.

    Called once per process that does work: each gunicorn worker (Django's app ready)
    and each Celery process. The batch processor exports from a thread of its own and
    starts it again in a forked child (the SDK's at-fork hook).
    """
    global _provider, _tracer
    if exporter is None:
        name = exporter_name()
        if name is None:
            return False
        exporter = _exporter(name)
    service = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    shutdown()
    _provider, _tracer = provider, provider.get_tracer("faceservice")
    return True


def shutdown() -> None:
    """Export what is pending and stop tracing in this process (process exit; tests)."""
    global _provider, _tracer
    if _provider is not None:
        _provider.shutdown()
    _provider = _tracer = None


def enabled() -> bool:
    return _tracer is not None


def safe_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes a span may carry: plain values, none named like an identifier or content."""
    return {name: value for name, value in attributes.items()
            if value is not None and isinstance(value, _ALLOWED_KINDS) and not _PERSONAL.search(name)}


@contextlib.contextmanager
def span(name: str, *, new_trace: bool = False, kind: trace.SpanKind = trace.SpanKind.INTERNAL,
         **attributes: Any) -> Iterator[trace.Span | None]:
    """A span around the block, child of the current one (or the root of a new trace); None when off.

    `name` is a fixed word such as `search.decode`, `gallery.load`, `kms.decrypt`;
    `new_trace=True` starts a trace of its own (one per index asset).
    An exception leaving the block is recorded on the span (its type only) and raised on.
    """
    if _tracer is None:
        yield None
        return
    parent = otel_context.Context() if new_trace else None
    with _tracer.start_as_current_span(name, context=parent, kind=kind, attributes=safe_attributes(attributes),
                                       record_exception=False, set_status_on_exception=False) as current:
        try:
            yield current
        except BaseException as error:
            current.set_status(trace.StatusCode.ERROR, type(error).__name__)
            raise


@contextlib.contextmanager
def server_span(method: str, headers: Mapping[str, str]) -> Iterator[trace.Span | None]:
    """The span of one HTTP request, joining the caller's trace when it sent `traceparent`.

    Named `HTTP <method>` until the route is known (`name_request_span`).
    """
    if _tracer is None:
        yield None
        return
    token = otel_context.attach(propagate.extract(headers))
    try:
        with span(f"HTTP {method}", kind=trace.SpanKind.SERVER, **{"http.request.method": method}) as current:
            yield current
    finally:
        otel_context.detach(token)


def name_request_span(current: trace.Span | None, *, method: str, route: str, status: int) -> None:
    """Name the request's span after its route pattern (never the path) and record the status."""
    if current is None:
        return
    current.update_name(f"{method} {route}")
    current.set_attributes({"http.route": route, "http.response.status_code": status})
    if status >= 500:
        current.set_status(trace.StatusCode.ERROR, str(status))


def database_span(execute, sql, params, many, context):
    """A Django execute wrapper: one span per statement, named by its first SQL word only."""
    if _tracer is None:
        return execute(sql, params, many, context)
    operation = (sql or "").lstrip().split(None, 1)[0].upper()[:16] if sql else "SQL"
    with span(f"db {operation}", kind=trace.SpanKind.CLIENT,
              **{"db.system.name": "postgresql", "db.operation.name": operation}):
        return execute(sql, params, many, context)


def trace_database_connection(connection) -> None:
    """Add `database_span` to a Django connection's execute wrappers (once).

    First in the list: `connection.execute_wrapper()` blocks pop the last one on the way
    out, which must stay theirs.
    """
    if database_span not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, database_span)


def start_task_span(task: str) -> tuple[trace.Span, object] | None:
    """Start the root span of a Celery task (one trace per task); end it with `end_task_span`.

    For code that starts and ends in different callbacks (Celery's task_prerun and
    task_postrun signals), where a `with` block cannot span both.
    """
    if _tracer is None:
        return None
    current = _tracer.start_span(f"task {task}", context=otel_context.Context(), kind=trace.SpanKind.CONSUMER,
                                 attributes={"messaging.system": "celery", "celery.task": task})
    token = otel_context.attach(trace.set_span_in_context(current))
    return current, token


def end_task_span(handle: tuple[trace.Span, object] | None, *, state: str) -> None:
    if handle is None:
        return
    current, token = handle
    current.set_attribute("celery.state", state)
    if state == "FAILURE":
        current.set_status(trace.StatusCode.ERROR, state)
    current.end()
    with contextlib.suppress(ValueError):  # attached in another context: nothing to undo here
        otel_context.detach(token)
