"""In-memory search galleries: a web process's copy of a collection's protected templates.

pgvector spends 1-2 ms of fixed cost and 5-17x FAISS's CPU per query (see
docs/BENCHMARKS.md, "Vector search"); a full scan of 100k 128-d templates
held in half precision by FAISS takes ~3 ms and finds what brute force finds
(the exact order comes from the re-rank). So each web process
keeps, per (tenant, collection, model, key version), the protected templates y = R·x it
has searched, up to SEARCH_MEMORY_MAX_BYTES in all (least recently used go
first). The search answers with candidate ids only; their rows, ciphertexts
included, are then read from PostgreSQL, which stays the source of truth: a
face deleted since the gallery was loaded is simply not found there.

Keeping up with writes (embeddings.models.GalleryState): every transaction
that writes a tenant's faces takes the tenant's next generation and stamps its
new rows with it, holding the counter's row lock until it commits. A search
reads the generation in the statement it already sends for the key versions;
when it moved, the gallery fetches only the rows above the generation it
holds. Deletions also move `removed_generation`: the gallery then loads the
tenant again, at most once per SEARCH_MEMORY_RELOAD_SECONDS, so a deleted
face's template leaves the process's memory within that time (results never
include it meanwhile). A gallery not searched for SEARCH_MEMORY_IDLE_SECONDS
is dropped by a janitor thread, so a process that stopped searching a tenant
does not keep its templates either.

Templates are not the embeddings: they are protected by the tenant's secret
rotation (embeddings/store/protection.py) and are what PostgreSQL's own buffers
hold. Nothing here is written to disk.

Metrics (faceservice/metrics.py): the faces and bytes held, loads and their time
(inline or beside the searches), evictions (budget or idle) and searches sent to
pgvector while a gallery loads; traces get a span per load and top-up.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

import faiss
import numpy as np
import psycopg
from django.conf import settings
from django.db import connection

from faceservice import metrics, tracing
from faceservice.tenancy import tenant_context

logger = logging.getLogger(__name__)

# One row per face: the id's 16 bytes and pgvector's binary form of the
# template (int16 dimension, int16 unused, float4 big-endian values).
_ROWS_SQL = ("SELECT uuid_send(id), vector_send(search_vector), gallery_generation FROM embeddings_face "
             "WHERE tenant_id = %s AND collection_id = %s AND model_id = %s AND key_version = %s "
             "AND gallery_generation > %s")

@dataclass(frozen=True)
class GalleryState:
    """The tenant's write counters as a search read them."""

    generation: int = 0
    removed_generation: int = 0


class Gallery:
    """The protected templates of one collection, model and key version, scanned in full.

    Held as half-precision floats in a FAISS flat index (IndexScalarQuantizer
    QT_fp16): half the memory of float32 and ~1.8x faster to scan than FAISS's
    own float32 flat index (bench/bench_gallery_scan.py), for a similarity
    error near 1e-3.
    The exact order comes after, from the decrypted embeddings (re-rank).
    """

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._lock = threading.Lock()  # FAISS must not search while it adds
        self._index = faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_fp16,
                                                 faiss.METRIC_INNER_PRODUCT)
        self._ids = np.empty((0, 16), dtype=np.uint8)  # row i of the index is face _ids[i]
        self.generation = 0
        self.loaded_at = self.used_at = time.monotonic()
        # Faces were deleted since the load: their templates are still here
        # (never returned: results come from PostgreSQL) until the next load.
        self.removals_pending = False

    @classmethod
    def loaded(cls, tenant_id: UUID | str, collection_id: UUID | str, model_id: str, key_version: int,
               dimension: int, state: GalleryState) -> Gallery:
        """All the rows of a collection's model and key version, read after `state` (in the tenant's transaction)."""
        gallery = cls(dimension)
        with tracing.span("gallery.load", dimension=dimension) as span:
            gallery.append(_fetch_rows(tenant_id, collection_id, model_id, key_version, above=-1))
            if span is not None:
                span.set_attribute("gallery.size", gallery.size)
        # The rows read are at least as new as `state`: everything up to it is in.
        gallery.generation = max(gallery.generation, state.generation)
        return gallery

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def nbytes(self) -> int:
        return self._ids.nbytes + self.size * self._index.code_size

    def append(self, rows: list[tuple[bytes, bytes, int]]) -> None:
        """Add rows from _ROWS_SQL."""
        if not rows:
            return
        ids = np.frombuffer(b"".join(bytes(row[0]) for row in rows), dtype=np.uint8).reshape(-1, 16)
        record = np.dtype([("head", ">i2", 2), ("values", ">f4", self.dimension)])
        vectors = np.frombuffer(b"".join(bytes(row[1]) for row in rows), dtype=record)["values"]
        with self._lock:
            end = self.size + len(rows)
            if end > len(self._ids):
                self._grow(max(end, int(len(self._ids) * 1.25) + 64))  # exact size on a load
            self._ids[self.size:end] = ids
            self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.generation = max(self.generation, max(int(row[2]) for row in rows))

    def _grow(self, capacity: int) -> None:
        ids = np.empty((capacity, 16), dtype=np.uint8)
        ids[:self.size] = self._ids[:self.size]
        self._ids = ids

    def nearest(self, query: np.ndarray, limit: int) -> list[UUID]:
        """Ids of the `limit` templates with the largest inner product with `query`, best first."""
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        _one_scan_thread()
        with self._lock:
            if self.size == 0 or limit <= 0:
                return []
            _, rows = self._index.search(query, min(limit, self.size))
            ids = self._ids
        return [uuid.UUID(bytes=ids[i].tobytes()) for i in rows[0] if i >= 0]


