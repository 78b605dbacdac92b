"""One HNSW index per face model over the untyped vector column.

The column holds vectors of any dimension; each model gets a partial
expression index `(search_vector::vector(d)) vector_ip_ops WHERE model_id = m`,
so a new model needs a new index, not a schema change or dropped data.
Queries must use the same expression and predicate: `vector_sql` builds both.
Inner product on unit vectors ranks exactly like cosine, and is cheaper.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.db.models import Count

from embeddings.store.models import Collection, Face
from faceservice.tenancy import tenant_context
from tenants.models import Tenant

logger = logging.getLogger(__name__)

SAFE_MODEL_ID = re.compile(r"^[A-Za-z0-9_.:+-]{1,100}$")


def _check(model_id: str, dimension: int) -> None:
    # Both end up in SQL text (a partial index predicate must be a literal to
    # be matched by the planner), so they are validated strictly first.
    if not SAFE_MODEL_ID.match(model_id):
        raise ValueError(f"unsafe model id {model_id!r}")
    if not isinstance(dimension, int) or not 2 <= dimension <= 4096:
        raise ValueError(f"bad dimension {dimension!r}")


def index_name(model_id: str) -> str:
    return "face_hnsw_" + hashlib.sha256(model_id.encode()).hexdigest()[:12]


def vector_expression(dimension: int) -> str:
    return f"(search_vector::vector({int(dimension)}))"


def model_predicate(model_id: str) -> str:
    return "model_id = '" + model_id + "'"


def ensure_vector_index(model_id: str, dimension: int) -> bool:
    """Create the model's HNSW index if it is missing. True when it was created."""
    _check(model_id, dimension)
    name = index_name(model_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [name])
        if cursor.fetchone():
            return False
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON embeddings_face USING hnsw "
            f"({vector_expression(dimension)} vector_ip_ops) "
            f"WITH (m = {int(settings.HNSW_M)}, ef_construction = {int(settings.HNSW_EF_CONSTRUCTION)}) "
            f"WHERE {model_predicate(model_id)}"
        )
    return True


# --- Per-collection indexes -----------------------------------------------------------
# A collection that is a small share of the model's faces gets poor recall from
# the shared graph with a filter (the filtered scan has to wade through other
# tenants' nodes: recall 0.49-0.55 at 1M for tenants of 20k-139k faces, where a
# graph of their own reached 0.93-0.97; docs/BENCHMARKS.md). So each collection
# with more than EXACT_SEARCH_MAX_FACES faces gets its own partial index
# `... WHERE model_id = 'm' AND tenant_id = 't' AND collection_id = 'c'`. The
# search query carries the same literal predicate, so the planner can prove the
# partial index applies; until the index exists it uses the shared one. Built
# and dropped by maintain_tenant_indexes (Celery beat and a management command),
# never on a request: CREATE INDEX CONCURRENTLY can take minutes and no transaction.
# (Before collections these were per tenant, named face_hnswt_*: maintenance drops them.)

COLLECTION_INDEX_PREFIX = "face_hnswc_"
_OWN_INDEX_LIKE = "face\\_hnsw_\\_%"  # this prefix and the per-tenant one before it
_valid_names: tuple[float, frozenset[str]] = (0.0, frozenset())
_NAMES_TTL_SECONDS = 30.0


def uuid_literal(value) -> str:
    """A tenant or collection id as canonical UUID text; anything that is not a UUID raises ValueError.

    It is formatted into SQL text (index predicates and the search query must
    hold it as a literal), so only uuid.UUID's own rendering is ever used.
    """
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def collection_index_name(model_id: str, collection_id) -> str:
    # The collection's hex in the name lets a deletion find all of its indexes
    # (whatever the model) without parsing index predicates; 11 + 32 + 1 + 10 < 63.
    collection_hex = uuid.UUID(uuid_literal(collection_id)).hex
    return f"{COLLECTION_INDEX_PREFIX}{collection_hex}_{hashlib.sha256(model_id.encode()).hexdigest()[:10]}"


def collection_predicate(model_id: str, tenant_id, collection_id) -> str:
    return (f"{model_predicate(model_id)} AND tenant_id = '{uuid_literal(tenant_id)}' "
            f"AND collection_id = '{uuid_literal(collection_id)}'")


