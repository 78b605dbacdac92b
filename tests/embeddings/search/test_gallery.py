"""In-memory search galleries (embeddings/search/gallery.py) against the real PostgreSQL + pgvector."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from embeddings.models import Face, GalleryState
from embeddings.search import selectors
from embeddings.search.gallery import bytes_per_face, galleries
from embeddings.store import services
from embeddings.store.collections import collection_named
from faceservice.tenancy import tenant_context
from tenants import data_keys
from tests.embeddings.conftest import ACTOR, DIM, MODEL, index, unit


def search(tenant, probe, **kwargs):
    timings = selectors.SearchTimings()
    matches = selectors.search_faces(tenant_id=tenant.id, embedding=probe, model_id=MODEL, timings=timings,
                                     **kwargs)
    return matches, timings


def held(tenant, version=1):
    """The gallery this process holds for the tenant's default collection (None if none)."""
    with tenant_context(tenant.id):
        collection_id = collection_named(tenant.id).id
    return galleries._galleries.get((str(tenant.id), str(collection_id), MODEL, version))


@pytest.fixture
def gallery_tenant(tenant):
    rng = np.random.default_rng(31)
    vectors = unit(rng, 300)
    for i in range(0, 300, 30):
        index(tenant, f"batch-{i}", vectors[i:i + 30])
    return tenant, vectors


def test_memory_search_returns_what_the_exact_scan_returns(gallery_tenant, settings):
    tenant, vectors = gallery_tenant
    rng = np.random.default_rng(5)
    for probe in [vectors[17], vectors[250] + 0.3 * unit(rng)[0], unit(rng)[0]]:
        in_memory, timings = search(tenant, probe, top_k=10)
        assert timings.strategy == "memory" and held(tenant).size == 300
        settings.SEARCH_MEMORY_MAX_BYTES = 0
        exact, exact_timings = search(tenant, probe, top_k=10)
        settings.SEARCH_MEMORY_MAX_BYTES = 512 * 1024 * 1024
        assert exact_timings.strategy == "exact"
        assert [m.face_id for m in in_memory] == [m.face_id for m in exact]
        assert [m.similarity for m in in_memory] == pytest.approx([m.similarity for m in exact], abs=1e-6)


def test_faces_written_after_the_load_are_found_and_only_they_are_fetched(gallery_tenant):
    tenant, vectors = gallery_tenant
    search(tenant, vectors[0])
    loaded = held(tenant)
    generation = loaded.generation
    fresh = unit(np.random.default_rng(77), 3)
    index(tenant, "late", fresh)
    matches, _ = search(tenant, fresh[1], top_k=1)
    assert matches[0].asset_id == "late" and matches[0].similarity > 0.999
    assert held(tenant) is loaded and loaded.size == 303  # topped up, not loaded again
    with tenant_context(tenant.id):
        assert GalleryState.objects.get(tenant=tenant).generation == loaded.generation > generation
        assert set(Face.objects.filter(tenant=tenant, asset_id="late").values_list("gallery_generation",
                                                                                  flat=True)) == {loaded.generation}


def test_deleted_faces_are_never_returned_and_leave_memory_at_the_next_load(gallery_tenant, settings):
    tenant, vectors = gallery_tenant
    settings.SEARCH_MEMORY_RELOAD_SECONDS = 3600
    search(tenant, vectors[0])
    services.delete_faces(tenant_id=tenant.id, actor=ACTOR, asset_ids=["batch-30"])  # vectors 30-59
    matches, timings = search(tenant, vectors[42], top_k=5)
    assert timings.strategy == "memory"
    assert matches and all(m.asset_id != "batch-30" for m in matches)
    assert matches[0].similarity < 0.999
    gallery = held(tenant)
    assert gallery.removals_pending and gallery.size == 300  # still held, never returned

    settings.SEARCH_MEMORY_RELOAD_SECONDS = 0
    search(tenant, vectors[42])
    assert held(tenant) is not gallery and held(tenant).size == 270 and not held(tenant).removals_pending


