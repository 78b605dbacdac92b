"""Per-collection partial HNSW indexes (embeddings/store/vector_index.py) against the real PostgreSQL + pgvector.

These run outside the per-test transaction (committed_db): CREATE / DROP INDEX
CONCURRENTLY refuse to run inside one. Each test makes its own tenants and
model id, and purges what it made.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.services import Actor
from embeddings.models import Face
from embeddings.search import selectors
from embeddings.store import deletion as deletions
from embeddings.store import services, vector_index
from embeddings.store.collections import collection_named
from faceservice.tenancy import tenant_context
from tenants import services as tenant_services

DIM = 64
ACTOR = Actor.system("tests")


class FakeDetection:
    def __init__(self, embedding):
        self.embedding, self.bbox, self.det_score = embedding, (1.0, 2.0, 3.0, 4.0), 0.9


def _unit(rng, n):
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _tenant_with_faces(model_id: str, vectors: np.ndarray):
    tenant = tenant_services.create_tenant(name=f"tvi-{uuid.uuid4().hex[:10]}", actor=Actor.operator("tests"))
    for start in range(0, len(vectors), 50):
        services.replace_asset_faces(tenant_id=tenant.id, asset_id=f"a{start}",
                                     faces=[FakeDetection(v) for v in vectors[start:start + 50]],
                                     model_id=model_id, submitted_at=timezone.now(), actor=ACTOR)
    return tenant


def _collection(tenant):
    """The tenant's default collection, where _tenant_with_faces puts its faces."""
    with tenant_context(tenant.id):
        return collection_named(tenant.id).id


def _purge(tenant) -> None:
    deletion = deletions.request_deletion(tenant_id=tenant.id, requested={"purge": True}, actor=ACTOR)
    deletions.run_deletion(tenant_id=tenant.id, deletion_id=deletion.id)


def _plan_of_search(tenant, model_id: str, probe: np.ndarray) -> str:
    """EXPLAIN of the candidate query search_faces really sent (captured), in the tenant's scope."""
    with CaptureQueriesContext(connection) as queries:
        selectors.search_faces(tenant_id=tenant.id, embedding=probe, model_id=model_id, top_k=5)
    sql = next(q["sql"] for q in queries.captured_queries if "ORDER BY" in q["sql"] and "<#>" in q["sql"])
    with tenant_context(tenant.id), connection.cursor() as cursor:
        # A few hundred rows: without this the planner may well sort them all
        # instead; what is tested is that the index applies and which one.
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN (COSTS OFF) " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.fixture
def model_id():
    return f"tvi-model:{uuid.uuid4().hex[:8]}"


@pytest.fixture
def small_threshold(settings):
    settings.EXACT_SEARCH_MAX_FACES = 100
    settings.SEARCH_MEMORY_MAX_BYTES = 0  # pgvector's paths, not the in-memory gallery
    cache.clear()  # cached face counts pick the strategy
    return settings


@pytest.mark.pure
def test_uuid_literal_accepts_only_uuids():
    value = uuid.uuid4()
    assert vector_index.uuid_literal(value) == str(value)
    assert vector_index.uuid_literal(str(value).upper()) == str(value)
    for bad in ["x' OR '1'='1", f"{value}'; DROP TABLE embeddings_face; --", "", "1234"]:
        with pytest.raises(ValueError):
            vector_index.uuid_literal(bad)
    name = vector_index.collection_index_name("m", value)
    assert len(name) <= 63 and name.startswith(vector_index.COLLECTION_INDEX_PREFIX)
    assert name != vector_index.collection_index_name("m2", value)