class GalleryCache:
    """This process's galleries, least recently used first out, within a byte budget."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Keyed (tenant, collection, model, key version).
        self._galleries: OrderedDict[tuple[str, str, str, int], Gallery] = OrderedDict()
        self._janitor: threading.Thread | None = None
        self._loading: set[tuple[str, str, str]] = set()  # (tenant, collection, model) being loaded by a thread

    def drop_idle(self) -> int:
        """Forget the galleries not searched for SEARCH_MEMORY_IDLE_SECONDS; how many went.

        This bounds how long a deleted face's template can stay in a process
        that no longer searches its tenant (one that does reloads it).
        """
        horizon = time.monotonic() - settings.SEARCH_MEMORY_IDLE_SECONDS
        with self._lock:
            idle = [key for key, gallery in self._galleries.items() if gallery.used_at < horizon]
            for key in idle:
                del self._galleries[key]
            self._publish_totals()
        metrics.count_gallery_evictions("idle", len(idle))
        return len(idle)

    def _start_janitor(self) -> None:
        if self._janitor is not None and self._janitor.is_alive():
            return

        def sweep() -> None:
            while True:
                time.sleep(max(1.0, settings.SEARCH_MEMORY_IDLE_SECONDS / 10))
                self.drop_idle()

        self._janitor = threading.Thread(target=sweep, name="gallery-janitor", daemon=True)
        self._janitor.start()

    @property
    def loading(self) -> bool:
        """Whether a thread of this process is loading a gallery (load_in_background)."""
        with self._lock:
            return bool(self._loading)

    def wait_for_loads(self, timeout: float = 600.0) -> None:
        """Block until no gallery is loading in the background (benchmarks, tests)."""
        deadline = time.monotonic() + timeout
        while self.loading and time.monotonic() < deadline:
            time.sleep(0.05)

    def holds(self, tenant_id: UUID | str, collection_id: UUID | str, model_id: str) -> bool:
        with self._lock:
            return any(key[:3] == (str(tenant_id), str(collection_id), model_id) for key in self._galleries)

    def clear(self) -> None:
        with self._lock:
            self._galleries.clear()
            self._publish_totals()

    def _publish_totals(self) -> None:
        """What this process holds now, for the gallery gauges (call holding the lock)."""
        galleries_held = self._galleries.values()
        metrics.set_gallery_totals(faces=sum(g.size for g in galleries_held),
                                   nbytes=sum(g.nbytes for g in galleries_held))

    def synced(self, *, tenant_id: UUID | str, collection_id: UUID | str, model_id: str, key_version: int,
               dimension: int,
               state: GalleryState, read_state: Callable[[], tuple[list[int], GalleryState]] | None = None
               ) -> Gallery:
        """The gallery brought up to `state`; call inside the tenant's transaction.

        Loads it when absent, when faces were removed since it was loaded (at
        most once per SEARCH_MEMORY_RELOAD_SECONDS) or when the model's
        dimension changed; otherwise fetches only the rows written since. A
        gallery above SEARCH_MEMORY_SYNC_LOAD_FACES is loaded again beside
        the searches (`read_state`: the tenant's versions and generations,
        read in the loading thread) while this one goes on answering.
        """
        key = (str(tenant_id), str(collection_id), model_id, int(key_version))
        with self._lock:
            gallery = self._galleries.get(key)
            if gallery is not None and state.removed_generation > gallery.generation:
                gallery.removals_pending = True
            due = gallery is not None and gallery.removals_pending and (
                time.monotonic() - gallery.loaded_at >= settings.SEARCH_MEMORY_RELOAD_SECONDS)
            if due and read_state is not None and gallery.size > settings.SEARCH_MEMORY_SYNC_LOAD_FACES:
                self._load_beside(tenant_id, collection_id, model_id, dimension, read_state)
                due = False
            grew = True
            if gallery is None or gallery.dimension != dimension or due:
                started = time.perf_counter()
                gallery = self._galleries[key] = Gallery.loaded(tenant_id, collection_id, model_id, key_version,
                                                                dimension, state)
                metrics.observe_gallery_load(mode="inline", seconds=time.perf_counter() - started)
            elif state.generation > gallery.generation:
                with tracing.span("gallery.top_up"):
                    gallery.append(_fetch_rows(tenant_id, collection_id, model_id, key_version,
                                               above=gallery.generation))
                # Rows at or below a committed generation are all visible, and
                # those above it that were just read are held: nothing is missed.
                gallery.generation = max(gallery.generation, state.generation)
            else:
                grew = False
            gallery.used_at = time.monotonic()
            self._galleries.move_to_end(key)
            self._start_janitor()
            if grew:
                self._evict(keep=key)
                self._publish_totals()
            return gallery

    def load_in_background(self, *, tenant_id: UUID | str, collection_id: UUID | str, model_id: str,
                           dimension: int, read_state: Callable[[], tuple[list[int], GalleryState]]) -> None:
        """Load the collection's galleries (every readable key version) in a thread of their own.

        For tenants above SEARCH_MEMORY_SYNC_LOAD_FACES: loading 500k faces
        takes seconds, which no search should wait for; pgvector answers
        until the galleries are in. Each call is a search that pgvector answers instead.
        """
        metrics.count_gallery_fallback("loading")
        with self._lock:
            self._load_beside(tenant_id, collection_id, model_id, dimension, read_state)

    def _load_beside(self, tenant_id, collection_id, model_id: str, dimension: int, read_state) -> None:
        key = (str(tenant_id), str(collection_id), model_id)
        if key in self._loading:
            return
        self._loading.add(key)
        threading.Thread(target=self._load, args=(tenant_id, collection_id, model_id, dimension, read_state),
                         name="gallery-load", daemon=True).start()

    def _load(self, tenant_id, collection_id, model_id: str, dimension: int, read_state) -> None:
        try:
            loaded, started = {}, time.perf_counter()
            with tenant_context(tenant_id):  # this thread's own connection and transaction
                versions, state = read_state()
                for version in versions:
                    loaded[(str(tenant_id), str(collection_id), model_id, version)] = Gallery.loaded(
                        tenant_id, collection_id, model_id, version, dimension, state)
            with self._lock:
                self._galleries.update(loaded)
                for key in loaded:
                    self._galleries.move_to_end(key)
                    self._evict(keep=key)
                self._publish_totals()
            metrics.observe_gallery_load(mode="background", seconds=time.perf_counter() - started)
        except Exception:  # the searches go on without it (pgvector, or the gallery they have)
            logger.warning("could not load a search gallery", exc_info=True, extra={"tenant_id": str(tenant_id)})
        finally:
            with self._lock:
                self._loading.discard((str(tenant_id), str(collection_id), model_id))
            connection.close()

    def _evict(self, *, keep: tuple[str, str, str, int]) -> None:
        """Drop the least recently used galleries until the rest fit the budget.

        `keep` goes last: a tenant that outgrew the budget on its own is
        searched this once from memory, then through pgvector.
        """
        total = sum(gallery.nbytes for gallery in self._galleries.values())
        for key in [*(k for k in self._galleries if k != keep), keep]:
            if total <= settings.SEARCH_MEMORY_MAX_BYTES:
                break
            total -= self._galleries.pop(key).nbytes
            metrics.count_gallery_evictions("budget")


def _fetch_rows(tenant_id: UUID | str, collection_id: UUID | str, model_id: str, key_version: int, *,
                above: int) -> list:
    # Binary results: the ids and templates come back as raw bytes, ~50x
    # faster to unpack than pgvector's text form.
    # Django's cursors bind parameters client-side, which rules binary results
    # out: a plain psycopg cursor on the same connection (and transaction).
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_ROWS_SQL, [str(tenant_id), str(collection_id), model_id, key_version, above], binary=True)
        return cursor.fetchall()


def bytes_per_face(dimension: int) -> int:
    return 16 + 2 * dimension  # the id and a half-precision template


galleries = GalleryCache()


def _one_scan_thread() -> None:
    """One thread per scan: the web process's other threads (and the model) need
    the other cores more than a 3 ms scan needs to be split.

    OpenMP keeps this setting per thread, and gunicorn's gthread workers serve
    requests from threads of their own: set at import only, it held for the
    main thread alone, and every scan in production started OpenMP threads that
    spun against the model (docs/BENCHMARKS.md, "Search latency").
    """
    faiss.omp_set_num_threads(1)


_one_scan_thread()


def clear_galleries() -> None:
    """Forget every gallery of this process (tests; a forked child starts empty, and its
    janitor anew: the parent's thread is not alive there)."""
    galleries.clear()


os.register_at_fork(after_in_child=clear_galleries)
