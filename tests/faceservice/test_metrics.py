"""Metrics: a real scrape, over HTTP, after a real search and an index job (faceservice/metrics.py)."""

from __future__ import annotations

import socket
import urllib.request
from dataclasses import dataclass, field

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from prometheus_client.parser import text_string_to_metric_families

from audit.services import Actor
from embeddings.face_engine import face_engine
from embeddings.image_sources import ImageSource
from embeddings.indexing import claims, completion, dispatch, pipeline, sweep
from embeddings.indexing import services as job_services
from embeddings.indexing.failures import HttpStatusError
from embeddings.indexing.models import IndexJobAsset
from embeddings.search.gallery import galleries
from faceservice import metrics
from tenants.webhooks import delivery
from tests.conftest import find
from tests.embeddings.conftest import PROBES, enroll, photo

# Every family docs/OPERATIONS.md lists (the names a scrape shows, without _total/_bucket).
FAMILIES = {
    "faceservice_http_requests", "faceservice_http_request_duration_seconds", "faceservice_rate_limit_refusals",
    "faceservice_search_stage_duration_seconds", "faceservice_searches",
    "faceservice_gallery_faces", "faceservice_gallery_bytes", "faceservice_gallery_loads",
    "faceservice_gallery_load_duration_seconds", "faceservice_gallery_evictions", "faceservice_gallery_fallbacks",
    "faceservice_index_assets", "faceservice_index_asset_failures", "faceservice_index_assets_dispatched",
    "faceservice_index_lease_recoveries", "faceservice_index_messages_resent", "faceservice_index_assets_in_state",
    "faceservice_index_queue_lag_seconds",
    "faceservice_webhook_attempts", "faceservice_webhook_attempt_errors",
    "faceservice_webhook_attempt_duration_seconds",
    "faceservice_webhook_endpoints_disabled", "faceservice_webhook_delivery_lag_seconds",
    "faceservice_webhook_deliveries_due",
    "faceservice_kms_calls", "faceservice_kms_errors", "faceservice_kms_call_duration_seconds",
    "faceservice_kms_cache_lookups",
    "faceservice_audit_verifications", "faceservice_audit_last_verification_ok", "faceservice_anomalies",
    "faceservice_celery_tasks", "faceservice_celery_task_duration_seconds", "faceservice_celery_tasks_published",
}
ACTOR = Actor(type="api_key", id="tests", name="tests", roles=("indexer",))


