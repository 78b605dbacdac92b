"""The HNSW scan settings a search sets ride on its key-version query: check they take effect."""

from __future__ import annotations

import functools
import uuid

import numpy as np
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from audit.services import Actor
from embeddings.search import selectors
from embeddings.store import services
from embeddings.store.collections import collection_named
from faceservice.tenancy import tenant_context
from tenants import services as tenant_services


class _Detection:
    def __init__(self, embedding):
        self.embedding, self.bbox, self.det_score = embedding, (1.0, 2.0, 3.0, 4.0), 0.9


def _settings_now() -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('hnsw.ef_search', true), "
                       "current_setting('hnsw.iterative_scan', true)")
        return cursor.fetchone()


def _tenant_with_random_faces(count: int, seed: int):
    """A new tenant holding `count` random unit faces of a new model: (tenant, model id, vectors)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    model_id = f"test-model:{uuid.uuid4().hex[:8]}"
    tenant = tenant_services.create_tenant(name=f"t-{uuid.uuid4().hex[:8]}", actor=Actor.operator("tests"))
    services.replace_asset_faces(tenant_id=tenant.id, asset_id="a", faces=[_Detection(v) for v in vectors],
                                 model_id=model_id, submitted_at=timezone.now(), actor=Actor.system("tests"))
    return tenant, model_id, vectors


def test_hnsw_path_sets_ef_search_and_iterative_scan_for_the_transaction(db, settings):
    tenant, model_id, vectors = _tenant_with_random_faces(30, seed=3)
    settings.HNSW_EF_SEARCH = 123
    settings.SEARCH_MEMORY_MAX_BYTES = 0  # pgvector's paths, not the in-memory gallery
    settings.EXACT_SEARCH_MAX_FACES = 10**6
    cache.clear()  # the cached face count picks the strategy
    timings = selectors.SearchTimings()
    exact = selectors.search_faces(tenant_id=tenant.id, embedding=vectors[4], model_id=model_id, timings=timings)
    assert timings.strategy == "exact" and _settings_now()[0] != "123"

    settings.EXACT_SEARCH_MAX_FACES = 10
    cache.clear()
    timings = selectors.SearchTimings()
    ann = selectors.search_faces(tenant_id=tenant.id, embedding=vectors[4], model_id=model_id, timings=timings)
    assert timings.strategy == "hnsw"
    assert _settings_now() == ("123", "relaxed_order")
    assert [m.face_id for m in ann] == [m.face_id for m in exact] and ann[0].similarity > 0.999


def test_face_count_for_the_strategy_stops_at_its_cap(db):
    tenant, model_id, _ = _tenant_with_random_faces(25, seed=5)
    cache.clear()
    with tenant_context(tenant.id):  # as search_faces calls it: row-level security applies
        collection_id = collection_named(tenant.id).id
        count = functools.partial(selectors.faces_of_model, tenant_id=tenant.id, collection_id=collection_id)
        assert count(model_id=model_id, up_to=11) == 11
        assert count(model_id=model_id, up_to=100) == 25  # recounted
        assert count(model_id="other-model", up_to=100) == 0
