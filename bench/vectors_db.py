"""Database side of the vector search benchmark: bulk load with COPY, sizes, raw SQL.

Takes a plain psycopg 3 connection (the benchmark's own, or Django's
`connection.connection` in the smoke test), so it runs the same in both.
"""

from __future__ import annotations

import json
import struct
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from embeddings.store.protection import encrypt_embedding, encrypted_size, project, projection_matrix
from embeddings.store.vector_index import (
    COLLECTION_INDEX_PREFIX,
    _check,
    collection_predicate,
    index_name,
    vector_expression,
)

FACE_COLUMNS = ("id", "tenant_id", "collection_id", "asset_id", "subject_id", "bbox", "det_score", "model_id",
                "key_version", "embedding_ciphertext", "search_vector", "created_at")
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_BBOX = json.dumps([10.0, 20.0, 110.0, 140.0]).encode()


@dataclass
class LoadTimings:
    faces: int = 0
    project_s: float = 0.0  # projection y = R·x (including building R once per tenant)
    encrypt_s: float = 0.0  # AES-GCM of the canonical embeddings
    copy_s: float = 0.0  # encoding + COPY to the server
    ciphertext_bytes: int = 0

    def add(self, other: LoadTimings) -> None:
        self.faces += other.faces
        self.project_s += other.project_s
        self.encrypt_s += other.encrypt_s
        self.copy_s += other.copy_s
        self.ciphertext_bytes += other.ciphertext_bytes


def _field(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value


def _vector_field(row: np.ndarray) -> bytes:
    # pgvector binary: int16 dimension, int16 unused, float4 big-endian values.
    payload = struct.pack(">hh", row.shape[0], 0) + row.astype(">f4").tobytes()
    return _field(payload)


def copy_rows(conn, rows: Iterable[tuple]) -> None:
    """COPY FACE_COLUMNS rows in PostgreSQL's binary format.

    Each row: (face id uuid, tenant id uuid, collection id uuid, asset_id str,
    subject_id str, det_score float, model_id str, key_version int, ciphertext
    bytes, search vector float32 array, created_at datetime). bbox is constant.
    """
    columns = ", ".join(FACE_COLUMNS)
    with conn.cursor() as cursor, cursor.copy(f"COPY embeddings_face ({columns}) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.write(_COPY_HEADER)
        buffer: list[bytes] = []
        count = struct.pack(">h", len(FACE_COLUMNS))
        for face_id, tenant_id, collection_id, asset_id, subject_id, det_score, model_id, key_version, \
                ciphertext, vector, created in rows:
            micros = int((created - _PG_EPOCH).total_seconds() * 1_000_000)
            buffer.append(b"".join((
                count, _field(face_id.bytes), _field(tenant_id.bytes), _field(collection_id.bytes),
                _field(asset_id.encode()), _field(subject_id.encode()), _field(b"\x01" + _BBOX),
                _field(struct.pack(">d", det_score)),
                _field(model_id.encode()), _field(struct.pack(">i", key_version)), _field(ciphertext),
                _vector_field(vector), _field(struct.pack(">q", micros)))))
            if len(buffer) >= 2000:
                copy.write(b"".join(buffer))
                buffer.clear()
        if buffer:
            copy.write(b"".join(buffer))
        copy.write(_COPY_TRAILER)


def load_tenant(conn, *, tenant_id: uuid.UUID | str, collection_id: uuid.UUID | str, dek: bytes,
                key_version: int, model_id: str, embeddings: np.ndarray, identity: np.ndarray,
                real_ciphertext: bool = True, chunk: int = 20_000) -> LoadTimings:
    """Protect (project + encrypt) one tenant's canonical embeddings as the service does and COPY them
    into the given collection of the tenant (its default one in the benchmark).

    asset_id is the row's local number (so results map back to the ground
    truth), subject_id its identity. With real_ciphertext=False the ciphertext
    column gets random bytes of the right size (only for rows that are never
    re-ranked).
    """
    tenant_uuid = uuid.UUID(str(tenant_id))
    collection_uuid = uuid.UUID(str(collection_id))
    timings = LoadTimings(faces=int(embeddings.shape[0]))
    dimension = int(embeddings.shape[1])
    started = time.perf_counter()
    matrix = projection_matrix(dek=dek, key_version=key_version, dimension=dimension, model_id=model_id)
    timings.project_s += time.perf_counter() - started
    created = datetime.now(UTC)
    rng = np.random.default_rng()
    for start in range(0, embeddings.shape[0], chunk):
        part = embeddings[start:start + chunk]
        t0 = time.perf_counter()
        vectors = project(matrix, part)
        t1 = time.perf_counter()
        face_ids = [uuid.uuid4() for _ in range(part.shape[0])]
        if real_ciphertext:
            ciphertexts = [encrypt_embedding(dek=dek, embedding=e, tenant_id=str(tenant_uuid), face_id=str(f),
                                             key_version=key_version, model_id=model_id)
                           for e, f in zip(part, face_ids, strict=True)]
        else:
            size = encrypted_size(dimension)
            blob = rng.bytes(size * part.shape[0])
            ciphertexts = [blob[i * size:(i + 1) * size] for i in range(part.shape[0])]
        t2 = time.perf_counter()
        copy_rows(conn, (
            (face_ids[i], tenant_uuid, collection_uuid, str(start + i), f"s{int(identity[start + i])}", 0.9,
             model_id, key_version, ciphertexts[i], vectors[i], created)
            for i in range(part.shape[0])))
        t3 = time.perf_counter()
        timings.project_s += t1 - t0
        timings.encrypt_s += t2 - t1
        timings.copy_s += t3 - t2
        timings.ciphertext_bytes += sum(len(c) for c in ciphertexts)
    return timings


# --- raw SQL: the same statements as embeddings.search.selectors._candidate_rows -------------------

CANDIDATE_COLUMNS = "id, asset_id, subject_id, bbox, embedding_ciphertext"


def candidate_sql(model_id: str, dimension: int, *, exact: bool, tenant_id, collection_id,
                  columns: str = CANDIDATE_COLUMNS) -> str:
    """The service's candidate query (see _candidate_rows), with `columns` selected: the model,
    tenant and collection are literals, so the planner can use the collection's own partial index."""
    _check(model_id, dimension)
    distance = f"{vector_expression(dimension)} <#> %s::vector({dimension})"
    order = f"({distance}) + 0" if exact else distance
    return (f"SELECT {columns} FROM embeddings_face "  # noqa: S608 - validated literals only
            f"WHERE {collection_predicate(model_id, tenant_id, collection_id)} AND key_version = %s "
            f"ORDER BY {order} LIMIT %s")


def vector_text(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{v:.7g}" for v in np.asarray(vector, dtype=np.float32).tolist()) + "]"


@dataclass
class SqlRun:
    rows: list[tuple]
    seconds: float


def run_candidates(conn, *, sql: str, tenant_id, key_version: int, vector: str, limit: int,
                   ef_search: int | None, iterative_scan: str = "relaxed_order",
                   extra_settings: dict[str, str] | None = None) -> SqlRun:
    """One candidate query in its own transaction (tenant bound for row-level security).
    Only the SELECT itself is timed; the set_config calls are not."""
    settings = {"app.tenant_id": str(tenant_id)}
    if ef_search is not None:
        settings["hnsw.ef_search"] = str(int(ef_search))
        settings["hnsw.iterative_scan"] = iterative_scan
    settings.update(extra_settings or {})
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join("set_config(%s, %s, true)" for _ in settings),
                       [x for item in settings.items() for x in item])
        started = time.perf_counter()
        cursor.execute(sql, [key_version, vector, limit])
        rows = cursor.fetchall()
        return SqlRun(rows=rows, seconds=time.perf_counter() - started)


def explain(conn, *, sql: str, tenant_id, key_version: int, vector: str, limit: int,
            ef_search: int | None) -> str:
    settings = {"app.tenant_id": str(tenant_id)}
    if ef_search is not None:
        settings.update({"hnsw.ef_search": str(int(ef_search)), "hnsw.iterative_scan": "relaxed_order"})
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join("set_config(%s, %s, true)" for _ in settings),
                       [x for item in settings.items() for x in item])
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) " + sql,
                       [key_version, vector, limit])
        return "\n".join(row[0] for row in cursor.fetchall())