@dataclass
class Face:
    """What the engine hands the store: a unit embedding, a box, a score."""

    embedding: np.ndarray = field(repr=False)
    bbox: tuple = (10.0, 20.0, 110.0, 140.0)
    det_score: float = 0.9


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def scrape():
    """Scrape this process's metrics the way Prometheus does: HTTP on the metrics port of its own."""
    port = _free_port()
    server = metrics.serve(port, "127.0.0.1")
    assert server is not None

    def read() -> dict[str, dict[tuple, float]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
        samples: dict[str, dict[tuple, float]] = {}
        for family in text_string_to_metric_families(text):
            found = samples.setdefault(family.name, {})
            for sample in family.samples:
                found[(sample.name, *sorted(sample.labels.items()))] = sample.value
        return samples

    yield read
    server.shutdown()


def total(samples: dict, family: str, suffix: str = "_total", **labels) -> float:
    """The sum of a family's samples named family+suffix whose labels include `labels`."""
    return sum(value for (name, *pairs), value in samples.get(family, {}).items()
               if name == family + suffix and set(labels.items()) <= set(pairs))


def _search(client) -> None:
    upload = SimpleUploadedFile("probe.jpg", photo(PROBES / "obama1.jpg"), content_type="image/jpeg")
    response = client.post("/v1/search", {"image": upload}, format="multipart")
    assert response.status_code == 200, response.content


def _index_job(tenant, monkeypatch) -> None:
    """Two assets through the store and indexing services: one stored, one failing for good; then a sweep."""
    monkeypatch.setattr(dispatch, "_publish", lambda *args, **kwargs: None)
    monkeypatch.setattr("django.db.transaction.on_commit", lambda fn, using=None, robust=False: fn())
    specs = [job_services.AssetSpec(asset_id=f"a{i}", source=ImageSource(url=f"https://images.example/{i}.jpg"))
             for i in range(2)]
    job = job_services.submit_index_job(tenant_id=tenant.id, assets=specs, options=job_services.JobOptions(),
                                        actor=ACTOR, fingerprint="fp", idempotency_key=None).job
    ids = [row.id for row in find(IndexJobAsset, job_id=job.id)]
    held = claims.claim_assets(tenant_id=tenant.id, job_asset_ids=ids)
    assert len(held) == 2
    engine = face_engine()
    embedding = np.ones(engine.dimension, dtype=np.float32) / np.sqrt(engine.dimension)
    completion.complete_asset(claim=held[0], faces=[Face(embedding)], left_out=[], model_id=engine.model_id,
                              timings={"fetch_ms": 1.0})
    pipeline.record_failure(held[1], HttpStatusError(404))
    sweep.sweep()
    delivery.sweep_deliveries()


def test_a_scrape_shows_every_family_after_a_search_and_an_index_job(tenant, client_for, monkeypatch, scrape):
    before = scrape()
    enroll(tenant)
    _search(client_for(tenant, ("searcher",)))
    _index_job(tenant, monkeypatch)
    after = scrape()

    assert set(after) >= FAMILIES, sorted(FAMILIES - set(after))

    def grew(family: str, suffix: str = "_total", **labels) -> float:
        return total(after, family, suffix, **labels) - total(before, family, suffix, **labels)

    # The request, by its route pattern, never its path.
    assert grew("faceservice_http_requests", route="v1/search", method="POST", status="200") == 1
    assert grew("faceservice_http_request_duration_seconds", "_count", route="v1/search") == 1
    # The gallery was loaded inline by the search, and holds the enrolled faces.
    assert grew("faceservice_gallery_loads", mode="inline") >= 1
    assert total(after, "faceservice_gallery_faces", "") >= 1
    assert total(after, "faceservice_gallery_bytes", "") > 0
    # The KMS: the data key unwrapped once, then found in the cache.
    assert grew("faceservice_kms_calls", operation="decrypt_data_key") + grew(
        "faceservice_kms_calls", operation="generate_data_key") >= 1
    assert grew("faceservice_kms_cache_lookups", result="hit") >= 1
    # The index job: dispatched, one failure by its code, the queue measured by the sweep.
    assert grew("faceservice_index_assets_dispatched") == 2
    assert grew("faceservice_index_asset_failures", code="fetch_failed", transient="false") == 1
    assert ("faceservice_index_assets_in_state", ("state", "queued")) in after["faceservice_index_assets_in_state"]


def test_labels_hold_no_identifier(tenant, client_for, monkeypatch, scrape):
    """Route patterns, not paths: a face id in the URL is never a label value, nor a tenant id."""
    client = client_for(tenant)
    face_id = "0b9f5a4e-1111-4222-8333-944455556666"
    client.get(f"/v1/faces/{face_id}")
    client.get("/v1/no-such-route/0b9f5a4e")
    text = metrics.exposition().decode()
    assert face_id not in text and "0b9f5a4e" not in text and str(tenant.id) not in text
    assert 'route="unmatched"' in text


def test_search_stages_and_asset_outcomes_are_counted(tenant, client_for, monkeypatch, scrape):
    """The search service reports its stages (observe_search_stages) and completion its outcomes."""
    before = scrape()
    enroll(tenant)
    _search(client_for(tenant, ("searcher",)))
    _index_job(tenant, monkeypatch)
    after = scrape()
    for stage in ("decode", "detect_embed", "vector_search", "rerank"):
        counted = (total(after, "faceservice_search_stage_duration_seconds", "_count", stage=stage)
                   - total(before, "faceservice_search_stage_duration_seconds", "_count", stage=stage))
        assert counted == 1, stage
    assert total(after, "faceservice_searches") - total(before, "faceservice_searches") == 1
    assert (total(after, "faceservice_index_assets", outcome="succeeded")
            - total(before, "faceservice_index_assets", outcome="succeeded")) == 1
    assert (total(after, "faceservice_index_assets", outcome="failed")
            - total(before, "faceservice_index_assets", outcome="failed")) == 1


def test_functions_other_modules_call_keep_labels_bounded():
    metrics.count_anomaly("Refusal Burst!")
    metrics.audit_verification(False)
    metrics.observe_search_stages({"decode": 1.0, "some_new_stage": 2.0}, strategy="weird")
    text = metrics.exposition().decode()
    assert 'faceservice_anomalies_total{rule="refusal_burst_"}' in text
    assert "faceservice_audit_last_verification_ok 0.0" in text
    assert 'stage="other"' in text and 'strategy="other"' in text
    metrics.audit_verification(True)
    assert "faceservice_audit_last_verification_ok 1.0" in metrics.exposition().decode()


def test_galleries_are_forgotten_from_the_gauges():
    galleries.clear()
    text = metrics.exposition().decode()
    assert "faceservice_gallery_faces 0.0" in text