def test_a_re_indexed_asset_answers_with_its_new_faces_only(gallery_tenant):
    tenant, vectors = gallery_tenant
    search(tenant, vectors[0])
    replacement = unit(np.random.default_rng(8), 1)
    index(tenant, "batch-0", replacement)
    old, _ = search(tenant, vectors[5], top_k=3)
    assert all(m.asset_id != "batch-0" for m in old)
    new, _ = search(tenant, replacement[0], top_k=1)
    assert new[0].asset_id == "batch-0" and new[0].similarity > 0.999


def test_a_purged_tenant_finds_nothing(gallery_tenant):
    tenant, vectors = gallery_tenant
    search(tenant, vectors[0])
    services.purge_tenant_face_data(tenant_id=tenant.id, actor=ACTOR)
    matches, _ = search(tenant, vectors[0])
    assert matches == []


def test_faces_moved_to_a_new_key_version_stay_findable(gallery_tenant):
    tenant, vectors = gallery_tenant
    search(tenant, vectors[0])
    data_keys.start_key_rotation(tenant_id=tenant.id, actor=ACTOR)
    while services.reencrypt_batch(tenant_id=tenant.id, batch_size=120, actor=ACTOR):
        matches, _ = search(tenant, vectors[299], top_k=1)
        assert matches[0].asset_id == "batch-270" and matches[0].similarity > 0.999
    matches, _ = search(tenant, vectors[3], top_k=1)
    assert matches[0].asset_id == "batch-0" and matches[0].similarity > 0.999


def test_each_tenant_has_its_own_gallery(gallery_tenant, other_tenant):
    tenant, vectors = gallery_tenant
    index(other_tenant, "theirs", unit(np.random.default_rng(12), 1))
    search(tenant, vectors[0])
    matches, timings = search(other_tenant, vectors[0], threshold=0.5)
    assert matches == [] and timings.strategy == "memory"
    assert held(other_tenant).size == 1 and held(tenant).size == 300


def test_a_tenant_over_the_budget_is_searched_in_pgvector(gallery_tenant, settings):
    tenant, vectors = gallery_tenant
    settings.SEARCH_MEMORY_MAX_BYTES = 299 * bytes_per_face(DIM)
    cache.clear()  # the cached face count decides
    matches, timings = search(tenant, vectors[9], top_k=1)
    assert timings.strategy == "exact" and matches[0].asset_id == "batch-0"
    assert held(tenant) is None


def test_the_least_recently_used_gallery_goes_first(gallery_tenant, other_tenant, settings):
    tenant, vectors = gallery_tenant
    index(other_tenant, "one", vectors[:10])
    settings.SEARCH_MEMORY_MAX_BYTES = 305 * bytes_per_face(DIM)  # room for one of the two galleries
    search(tenant, vectors[0])
    search(other_tenant, vectors[0])
    assert held(tenant) is None and held(other_tenant).size == 10
    matches, timings = search(tenant, vectors[7], top_k=1)
    assert timings.strategy == "memory" and matches[0].asset_id == "batch-0"
    assert held(other_tenant) is None and held(tenant).size == 300


def test_filters_use_pgvector(gallery_tenant):
    tenant, vectors = gallery_tenant
    matches, timings = search(tenant, vectors[40], asset_ids=["batch-30"], top_k=1)
    assert timings.strategy == "exact" and matches[0].asset_id == "batch-30"


def test_writers_take_increasing_generations_in_their_transaction(tenant):
    rng = np.random.default_rng(3)
    index(tenant, "a", unit(rng, 2))
    index(tenant, "b", unit(rng, 2))
    with tenant_context(tenant.id), connection.cursor() as cursor:
        cursor.execute("SELECT asset_id, gallery_generation FROM embeddings_face WHERE tenant_id = %s "
                       "ORDER BY gallery_generation", [str(tenant.id)])
        rows = cursor.fetchall()
        state = GalleryState.objects.get(tenant=tenant)
    assert [r[0] for r in rows] == ["a", "a", "b", "b"] and rows[0][1] < rows[2][1] == state.generation
    assert state.removed_generation == 0
    index(tenant, "a", unit(rng, 1), submitted_at=timezone.now())  # replaces: a removal
    with tenant_context(tenant.id):
        state = GalleryState.objects.get(tenant=tenant)
    assert state.removed_generation == state.generation == rows[2][1] + 1


