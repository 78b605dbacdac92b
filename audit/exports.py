"""Streaming exports of audit events as CSV or JSON Lines.

A StreamingHttpResponse body is produced after the view has returned and its
transaction has closed, so each generator here opens its own transaction
(tenant_context for a tenant, platform_scope for staff) and reads through a
server-side cursor in chunks: memory stays flat for millions of rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from uuid import UUID

from django.conf import settings
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from audit import selectors
from audit.models import AuditEvent
from faceservice.tenancy import platform_scope, tenant_context

EXPORT_FIELDS = ("id", "tenant_id", "seq", "occurred_at", "actor_type", "actor_id", "actor_name",
                 "role", "action", "target", "outcome", "details", "request_id", "client_ip",
                 "receipt_id", "prev_hash", "hash")
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8"}
# A cell starting with one of these is a formula to a spreadsheet (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def event_row(event: AuditEvent) -> dict:
    row = {name: getattr(event, name) for name in EXPORT_FIELDS}
    row["occurred_at"] = event.occurred_at.isoformat()
    for name in ("tenant_id", "receipt_id"):
        row[name] = str(row[name]) if row[name] else None
    return row


def jsonl_lines(events: Iterator[AuditEvent]) -> Iterator[str]:
    for event in events:
        yield json.dumps(event_row(event), separators=(",", ":"), sort_keys=False) + "\n"


def _cell(value) -> str:
    if value is None:
        return ""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True) if isinstance(value, (dict, list)) else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_lines(events: Iterator[AuditEvent]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(EXPORT_FIELDS)
    yield flush()
    for event in events:
        writer.writerow([_cell(value) for value in event_row(event).values()])
        yield flush()


def _stream(scope: Callable[[], AbstractContextManager], query: Callable[[], QuerySet],
            fmt: str) -> Iterator[bytes]:
    """Rows of one snapshot, in batches of whole lines, inside the scope's own transaction."""
    lines = csv_lines if fmt == "csv" else jsonl_lines
    chunk = settings.AUDIT_EXPORT_CHUNK_SIZE
    with scope():
        batch: list[str] = []
        for line in lines(query().iterator(chunk_size=chunk)):
            batch.append(line)
            if len(batch) >= 500:
                yield "".join(batch).encode()
                batch = []
        if batch:
            yield "".join(batch).encode()


def export_response(body: Iterator[bytes], *, fmt: str, name: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type=FORMATS[fmt])
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


def tenant_export(*, tenant_id: UUID, filters: selectors.EventFilters, fmt: str) -> StreamingHttpResponse:
    body = _stream(lambda: tenant_context(tenant_id),
                   lambda: selectors.tenant_events(tenant_id=tenant_id, filters=filters), fmt)
    return export_response(body, fmt=fmt, name="audit-events")


def platform_export(*, filters: selectors.EventFilters, fmt: str) -> StreamingHttpResponse:
    body = _stream(platform_scope, lambda: selectors.all_events(filters=filters), fmt)
    return export_response(body, fmt=fmt, name="audit-events-all-tenants")
