"""Reads of face data: tenant-scoped vector search with exact re-ranking, listings.

Search one collection, for each readable key version of the tenant (two
during a key rotation): project the query with that version's secret matrix,
fetch candidates (the collection's in-memory gallery; else pgvector: HNSW for
large collections, the collection's own partial index once
vector_index.maintain_tenant_indexes has built it, else the model's shared one;
an exact scan of the collection's rows for small ones), then decrypt the
candidates' canonical embeddings and re-rank by exact cosine, then apply the threshold.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from embeddings.search.gallery import GalleryState, bytes_per_face, galleries
from embeddings.store.collections import collection_id_of
from embeddings.store.protection import decrypt_embeddings, project, projection_matrix
from embeddings.store.vector_index import _check, collection_predicate, has_collection_index, vector_expression
from faceservice import metrics
from faceservice.tenancy import tenant_context
from tenants import data_keys
from tenants.models import TenantKey


@dataclass(frozen=True)
class Match:
    face_id: UUID
    asset_id: str
    subject_id: str | None
    similarity: float
    bbox: list[float]


@dataclass
class SearchTimings:
    vector_search_ms: float = 0.0
    rerank_ms: float = 0.0
    candidates: int = 0
    strategy: str = ""
    extra: dict = field(default_factory=dict)
    generation: int | None = None  # the tenant's gallery generation, when the search read it


def faces_of_model(*, tenant_id: UUID | str, collection_id: UUID | str, model_id: str, up_to: int) -> int:
    """How many faces of this model the collection has, counted up to `up_to` (cached briefly).

    It picks the strategy, which only asks "more than EXACT_SEARCH_MAX_FACES?":
    counting stops there, so a cache miss for a collection of 500k faces costs a
    scan of at most `up_to` index entries, not of all its rows.
    """
    key = f"face-count:{tenant_id}:{collection_id}:{model_id}"
    cached = cache.get(key)
    # A count made with a higher cap answers a lower one: callers asking with
    # different caps (the memory budget, EXACT_SEARCH_MAX_FACES) share one entry.
    if isinstance(cached, tuple) and cached[0] >= up_to:
        return min(cached[1], up_to)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM (SELECT 1 FROM embeddings_face WHERE tenant_id = %s "
                       "AND collection_id = %s AND model_id = %s LIMIT %s) AS counted",
                       [str(tenant_id), str(collection_id), model_id, up_to])
        count = cursor.fetchone()[0]
    cache.set(key, (up_to, count), timeout=60)
    return count


# Gallery sizes (the N of a calibrated threshold) are reused while the tenant's
# faces have not changed (its gallery generation: embeddings/store/generations.py).
# Once they have, a small count (up to RECOUNT_BELOW rows, about a millisecond)
# is made again at once, so a collection filled a moment ago gets its new
# threshold on the next search; a larger one after COUNT_TTL_SECONDS: the
# threshold follows log N (doubling N moves the test pack's by ~0.02), and a
# collection of 10k+ faces does not double in a minute.
RECOUNT_BELOW = 10_000
COUNT_TTL_SECONDS = 60


def gallery_size(*, tenant_id: UUID | str, collection_id: UUID | str, model_id: str,
                 subject_ids: Sequence[str] | None = None, asset_ids: Sequence[str] | None = None,
                 generation: int | None = None) -> int:
    """How many faces a search looks through: the N of its calibrated threshold.

    The collection's faces of the model (cached, see RECOUNT_BELOW), or, with
    subject_ids / asset_ids, the faces they select (counted each time: at most
    1,000 ids, read from the subject or asset index). Counted up to
    SEARCH_GALLERY_COUNT_MAX. `generation`: the tenant's gallery generation if
    the caller read it already (SearchTimings.generation). Call inside the tenant's scope.
    """
    filters, params = _id_filters(subject_ids, asset_ids)
    where = "".join(f" AND {f}" for f in filters)
    sql = ("SELECT count(*) FROM (SELECT 1 FROM embeddings_face WHERE tenant_id = %s "  # noqa: S608
           f"AND collection_id = %s AND model_id = %s{where} LIMIT %s) AS counted")
    values = [str(tenant_id), str(collection_id), model_id, *params, settings.SEARCH_GALLERY_COUNT_MAX]
    if filters:
        return _count(sql, values)
    return _counted(f"gallery-size:{tenant_id}:{collection_id}:{model_id}", tenant_id, sql, values, generation)


def subject_count(*, tenant_id: UUID | str, collection_id: UUID | str, model_id: str,
                  generation: int | None = None) -> int:
    """How many subjects (persons) of the model the collection has: the N of a person search.

    Cached like gallery_size; counted up to SEARCH_GALLERY_COUNT_MAX distinct
    subjects (an index scan of the collection's subject ids). Call inside the tenant's scope.
    """
    sql = ("SELECT count(*) FROM (SELECT DISTINCT subject_id FROM embeddings_face WHERE tenant_id = %s "
           "AND collection_id = %s AND model_id = %s AND subject_id IS NOT NULL LIMIT %s) AS counted")
    values = [str(tenant_id), str(collection_id), model_id, settings.SEARCH_GALLERY_COUNT_MAX]
    return _counted(f"subject-count:{tenant_id}:{collection_id}:{model_id}", tenant_id, sql, values, generation)


def _counted(key: str, tenant_id: UUID | str, sql: str, values: list, generation: int | None) -> int:
    """A count from the cache while still good (see RECOUNT_BELOW), else counted again."""
    cached = cache.get(key)
    if isinstance(cached, tuple) and len(cached) == 3:
        counted_at, count, at = cached
        if count > RECOUNT_BELOW and time.time() - at < COUNT_TTL_SECONDS:
            return count
        generation = _generation(tenant_id) if generation is None else generation
        if counted_at == generation:
            return count
    generation = _generation(tenant_id) if generation is None else generation
    count = _count(sql, values)
    cache.set(key, (generation, count, time.time()), timeout=3600)
    return count


def _count(sql: str, values: list) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.fetchone()[0]


def _generation(tenant_id: UUID | str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT generation FROM embeddings_gallerystate WHERE tenant_id = %s", [str(tenant_id)])
        row = cursor.fetchone()
    return row[0] if row else 0


def _id_filters(subject_ids, asset_ids) -> tuple[list[str], list]:
    """SQL conditions (and their parameters) narrowing to these subjects and assets."""
    filters, params = [], []
    if subject_ids:
        filters.append("subject_id = ANY(%s)")
        params.append(list(subject_ids))
    if asset_ids:
        filters.append("asset_id = ANY(%s)")
        params.append(list(asset_ids))
    return filters, params


# A face past its expiry is never an answer, whenever the retention purge runs.
_NOT_EXPIRED = "(expires_at IS NULL OR expires_at > statement_timestamp())"


def _candidate_rows(*, tenant_id, collection_id, model_id: str, key_version: int, query: np.ndarray,
                    limit: int, exact: bool, subject_ids, asset_ids) -> list[tuple]:
    dimension = int(query.shape[0])
    _check(model_id, dimension)
    distance = f"{vector_expression(dimension)} <#> %s::vector({dimension})"
    # An exact scan must not use the HNSW index: "+ 0" makes the ORDER BY
    # expression differ from the indexed one, so the planner uses the tenant's
    # btree rows and sorts them.
    order = f"({distance}) + 0" if exact else distance
    id_filters, id_params = _id_filters(subject_ids, asset_ids)
    filters, params = ["key_version = %s", _NOT_EXPIRED, *id_filters], [key_version, *id_params]
    # Only validated literals (model id, dimension, canonical UUIDs) are
    # formatted in; other values are parameters. The model, tenant and collection
    # must be literals: the planner matches them against the partial indexes'
    # predicates (the collection's own index if it has one, else the model's shared one).
    sql = (f"SELECT id, asset_id, subject_id, bbox, embedding_ciphertext FROM embeddings_face "  # noqa: S608
           f"WHERE {collection_predicate(model_id, tenant_id, collection_id)} AND {' AND '.join(filters)} "
           f"ORDER BY {order} LIMIT %s")
    vector_text = "[" + ",".join(f"{v:.7g}" for v in query.tolist()) + "]"
    with connection.cursor() as cursor:
        # Placeholders in order: the filters (WHERE), the vector (ORDER BY), the limit.
        cursor.execute(sql, [*params, vector_text, limit])
        return cursor.fetchall()


# The tenant's readable key versions (data_keys.readable_versions() without the
# nested tenant scope it opens: the caller holds one) and its gallery
# generations (embeddings/search/gallery.py). On the HNSW path the same statement sets
# the scan's settings for the transaction: one round trip instead of two. The
# one-row subquery (OFFSET 0 keeps it apart) runs before any version comes
# back, so before the vector query that needs the settings.
_VERSIONS_SQL = (
    "SELECT k.version, g.generation, g.removed_generation FROM tenants_tenantkey k "
    "LEFT JOIN embeddings_gallerystate g ON g.tenant_id = k.tenant_id "
    "WHERE k.tenant_id = %s AND k.status IN (%s, %s) ORDER BY k.version DESC")
_VERSIONS_WITH_HNSW_SQL = (
    "SELECT k.version, NULL, NULL FROM (SELECT set_config('hnsw.ef_search', %s, true), "
    "set_config('hnsw.iterative_scan', 'relaxed_order', true) OFFSET 0) AS hnsw, tenants_tenantkey k "
    "WHERE k.tenant_id = %s AND k.status IN (%s, %s) ORDER BY k.version DESC")


def _readable_versions_in_context(tenant_id, *, hnsw_ef_search: int | None = None
                                  ) -> tuple[list[int], GalleryState]:
    readable = [TenantKey.Status.ACTIVE.value, TenantKey.Status.RETIRING.value]
    with connection.cursor() as cursor:
        if hnsw_ef_search is None:
            cursor.execute(_VERSIONS_SQL, [str(tenant_id), *readable])
        else:
            cursor.execute(_VERSIONS_WITH_HNSW_SQL, [str(hnsw_ef_search), str(tenant_id), *readable])
        rows = cursor.fetchall()
    state = GalleryState(rows[0][1] or 0, rows[0][2] or 0) if rows else GalleryState()
    return [row[0] for row in rows], state


MEMORY_CANDIDATE_MARGIN = 8
_ROWS_BY_ID_SQL = ("SELECT id, asset_id, subject_id, bbox, embedding_ciphertext FROM embeddings_face "  # noqa: S608
                   "WHERE tenant_id = %s AND collection_id = %s AND id = ANY(%s) AND model_id = %s "
                   f"AND key_version = %s AND {_NOT_EXPIRED}")


def _rows_by_id(*, tenant_id, collection_id, model_id: str, key_version: int, face_ids: list[UUID]) -> list[tuple]:
    """The candidates' rows; a face deleted since the gallery was loaded is not among them."""
    if not face_ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_ROWS_BY_ID_SQL, [str(tenant_id), str(collection_id), face_ids, model_id, key_version])
        return cursor.fetchall()


