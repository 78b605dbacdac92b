"""The tenant audit API: /v1/audit/events (list, filters, cursor) and its CSV / JSON Lines export."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor, record_event
from faceservice.tenancy import platform_scope, tenant_context

REFUSED_ROLES = ["admin", "indexer", "searcher", "comparer"]


def record(tenant, action: str, **kwargs) -> AuditEvent:
    with tenant_context(tenant.id):
        return record_event(tenant_id=tenant.id, actor=kwargs.pop("actor", Actor.system("tests")),
                            action=action, **kwargs)


def listed(client, **params) -> list[dict]:
    response = client.get("/v1/audit/events", params)
    assert response.status_code == 200, response.content
    return response.json()["results"]


def streamed(response) -> str:
    assert response.streaming
    return b"".join(response.streaming_content).decode()


@pytest.mark.parametrize("role", REFUSED_ROLES)
@pytest.mark.parametrize("url", ["/v1/audit/events", "/v1/audit/events/export.csv",
                                 "/v1/audit/events/export.jsonl"])
def test_only_auditors_may_read_the_log(tenant, client_for, role, url):
    response = client_for(tenant, roles=(role,)).get(url)
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "forbidden"


def test_unauthenticated_is_refused(db, client):
    response = client.get("/v1/audit/events")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_auditor_lists_own_events_newest_first_and_never_another_tenants(tenant, other_tenant, client_for):
    mine = record(tenant, "search", details={"matches": 2})
    theirs = record(other_tenant, "search", details={"secret": "theirs"})
    events = listed(client_for(tenant, roles=("auditor",)))
    ids = [e["id"] for e in events]
    assert mine.id in ids and theirs.id not in ids
    assert all(e["tenant_id"] == str(tenant.id) for e in events)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs, reverse=True)
    shown = next(e for e in events if e["id"] == mine.id)
    assert shown["action"] == "search" and shown["details"] == {"matches": 2} and shown["hash"] == mine.hash


def test_filters(tenant, client_for):
    job, asset = str(uuid.uuid4()), "asset-42"
    key_actor = Actor(type="api_key", id=str(uuid.uuid4()), name="indexer key", roles=("indexer",))
    submitted = record(tenant, "index_job.submitted", target={"job_id": job}, actor=key_actor)
    indexed = record(tenant, "faces.indexed", target={"job_id": job, "asset_id": asset}, details={"faces": 3})
    deleted = record(tenant, "faces.deleted", target={"asset_ids": [asset, "asset-7"]},
                     receipt_id=uuid.uuid4(), outcome="success")
    rotated = record(tenant, "key.rotated", target={"key_version": 2})
    client = client_for(tenant, roles=("auditor",))

    def ids(**params) -> set[int]:
        return {e["id"] for e in listed(client, **params)}

    assert ids(action="faces.indexed") == {indexed.id}
    assert ids(action="faces.*") == {indexed.id, deleted.id}
    assert ids(action="key.*") == {rotated.id}
    assert ids(actor_id=key_actor.id) == {submitted.id}
    assert ids(target_id=job) == {submitted.id, indexed.id}
    assert ids(target_id=asset) == {indexed.id, deleted.id}  # found inside a list too
    assert ids(receipt_id=str(deleted.receipt_id)) == {deleted.id}
    assert ids(since=indexed.occurred_at.isoformat(), until=rotated.occurred_at.isoformat()) \
        == {indexed.id, deleted.id}
    assert ids(since=(timezone.now() + timedelta(hours=1)).isoformat()) == set()


def test_bad_filters_are_a_400(tenant, client_for):
    client = client_for(tenant, roles=("auditor",))
    for params in ({"since": "yesterday"}, {"target_id": "x' OR 1=1 --"},
                   {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}):
        response = client.get("/v1/audit/events", params)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "invalid_request"


def test_cursor_pagination_walks_every_event_once(tenant, client_for):
    for i in range(7):
        record(tenant, "list", details={"i": i})
    client = client_for(tenant, roles=("auditor",))
    seen, url = [], "/v1/audit/events?action=list&limit=3"
    while url:
        body = client.get(url).json()
        seen += [e["details"]["i"] for e in body["results"]]
        url = body["next"]
    assert seen == list(reversed(range(7)))


def test_reading_and_exporting_are_audited(tenant, client_for):
    client = client_for(tenant, roles=("auditor",))
    client.get("/v1/audit/events", {"action": "search"})
    streamed(client.get("/v1/audit/events/export.csv", {"action": "search"}))
    with platform_scope():
        actions = list(AuditEvent.objects.filter(chain=str(tenant.id)).order_by("seq")
                       .values_list("action", "actor_type", "details"))
    assert actions[-2][:2] == ("audit.listed", "api_key")
    assert actions[-1] == ("audit.exported", "api_key", {"format": "csv", "filters": {"action": "search"}})


def test_csv_export(tenant, other_tenant, client_for):
    event = record(tenant, "faces.deleted", target={"subject_id": "=HYPERLINK(\"x\")"},
                   receipt_id=uuid.uuid4(), details={"faces": 2})
    record(other_tenant, "faces.deleted", details={"faces": 9})
    response = client_for(tenant, roles=("auditor",)).get("/v1/audit/events/export.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-events-')
    rows = list(csv.DictReader(io.StringIO(streamed(response))))
    assert {r["tenant_id"] for r in rows} == {str(tenant.id)}
    row = next(r for r in rows if r["id"] == str(event.id))
    assert row["receipt_id"] == str(event.receipt_id)
    assert json.loads(row["details"]) == {"faces": 2}
    assert row["hash"] == event.hash


def test_csv_cells_cannot_become_spreadsheet_formulas(tenant, client_for):
    record(tenant, "x", actor=Actor(type="api_key", id="1", name="=cmd|' /C calc'!A0"))
    rows = list(csv.DictReader(io.StringIO(streamed(
        client_for(tenant, roles=("auditor",)).get("/v1/audit/events/export.csv", {"action": "x"})))))
    assert rows[0]["actor_name"] == "'=cmd|' /C calc'!A0"


def test_jsonl_export_streams_every_row_in_chunks(tenant, client_for, settings):
    settings.AUDIT_EXPORT_CHUNK_SIZE = 100  # several server-side cursor fetches
    with tenant_context(tenant.id):
        for i in range(650):
            record_event(tenant_id=tenant.id, actor=Actor.system("tests"), action="bulk", details={"i": i})
    response = client_for(tenant, roles=("auditor",)).get("/v1/audit/events/export.jsonl", {"action": "bulk"},
                                                          HTTP_ACCEPT="application/jsonl")
    assert response["Content-Type"].startswith("application/jsonl")
    lines = streamed(response).splitlines()
    assert len(lines) == 650
    assert [json.loads(line)["details"]["i"] for line in lines] == list(reversed(range(650)))


def test_export_errors_are_json(tenant, client_for):
    response = client_for(tenant, roles=("auditor",)).get("/v1/audit/events/export.csv", {"since": "nope"},
                                                          HTTP_ACCEPT="text/csv")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_schema_documents_the_audit_endpoints(db, client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = json.loads(response.content) if response.content.startswith(b"{") else None
    text = response.content.decode()
    assert "/v1/audit/events" in text and "/v1/audit/events/export.{file_format}" in text
    if schema:
        params = {p["name"] for p in schema["paths"]["/v1/audit/events"]["get"]["parameters"]}
        assert {"since", "until", "action", "actor_id", "target_id", "receipt_id", "cursor"} <= params