def valid_collection_index_names(*, refresh: bool = False) -> frozenset[str]:
    """Names of the per-collection indexes that are built and valid (cached per process for 30 s).

    Search uses this only to pick ef_search and to name its strategy: which
    index serves a query is the planner's choice, and it always knows.
    """
    global _valid_names
    fetched_at, names = _valid_names
    if refresh or time.monotonic() - fetched_at > _NAMES_TTL_SECONDS:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indrelid = 'embeddings_face'::regclass AND i.indisvalid AND c.relname LIKE %s",
                [_OWN_INDEX_LIKE])
            names = frozenset(row[0] for row in cursor.fetchall())
        _valid_names = (time.monotonic(), names)
    return names


def has_collection_index(model_id: str, collection_id) -> bool:
    return collection_index_name(model_id, collection_id) in valid_collection_index_names()


def _outside_transaction(what: str) -> None:
    if connection.in_atomic_block:
        raise RuntimeError(f"{what} CONCURRENTLY cannot run inside a transaction")


def _index_valid(cursor, name: str) -> bool | None:
    """True: built and valid; False: left invalid (an interrupted CONCURRENTLY build); None: absent."""
    cursor.execute("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                   "WHERE c.relname = %s", [name])
    row = cursor.fetchone()
    return None if row is None else bool(row[0])


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def ensure_collection_index(model_id: str, dimension: int, tenant_id, collection_id) -> bool:
    """Build the collection's own HNSW index of the model if it is missing (CONCURRENTLY).

    True when it was built now. Idempotent and resumable: an invalid index
    left by an interrupted build is dropped and built again. A session
    advisory lock keeps two builders off the same index (the second returns
    False at once). Searches and writes go on during the build.
    """
    _check(model_id, dimension)
    _outside_transaction("CREATE INDEX")
    name = collection_index_name(model_id, collection_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_lock_key(name)])
        if not cursor.fetchone()[0]:
            return False
        try:
            state = _index_valid(cursor, name)
            if state:
                return False
            if state is False:
                cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            if settings.VECTOR_INDEX_MAINTENANCE_WORK_MEM:
                # The graph must fit, or the build gets several times slower (BENCHMARKS.md).
                cursor.execute("SELECT set_config('maintenance_work_mem', %s, false)",
                               [settings.VECTOR_INDEX_MAINTENANCE_WORK_MEM])
            cursor.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON embeddings_face USING hnsw "
                f"({vector_expression(dimension)} vector_ip_ops) "
                f"WITH (m = {int(settings.HNSW_TENANT_M)}, "
                f"ef_construction = {int(settings.HNSW_TENANT_EF_CONSTRUCTION)}) "
                f"WHERE {collection_predicate(model_id, tenant_id, collection_id)}")
        finally:
            if settings.VECTOR_INDEX_MAINTENANCE_WORK_MEM:
                cursor.execute("RESET maintenance_work_mem")
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_lock_key(name)])
    valid_collection_index_names(refresh=True)
    return True


def _drop(names: list[str]) -> list[str]:
    _outside_transaction("DROP INDEX")
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    if names:
        valid_collection_index_names(refresh=True)
    return names


def _all_own_index_names() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'embeddings_face' AND indexname LIKE %s",
                       [_OWN_INDEX_LIKE])
        return sorted(row[0] for row in cursor.fetchall())


def drop_collection_indexes(collection_id) -> list[str]:
    """Drop every index of the collection, whatever the model (after its deletion). The dropped names."""
    prefix = f"{COLLECTION_INDEX_PREFIX}{uuid.UUID(uuid_literal(collection_id)).hex}_"
    return _drop([name for name in _all_own_index_names() if name.startswith(prefix)])


def drop_tenant_indexes(tenant_id) -> list[str]:
    """Drop the indexes of every collection of the tenant (after a purge). The dropped names."""
    _outside_transaction("DROP INDEX")
    with tenant_context(tenant_id):
        prefixes = tuple(f"{COLLECTION_INDEX_PREFIX}{collection_id.hex}_" for collection_id in
                         Collection.objects.filter(tenant_id=tenant_id).values_list("id", flat=True))
    legacy = f"face_hnswt_{uuid.UUID(uuid_literal(tenant_id)).hex}_"
    return _drop([name for name in _all_own_index_names() if name.startswith((*prefixes, legacy))])


