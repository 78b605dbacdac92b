"""Who may call what: the one table of tenant endpoints and the roles allowed on each.

Every `/v1/...` route and method must have a row here: test_role_matrix.py walks
Django's URL resolver and fails naming each missing route (with the line to add),
then calls every row with a key of every role and checks that the allowed roles
get through and the others get 403.

docs/ROLES.md is generated from this table. After editing it, run

    .venv/bin/python -m tests.faceservice.api.render_role_matrix > docs/ROLES.md

(test_roles_doc_is_current fails until you do).

This module is plain Python on purpose (no Django import), so that the doc can
be rendered without a database or settings.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

ADMIN = "admin"
INDEXER = "indexer"
SEARCHER = "searcher"
COMPARER = "comparer"
AUDITOR = "auditor"
ALL_ROLES = (ADMIN, INDEXER, SEARCHER, COMPARER, AUDITOR)

# What each role is for (kept equal to tenants.models.Role by a test).
ROLE_PURPOSES = {
    ADMIN: "manage keys and webhooks, delete face data",
    INDEXER: "submit index jobs, list faces",
    SEARCHER: "search and compare",
    COMPARER: "stateless compare only",
    AUDITOR: "read the audit log and statistics",
}

PATH_PARAMETER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Endpoint:
    """One HTTP method on one route, and the roles that may call it."""

    method: str
    path: str  # OpenAPI-style template, as in /api/schema/: /v1/api-keys/{api_key_id}
    roles: tuple[str, ...]
    summary: str = ""
    # Example values for path parameters; a fresh uuid is used for any not given.
    examples: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    def example_url(self) -> str:
        return PATH_PARAMETER.sub(lambda m: self.examples.get(m.group(1), str(uuid.uuid4())), self.path)


ENDPOINTS: tuple[Endpoint, ...] = (
    # --- tenants/ ---------------------------------------------------------------------
    Endpoint("GET", "/v1/tenant", ALL_ROLES, "Read the tenant's settings"),
    Endpoint("PATCH", "/v1/tenant", (ADMIN,), "Change the tenant's settings"),
    Endpoint("GET", "/v1/api-keys", (ADMIN,), "List API keys"),
    Endpoint("POST", "/v1/api-keys", (ADMIN,), "Create an API key (shown once)"),
    Endpoint("DELETE", "/v1/api-keys/{api_key_id}", (ADMIN,), "Revoke an API key"),
    Endpoint("GET", "/v1/webhooks", (ADMIN,), "List webhook endpoints"),
    Endpoint("POST", "/v1/webhooks", (ADMIN,), "Register a webhook endpoint (secret shown once)"),
    Endpoint("GET", "/v1/webhooks/{endpoint_id}", (ADMIN,), "Read a webhook endpoint"),
    Endpoint("PATCH", "/v1/webhooks/{endpoint_id}", (ADMIN,), "Change a webhook endpoint"),
    Endpoint("DELETE", "/v1/webhooks/{endpoint_id}", (ADMIN,), "Delete a webhook endpoint"),
    Endpoint("POST", "/v1/webhooks/{endpoint_id}/rotate-secret", (ADMIN,), "Rotate a webhook signing secret"),
    Endpoint("POST", "/v1/webhooks/{endpoint_id}/test", (ADMIN,), "Send a webhook.test event"),
    Endpoint("GET", "/v1/webhooks/{endpoint_id}/deliveries", (ADMIN,), "List a webhook's deliveries"),
    Endpoint("GET", "/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}", (ADMIN,),
             "Read a delivery and its attempt log"),
    Endpoint("POST", "/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver", (ADMIN,),
             "Send a delivery's event again"),
    # --- embeddings/ (add rows here) ----------------------------------------------------
    Endpoint("POST", "/v1/index-jobs", (ADMIN, INDEXER), "Submit an index job (202)"),
    Endpoint("GET", "/v1/index-jobs", (ADMIN, INDEXER), "List index jobs"),
    Endpoint("GET", "/v1/index-jobs/{job_id}", (ADMIN, INDEXER), "Read an index job's state and counts"),
    Endpoint("GET", "/v1/index-jobs/{job_id}/assets", (ADMIN, INDEXER), "Per-asset results of an index job"),
    Endpoint("POST", "/v1/index-jobs/{job_id}/cancel", (ADMIN, INDEXER), "Cancel an index job"),
    Endpoint("GET", "/v1/faces", (ADMIN, INDEXER, SEARCHER), "List faces (metadata) of an asset or subject"),
    Endpoint("POST", "/v1/search", (ADMIN, SEARCHER), "Search by photo or face id (1:N)"),
    Endpoint("POST", "/v1/compare", (ADMIN, SEARCHER, COMPARER), "Compare a photo with references, stateless"),
    Endpoint("POST", "/v1/detect", (ADMIN, SEARCHER, COMPARER),
             "Detect faces: boxes, landmarks, quality and pose (stores nothing)"),
    Endpoint("POST", "/v1/faces/delete", (ADMIN,), "Delete faces by face, asset or subject ids (receipt)"),
    Endpoint("POST", "/v1/faces/purge", (ADMIN,), "Purge all face data and shred the tenant's keys"),
    Endpoint("GET", "/v1/receipts/{receipt_id}", (ADMIN, AUDITOR), "Read a deletion receipt"),
    Endpoint("GET", "/v1/deletions/{deletion_id}", (ADMIN, AUDITOR), "A large deletion's progress and receipt"),
    Endpoint("GET", "/v1/stats", (ADMIN, AUDITOR), "Tenant statistics (no personal data)"),
    Endpoint("GET", "/v1/collections", (ADMIN, INDEXER, SEARCHER, AUDITOR), "List collections with their counts"),
    Endpoint("POST", "/v1/collections", (ADMIN,), "Create a collection"),
    Endpoint("GET", "/v1/collections/{name}", (ADMIN, INDEXER, SEARCHER, AUDITOR), "Describe a collection",
             examples={"name": "default"}),
    Endpoint("PATCH", "/v1/collections/{name}", (ADMIN,), "Change a collection's retention",
             examples={"name": "default"}),
    Endpoint("DELETE", "/v1/collections/{name}", (ADMIN,), "Delete a collection and its faces (receipt)",
             examples={"name": "default"}),
    Endpoint("GET", "/v1/subjects", (ADMIN, INDEXER, SEARCHER), "List a collection's subjects"),
    Endpoint("GET", "/v1/subjects/describe", (ADMIN, INDEXER, SEARCHER), "Describe a subject and its faces"),
    Endpoint("POST", "/v1/subjects/rename", (ADMIN, INDEXER), "Rename a subject"),
    Endpoint("POST", "/v1/subjects/merge", (ADMIN, INDEXER), "Merge subjects into one"),
    Endpoint("POST", "/v1/faces/associate", (ADMIN, INDEXER), "Associate faces with a subject"),
    Endpoint("POST", "/v1/faces/disassociate", (ADMIN, INDEXER), "Disassociate faces from a subject"),
    Endpoint("POST", "/v1/search/subjects", (ADMIN, SEARCHER), "Search for persons (subjects) by photo"),
    Endpoint("POST", "/v1/verify", (ADMIN, SEARCHER), "Verify a photo against a subject's faces (1:1)"),
    Endpoint("POST", "/v1/clustering-jobs", (ADMIN, INDEXER), "Start a clustering job: people discovery (202)"),
    Endpoint("GET", "/v1/clustering-jobs", (ADMIN, INDEXER, SEARCHER), "List clustering jobs"),
    Endpoint("GET", "/v1/clustering-jobs/{job_id}", (ADMIN, INDEXER, SEARCHER), "Read a clustering job's state"),
    Endpoint("GET", "/v1/clustering-jobs/{job_id}/clusters", (ADMIN, INDEXER, SEARCHER),
             "List a clustering job's clusters"),
    Endpoint("GET", "/v1/clusters/{cluster_id}", (ADMIN, INDEXER, SEARCHER), "Describe a cluster and its faces"),
    Endpoint("POST", "/v1/clusters/{cluster_id}/name", (ADMIN, INDEXER), "Name a cluster (its faces get the subject)"),
    Endpoint("POST", "/v1/clusters/{cluster_id}/split", (ADMIN, INDEXER), "Split a cluster"),
    Endpoint("POST", "/v1/clusters/merge", (ADMIN, INDEXER), "Merge clusters into one"),
    # --- audit/ (add rows here) ---------------------------------------------------------
    Endpoint("GET", "/v1/audit/events", (AUDITOR,), "List audit events (filters, cursor pagination)"),
    Endpoint("GET", "/v1/audit/events/export.{file_format}", (AUDITOR,), "Export audit events (CSV / JSON Lines)",
             examples={"file_format": "csv"}),
)