def _fits_in_memory(tenant_id, collection_id, model_id: str, dimension: int) -> bool:
    """Whether this collection's faces of the model are searched from an in-memory gallery."""
    budget = settings.SEARCH_MEMORY_MAX_BYTES
    if budget <= 0:
        metrics.count_gallery_fallback("disabled")
        return False
    if galleries.holds(tenant_id, collection_id, model_id):
        return True
    most = budget // bytes_per_face(dimension)
    faces = faces_of_model(tenant_id=tenant_id, collection_id=collection_id, model_id=model_id, up_to=most + 1)
    if faces > most:
        metrics.count_gallery_fallback("too_large")
        return False
    if faces > settings.SEARCH_MEMORY_SYNC_LOAD_FACES:
        galleries.load_in_background(tenant_id=tenant_id, collection_id=collection_id, model_id=model_id,
                                     dimension=dimension, read_state=_state_reader(tenant_id))
        return False  # pgvector answers until the gallery is in
    return True


def _state_reader(tenant_id):
    """What a gallery loaded in its own thread reads there: the versions and generations."""
    return lambda: _readable_versions_in_context(tenant_id)


def search_faces(*, tenant_id: UUID | str, embedding: np.ndarray, model_id: str, top_k: int = 10,
                 threshold: float = 0.0, subject_ids: list[str] | None = None,
                 asset_ids: list[str] | None = None, collection_id: UUID | None = None,
                 timings: SearchTimings | None = None) -> list[Match]:
    """The collection's faces most similar to `embedding`, best first, at or above `threshold`."""
    return search_faces_many(tenant_id=tenant_id, embeddings=[embedding], model_id=model_id, top_k=top_k,
                             threshold=threshold, subject_ids=subject_ids, asset_ids=asset_ids,
                             collection_id=collection_id, timings=timings)[0]