@dataclass
class IndexWork:
    build: list[tuple[str, int, str, str, int]] = field(default_factory=list)  # model, d, tenant, collection, faces
    drop: list[str] = field(default_factory=list)
    built: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    skipped: str = ""


def _face_counts() -> list[tuple[str, str, str, int, int]]:
    """(tenant, collection, model, faces, dimension) of the larger collections, one tenant scope at a time (RLS)."""
    out = []
    for tenant_id in Tenant.objects.values_list("id", flat=True):
        with tenant_context(tenant_id):
            counts = (Face.objects.filter(tenant_id=tenant_id).order_by().values_list("collection_id", "model_id")
                      .annotate(n=Count("id")))
            for collection_id, model_id, faces in counts:
                if faces > settings.EXACT_SEARCH_MAX_FACES // 2:
                    out.append((str(tenant_id), str(collection_id), model_id, faces,
                                _dimension(tenant_id, collection_id, model_id)))
    return out


def _dimension(tenant_id, collection_id, model_id: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT vector_dims(search_vector) FROM embeddings_face "
                       "WHERE tenant_id = %s AND collection_id = %s AND model_id = %s LIMIT 1",
                       [str(tenant_id), str(collection_id), model_id])
        return int(cursor.fetchone()[0])


def plan_tenant_indexes() -> IndexWork:
    """Which per-collection indexes to build (collections above EXACT_SEARCH_MAX_FACES faces of a
    model, largest first) and which to drop (collections at or below half of it, deleted collections
    and purged tenants, models no longer in use, the per-tenant indexes of before collections). The
    gap between the two keeps a collection hovering around the threshold from having its index built
    and dropped over and over."""
    existing = set(_all_own_index_names())
    valid = valid_collection_index_names(refresh=True)
    work, keep = IndexWork(), set()
    for tenant_id, collection_id, model_id, faces, dimension in sorted(_face_counts(), key=lambda row: -row[3]):
        try:
            _check(model_id, dimension)
        except ValueError:
            logger.warning("no per-collection index for unsafe model id %r", model_id)
            continue
        name = collection_index_name(model_id, collection_id)
        keep.add(name)
        if faces > settings.EXACT_SEARCH_MAX_FACES and name not in valid:
            work.build.append((model_id, dimension, tenant_id, collection_id, faces))
    work.drop = sorted(existing - keep)
    return work


MAINTAIN_LOCK_KEY = _lock_key("maintain_tenant_indexes")


def may_create_indexes() -> bool:
    """Only the table's owner (or a member of its role) may CREATE INDEX on it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class "
                       "WHERE oid = 'embeddings_face'::regclass")
        return bool(cursor.fetchone()[0])


def maintain_tenant_indexes(*, dry_run: bool = False) -> IndexWork:
    """Build the missing per-collection indexes and drop the unneeded ones. Idempotent; one at a time.

    Meant for Celery beat and `manage.py maintain_tenant_vector_indexes`. A
    second maintainer started while one runs (a beat tick during a long build,
    a redelivered message) returns at once: the first one's session holds an
    advisory lock. Outside any transaction (CONCURRENTLY).
    """
    _outside_transaction("CREATE/DROP INDEX")
    if not may_create_indexes():
        # Production's application role owns nothing (docs/DEPLOY.md): there the
        # owner role runs `manage.py maintain_tenant_vector_indexes` on a schedule.
        return IndexWork(skipped="this database role does not own embeddings_face; run "
                                       "`manage.py maintain_tenant_vector_indexes` as the owner role")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [MAINTAIN_LOCK_KEY])
        if not cursor.fetchone()[0]:
            return IndexWork(skipped="another maintainer is running")
    try:
        work = plan_tenant_indexes()
        if dry_run:
            return work
        work.dropped = _drop(work.drop)
        for model_id, dimension, tenant_id, collection_id, faces in work.build:
            started = time.monotonic()
            if ensure_collection_index(model_id, dimension, tenant_id, collection_id):
                name = collection_index_name(model_id, collection_id)
                work.built.append(name)
                logger.info("built %s (%d faces, %d-d) in %.0f s", name, faces, dimension,
                            time.monotonic() - started)
        return work
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [MAINTAIN_LOCK_KEY])