def plan_kind(plan: str, model_id: str) -> str:
    if COLLECTION_INDEX_PREFIX in plan:
        return "hnsw (collection's own)"
    if index_name(model_id) in plan:
        return "hnsw (shared)"
    if "Seq Scan" in plan:
        return "seq scan + sort"
    if "Bitmap" in plan:
        return "bitmap + sort"
    if "Index" in plan:
        return "btree + sort"
    return "other"


@dataclass
class Sizes:
    table_bytes: int = 0  # heap only
    toast_bytes: int = 0
    btree_bytes: int = 0  # the other indexes (pk, face_collection_*)
    hnsw_bytes: int = 0
    total_bytes: int = 0  # pg_total_relation_size: heap + toast + every index
    extra: dict = field(default_factory=dict)


def relation_sizes(conn, model_id: str) -> Sizes:
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT pg_relation_size('embeddings_face'), "
            "COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0), "
            "pg_indexes_size('embeddings_face'), "
            "COALESCE((SELECT pg_relation_size(to_regclass(%s))), 0), "
            "pg_total_relation_size('embeddings_face') "
            "FROM pg_class c WHERE c.oid = 'embeddings_face'::regclass", [index_name(model_id)])
        table, toast, indexes, hnsw, total = cursor.fetchone()
        cursor.execute("SELECT indexname, pg_relation_size(to_regclass(indexname)) FROM pg_indexes "
                       "WHERE tablename = 'embeddings_face' AND indexname LIKE %s",
                       [COLLECTION_INDEX_PREFIX.replace("_", r"\_") + "%"])
        # Keyed by index name; the report keeps its old key: each benchmark tenant has one collection.
        tenant_hnsw = dict(cursor.fetchall())
    return Sizes(table_bytes=table, toast_bytes=toast,
                 btree_bytes=indexes - hnsw - sum(tenant_hnsw.values()), hnsw_bytes=hnsw,
                 total_bytes=total, extra={"tenant_hnsw_bytes": tenant_hnsw})
