"""The encrypted face store against the real PostgreSQL + pgvector (synthetic embeddings)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.db import connection
from django.utils import timezone

from embeddings.models import Asset, Face
from embeddings.search import selectors
from embeddings.store import selectors as store_selectors
from embeddings.store import services
from embeddings.store.vector_index import ensure_vector_index
from faceservice.tenancy import tenant_context
from tenants import data_keys
from tenants.models import TenantKey
from tests.embeddings.conftest import ACTOR, DIM, MODEL, FakeDetection, index, unit


def test_indexed_face_is_found_by_its_own_embedding(tenant):
    rng = np.random.default_rng(1)
    vectors = unit(rng, 20)
    for i, v in enumerate(vectors):
        index(tenant, f"asset-{i}", [v], subject_id=f"person-{i % 5}")
    probe = vectors[7] + 0.05 * unit(rng)[0]
    matches = selectors.search_faces(tenant_id=tenant.id, embedding=probe, model_id=MODEL, top_k=3)
    assert matches[0].asset_id == "asset-7"
    assert matches[0].similarity > 0.9
    assert [m.similarity for m in matches] == sorted((m.similarity for m in matches), reverse=True)


def test_no_plaintext_embedding_is_stored(tenant):
    rng = np.random.default_rng(2)
    v = unit(rng)[0]
    index(tenant, "a", [v])
    with tenant_context(tenant.id):
        face = Face.objects.get(tenant_id=tenant.id)
    raw = v.astype("<f4").tobytes()
    assert raw not in bytes(face.embedding_ciphertext)
    stored = np.asarray(face.search_vector, dtype=np.float32)
    # The search vector is a rotation of the embedding: same length, different direction.
    assert abs(np.linalg.norm(stored) - 1) < 1e-5
    assert abs(float(stored @ v)) < 0.5
    # Canonical embedding decrypts back exactly.
    embedding, model_id = store_selectors.face_embedding(tenant_id=tenant.id, face_id=face.id)
    assert model_id == MODEL and np.allclose(embedding, v, atol=1e-7)


def test_reindexing_an_asset_replaces_its_faces(tenant):
    rng = np.random.default_rng(3)
    first = index(tenant, "photo", unit(rng, 3))
    second = index(tenant, "photo", unit(rng, 2))
    assert second.replaced == 3
    with tenant_context(tenant.id):
        assert set(Face.objects.filter(tenant_id=tenant.id).values_list("id", flat=True)) == set(second.face_ids)
        assert Asset.objects.get(tenant_id=tenant.id, asset_id="photo").face_count == 2
    assert not set(first.face_ids) & set(second.face_ids)


def test_a_stale_submission_does_not_replace_a_newer_one(tenant):
    rng = np.random.default_rng(4)
    now = timezone.now()
    newer = index(tenant, "photo", unit(rng, 2), submitted_at=now)
    stale = index(tenant, "photo", unit(rng, 5), submitted_at=now - timedelta(minutes=1))
    assert stale.superseded
    assert sorted(stale.face_ids) == sorted(newer.face_ids)


def test_same_face_under_two_tenants_does_not_match(tenant, other_tenant):
    rng = np.random.default_rng(5)
    v = unit(rng)[0]
    index(tenant, "a", [v])
    index(other_tenant, "b", [v])
    with connection.cursor() as cursor, tenant_context(tenant.id):
        cursor.execute("SELECT search_vector FROM embeddings_face WHERE tenant_id = %s", [str(tenant.id)])
        (ya,) = cursor.fetchone()
    with connection.cursor() as cursor, tenant_context(other_tenant.id):
        cursor.execute("SELECT search_vector FROM embeddings_face WHERE tenant_id = %s", [str(other_tenant.id)])
        (yb,) = cursor.fetchone()
    ya, yb = (np.array([float(x) for x in y.strip("[]").split(",")]) for y in (ya, yb))
    assert abs(float(ya @ yb)) < 0.4
    # And each tenant's search sees only its own face.
    matches = selectors.search_faces(tenant_id=other_tenant.id, embedding=v, model_id=MODEL)
    assert [m.asset_id for m in matches] == ["b"]


def test_delete_by_subject_leaves_nothing_and_is_idempotent(tenant):
    rng = np.random.default_rng(6)
    index(tenant, "a1", unit(rng, 2), subject_id="alice")
    index(tenant, "b1", unit(rng, 1), subject_id="bob")
    receipt = services.delete_faces(tenant_id=tenant.id, subject_ids=["alice"], actor=ACTOR)
    assert receipt.faces_deleted == 2 and receipt.assets_deleted == 1
    again = services.delete_faces(tenant_id=tenant.id, subject_ids=["alice"], actor=ACTOR)
    assert again.faces_deleted == 0
    with tenant_context(tenant.id):
        assert list(Face.objects.filter(tenant_id=tenant.id).values_list("subject_id", flat=True)) == ["bob"]


def test_purge_shreds_keys_so_nothing_decrypts(tenant):
    rng = np.random.default_rng(7)
    index(tenant, "a", unit(rng, 2))
    receipt = services.purge_tenant_face_data(tenant_id=tenant.id, actor=ACTOR)
    assert receipt.faces_deleted == 2 and receipt.keys_destroyed == 1
    with tenant_context(tenant.id):
        key = TenantKey.objects.get(tenant_id=tenant.id)
    assert key.wrapped_key is None and key.status == TenantKey.Status.DESTROYED
    with pytest.raises(data_keys.NoDataKey):
        data_keys.key_cache().clear()
        data_keys.data_key(tenant_id=tenant.id, version=key.version)


def test_key_rotation_reencrypts_online_and_search_keeps_working(tenant):
    rng = np.random.default_rng(8)
    vectors = unit(rng, 30)
    for i, v in enumerate(vectors):
        index(tenant, f"a{i}", [v])
    data_keys.start_key_rotation(tenant_id=tenant.id, actor=ACTOR)
    # Half-way: both versions readable, search finds faces under either.
    services.reencrypt_batch(tenant_id=tenant.id, batch_size=15, actor=ACTOR)
    with tenant_context(tenant.id):
        assert set(Face.objects.filter(tenant_id=tenant.id).values_list("key_version", flat=True)) == {1, 2}
    for i in (0, 29):
        assert selectors.search_faces(tenant_id=tenant.id, embedding=vectors[i], model_id=MODEL,
                                      top_k=1)[0].asset_id == f"a{i}"
    while services.reencrypt_batch(tenant_id=tenant.id, batch_size=15, actor=ACTOR):
        pass
    with tenant_context(tenant.id):
        statuses = dict(TenantKey.objects.filter(tenant_id=tenant.id).values_list("version", "status"))
    assert statuses == {1: "retired", 2: "active"}
    assert selectors.search_faces(tenant_id=tenant.id, embedding=vectors[3], model_id=MODEL,
                                  top_k=1)[0].asset_id == "a3"


def test_hnsw_path_finds_the_same_as_exact(tenant, settings):
    ensure_vector_index(MODEL, DIM)  # before any insert: CREATE INDEX refuses pending FK checks
    rng = np.random.default_rng(9)
    vectors = unit(rng, 300)
    for i in range(0, 300, 50):
        services.replace_asset_faces(tenant_id=tenant.id, asset_id=f"batch-{i}",
                                     faces=[FakeDetection(v) for v in vectors[i:i + 50]],
                                     model_id=MODEL, submitted_at=timezone.now(), actor=ACTOR)
    probe = vectors[123]
    settings.SEARCH_MEMORY_MAX_BYTES = 0  # pgvector's paths, not the in-memory gallery
    settings.EXACT_SEARCH_MAX_FACES = 0
    from django.core.cache import cache
    cache.clear()
    timings = selectors.SearchTimings()
    ann = selectors.search_faces(tenant_id=tenant.id, embedding=probe, model_id=MODEL, top_k=5, timings=timings)
    assert timings.strategy == "hnsw"
    settings.EXACT_SEARCH_MAX_FACES = 10**9
    cache.clear()
    exact = selectors.search_faces(tenant_id=tenant.id, embedding=probe, model_id=MODEL, top_k=5)
    assert [m.face_id for m in ann] == [m.face_id for m in exact]


def test_tampered_ciphertext_is_refused(tenant):
    rng = np.random.default_rng(10)
    result = index(tenant, "a", unit(rng, 1))
    # Flip one bit, as an attacker with write access to the table would.
    with tenant_context(tenant.id):
        face = Face.objects.get(id=result.face_ids[0])
        blob = bytearray(face.embedding_ciphertext)
        blob[20] ^= 1
        Face.objects.filter(id=face.id).update(embedding_ciphertext=bytes(blob))
    from embeddings.store.protection import EmbeddingIntegrityError
    with pytest.raises(EmbeddingIntegrityError):
        store_selectors.face_embedding(tenant_id=tenant.id, face_id=face.id)