def test_galleries_not_searched_for_a_while_are_dropped(gallery_tenant, other_tenant, settings):
    tenant, vectors = gallery_tenant
    index(other_tenant, "one", vectors[:3])
    search(tenant, vectors[0])
    search(other_tenant, vectors[0])
    held(tenant).used_at -= 301  # its last search, as if five minutes ago
    settings.SEARCH_MEMORY_IDLE_SECONDS = 300
    assert galleries.drop_idle() == 1
    assert held(tenant) is None and held(other_tenant) is not None
    assert galleries._janitor.is_alive()  # the thread that calls drop_idle in the web process


def test_a_second_writer_waits_for_the_first_to_commit_so_generations_are_seen_in_order(committed_db):
    """The argument the galleries rest on: generation G committed means every row at or below G is visible."""
    import threading
    import uuid

    from django.db import connections, transaction

    from audit.services import Actor
    from embeddings.store.generations import next_generation
    from tenants import services as tenant_services

    tenant = tenant_services.create_tenant(name=f"gen-{uuid.uuid4().hex[:10]}", actor=Actor.operator("tests"))
    first_took, first_may_commit, seen = threading.Event(), threading.Event(), {}

    def first_writer():
        with transaction.atomic(), tenant_context(tenant.id):
            seen["first"] = next_generation(tenant.id, removes=False)
            first_took.set()
            first_may_commit.wait(10)
        connections.close_all()

    def second_writer():
        first_took.wait(10)
        with transaction.atomic(), tenant_context(tenant.id):
            seen["value"] = next_generation(tenant.id, removes=False)
            seen["at"] = "after" if first_may_commit.is_set() else "before"
        connections.close_all()

    threads = [threading.Thread(target=first_writer), threading.Thread(target=second_writer)]
    for thread in threads:
        thread.start()
    threads[1].join(timeout=0.5)
    assert threads[1].is_alive() and "value" not in seen  # blocked on the first writer's row lock
    first_may_commit.set()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == {"first": 1, "value": 2, "at": "after"}


def test_a_large_tenant_is_loaded_beside_the_searches_which_use_pgvector_meanwhile(committed_db, settings):
    """Above SEARCH_MEMORY_SYNC_LOAD_FACES no search waits for a load: neither the first nor a reload."""
    import time
    import uuid

    from audit.services import Actor
    from tenants import services as tenant_services

    settings.SEARCH_MEMORY_SYNC_LOAD_FACES = 20
    settings.SEARCH_MEMORY_RELOAD_SECONDS = 0
    cache.clear()
    tenant = tenant_services.create_tenant(name=f"big-{uuid.uuid4().hex[:10]}", actor=Actor.operator("tests"))
    vectors = unit(np.random.default_rng(41), 40)
    index(tenant, "a", vectors[:20])
    index(tenant, "b", vectors[20:])

    def wait_for(condition):
        deadline = time.monotonic() + 10
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert condition()

    first, timings = search(tenant, vectors[25], top_k=1)
    assert timings.strategy == "exact" and first[0].asset_id == "b"  # pgvector, while the gallery loads
    wait_for(lambda: held(tenant) is not None and not galleries.loading)
    assert held(tenant).size == 40
    again, timings = search(tenant, vectors[25], top_k=1)
    assert timings.strategy == "memory" and again[0].face_id == first[0].face_id

    loaded = held(tenant)
    services.delete_faces(tenant_id=tenant.id, actor=ACTOR, asset_ids=["a"])
    matches, timings = search(tenant, vectors[5], top_k=3)
    assert timings.strategy == "memory" and all(m.asset_id == "b" for m in matches)  # the old gallery answered
    wait_for(lambda: held(tenant) is not loaded and not galleries.loading)
    assert held(tenant).size == 20 and not held(tenant).removals_pending