def test_big_tenants_get_their_own_index_and_search_uses_only_theirs(committed_db, small_threshold, model_id):
    rng = np.random.default_rng(4)
    vectors_a, vectors_b, vectors_c = _unit(rng, 300), _unit(rng, 200), _unit(rng, 40)
    vector_index.ensure_vector_index(model_id, DIM)  # the shared fallback exists too
    big_a = _tenant_with_faces(model_id, vectors_a)
    big_b = _tenant_with_faces(model_id, vectors_b)
    small = _tenant_with_faces(model_id, vectors_c)
    try:
        planned = vector_index.maintain_tenant_indexes(dry_run=True)
        to_build = {(m, t) for m, _, t, _, _ in planned.build}
        assert {(model_id, str(big_a.id)), (model_id, str(big_b.id))} <= to_build
        assert (model_id, str(small.id)) not in to_build

        work = vector_index.maintain_tenant_indexes()
        name_a = vector_index.collection_index_name(model_id, _collection(big_a))
        name_b = vector_index.collection_index_name(model_id, _collection(big_b))
        assert {name_a, name_b} <= set(work.built)
        assert vector_index.has_collection_index(model_id, _collection(big_a))
        assert not vector_index.has_collection_index(model_id, _collection(small))
        again = vector_index.maintain_tenant_indexes()  # idempotent
        assert name_a not in again.built and name_a not in again.dropped

        with connection.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name_a])
            definition = cursor.fetchone()[0]
        assert f"tenant_id = '{big_a.id}'::uuid" in definition and "hnsw" in definition

        probe = vectors_a[17] + 0.1 * _unit(rng, 1)[0]
        plan = _plan_of_search(big_a, model_id, probe)
        assert name_a in plan, plan
        assert name_b not in plan and vector_index.index_name(model_id) not in plan

        timings = selectors.SearchTimings()
        ann = selectors.search_faces(tenant_id=big_a.id, embedding=probe, model_id=model_id, top_k=10,
                                     timings=timings)
        assert timings.strategy == "hnsw-collection"
        small_threshold.EXACT_SEARCH_MAX_FACES = 10**9
        cache.clear()
        exact_timings = selectors.SearchTimings()
        exact = selectors.search_faces(tenant_id=big_a.id, embedding=probe, model_id=model_id, top_k=10,
                                       timings=exact_timings)
        assert exact_timings.strategy == "exact"
        assert [m.face_id for m in ann] == [m.face_id for m in exact]
        with tenant_context(big_a.id):
            own = set(Face.objects.filter(tenant_id=big_a.id).values_list("id", flat=True))
        assert {m.face_id for m in ann} <= own
    finally:
        for tenant in (big_a, big_b, small):
            _purge(tenant)
    assert not vector_index.has_collection_index(model_id, _collection(big_a))


def test_purge_drops_the_tenants_index(committed_db, small_threshold, model_id):
    rng = np.random.default_rng(5)
    tenant = _tenant_with_faces(model_id, _unit(rng, 150))
    assert vector_index.ensure_collection_index(model_id, DIM, tenant.id, _collection(tenant))
    assert not vector_index.ensure_collection_index(model_id, DIM, tenant.id, _collection(tenant))  # already there
    name = vector_index.collection_index_name(model_id, _collection(tenant))
    assert name in vector_index.valid_collection_index_names()
    _purge(tenant)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexname = %s", [name])
        assert cursor.fetchone()[0] == 0
    assert name not in vector_index.valid_collection_index_names()


def test_shrunk_tenant_loses_its_index_only_below_half_the_threshold(committed_db, small_threshold, model_id):
    rng = np.random.default_rng(6)
    tenant = _tenant_with_faces(model_id, _unit(rng, 150))
    name = vector_index.collection_index_name(model_id, _collection(tenant))
    try:
        assert name in vector_index.maintain_tenant_indexes().built
        services.delete_faces(tenant_id=tenant.id, actor=ACTOR, asset_ids=["a0"])  # 100 left
        assert name not in vector_index.maintain_tenant_indexes().dropped  # 100 > 100 / 2: kept
        assert name in vector_index.valid_collection_index_names()
        services.delete_faces(tenant_id=tenant.id, actor=ACTOR, asset_ids=["a50"])  # 50 left
        assert name in vector_index.maintain_tenant_indexes().dropped
        assert name not in vector_index.valid_collection_index_names()
    finally:
        _purge(tenant)


def test_interrupted_build_is_rebuilt(committed_db, small_threshold, model_id):
    """A CONCURRENTLY build that fails leaves an INVALID index behind; the next run replaces it."""
    rng = np.random.default_rng(7)
    tenant = _tenant_with_faces(model_id, _unit(rng, 120))
    name = vector_index.collection_index_name(model_id, _collection(tenant))
    try:
        with connection.cursor() as cursor:
            # A valid index definition whose build fails part way (a division by zero
            # in the indexed expression), as a cancelled build would leave it.
            with pytest.raises(Exception, match="division by zero"):
                cursor.execute(f"CREATE INDEX CONCURRENTLY {name} ON embeddings_face "
                               f"((1 / (key_version - key_version))) WHERE tenant_id = '{tenant.id}'")
            cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = %s::regclass", [name])
            assert cursor.fetchone()[0] is False
        assert name not in vector_index.valid_collection_index_names(refresh=True)
        assert name in vector_index.maintain_tenant_indexes().built
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
            assert "hnsw" in cursor.fetchone()[0]
    finally:
        _purge(tenant)


def test_building_inside_a_transaction_is_refused(db, model_id):
    assert vector_index.may_create_indexes()  # the test role owns the tables, as in `./dev run`
    with pytest.raises(RuntimeError, match="CONCURRENTLY"):
        vector_index.ensure_collection_index(model_id, DIM, uuid.uuid4(), uuid.uuid4())