def search_faces_many(*, tenant_id: UUID | str, embeddings: Sequence[np.ndarray], model_id: str,
                      top_k: int = 10, threshold: float = 0.0, subject_ids: list[str] | None = None,
                      asset_ids: list[str] | None = None, collection_id: UUID | None = None,
                      timings: SearchTimings | None = None) -> list[list[Match]]:
    """search_faces for several query faces (e.g. every face of a group photo), one result list each.

    The tenant scope, the key versions, the strategy and the HNSW settings are
    looked up once for all faces; each face then costs one vector query.
    """
    timings = timings or SearchTimings()
    queries = [np.asarray(embedding, dtype=np.float32) for embedding in embeddings]
    if not queries:
        return []
    limit = max(top_k * settings.SEARCH_CANDIDATE_FACTOR, settings.SEARCH_MIN_CANDIDATES)
    candidates: list[list[tuple[tuple, int, bytes]]] = [[] for _ in queries]
    dimension = int(queries[0].shape[0])
    with tenant_context(tenant_id):
        collection_id = collection_id_of(tenant_id, collection_id)
        in_memory = (not subject_ids and not asset_ids
                     and _fits_in_memory(tenant_id, collection_id, model_id, dimension))
        most_exact = settings.EXACT_SEARCH_MAX_FACES
        exact = in_memory or faces_of_model(tenant_id=tenant_id, collection_id=collection_id, model_id=model_id,
                                            up_to=most_exact + 1) <= most_exact
        # A collection's own graph holds only its faces: it needs a different
        # ef_search than the shared graph searched with a filter.
        own_index = not exact and has_collection_index(model_id, collection_id)
        timings.strategy = ("memory" if in_memory else "exact" if exact
                            else "hnsw-collection" if own_index else "hnsw")
        ef_search = None if exact else max(
            settings.HNSW_TENANT_EF_SEARCH if own_index else settings.HNSW_EF_SEARCH, limit)
        versions, state = _readable_versions_in_context(tenant_id, hnsw_ef_search=ef_search)
        if ef_search is None:
            # Read in the same statement: gallery_size's cached count checks against it for free.
            timings.generation = state.generation
        for version in versions:
            key = data_keys.data_key(tenant_id=tenant_id, version=version)
            gallery = None
            if in_memory:
                started = time.perf_counter()
                gallery = galleries.synced(tenant_id=tenant_id, collection_id=collection_id, model_id=model_id,
                                           key_version=version, dimension=dimension, state=state,
                                           read_state=_state_reader(tenant_id))
                # Part of the vector search: a gallery's first load or top-up is paid here.
                timings.vector_search_ms += (time.perf_counter() - started) * 1000
            for query, found in zip(queries, candidates, strict=True):
                matrix = projection_matrix(dek=key, key_version=version, dimension=query.shape[0],
                                           model_id=model_id)
                started = time.perf_counter()
                if gallery is not None:
                    # The scan's order is exact up to half precision: a few
                    # candidates beyond top_k are enough for the exact re-rank.
                    nearest = gallery.nearest(project(matrix, query), top_k + MEMORY_CANDIDATE_MARGIN)
                    scanned = time.perf_counter()
                    timings.extra["gallery_scan_ms"] = (timings.extra.get("gallery_scan_ms", 0.0)
                                                        + (scanned - started) * 1000)
                    rows = _rows_by_id(tenant_id=tenant_id, collection_id=collection_id, model_id=model_id,
                                       key_version=version, face_ids=nearest)
                else:
                    rows = _candidate_rows(tenant_id=tenant_id, collection_id=collection_id, model_id=model_id,
                                           key_version=version,
                                           query=project(matrix, query), limit=limit, exact=exact,
                                           subject_ids=subject_ids, asset_ids=asset_ids)
                timings.vector_search_ms += (time.perf_counter() - started) * 1000
                found.extend((row, version, key) for row in rows)
    results = []
    for query, found in zip(queries, candidates, strict=True):
        started = time.perf_counter()
        matches = rerank(tenant_id=tenant_id, query=query, model_id=model_id, candidates=found)
        timings.rerank_ms += (time.perf_counter() - started) * 1000
        timings.candidates += len(found)
        results.append([m for m in matches if m.similarity >= threshold][:top_k])
    return results


def rerank(*, tenant_id, query: np.ndarray, model_id: str, candidates: list) -> list[Match]:
    """Exact cosine on the decrypted canonical embeddings, best first."""
    if not candidates:
        return []
    by_key: dict[tuple[int, bytes], list[int]] = {}  # one key derivation per key version
    for i, (_, version, key) in enumerate(candidates):
        by_key.setdefault((version, key), []).append(i)
    embeddings = np.empty((len(candidates), query.shape[0]), dtype=np.float32)
    for (version, key), rows in by_key.items():
        embeddings[rows] = decrypt_embeddings(
            dek=key, ciphertexts=[candidates[i][0][4] for i in rows],
            face_ids=[str(candidates[i][0][0]) for i in rows], tenant_id=str(tenant_id),
            key_version=version, model_id=model_id, dimension=query.shape[0])
    similarities = embeddings @ (query / np.linalg.norm(query))
    order = np.argsort(-similarities, kind="stable")
    return [Match(face_id=candidates[i][0][0], asset_id=candidates[i][0][1], subject_id=candidates[i][0][2],
                  similarity=float(similarities[i]), bbox=candidates[i][0][3]) for i in order]
