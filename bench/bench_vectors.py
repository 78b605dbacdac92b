"""Vector search benchmark (issue 4): pgvector HNSW in the real service vs FAISS HNSW.

One long script on purpose (~1k lines): every measurement shares one throw-away
database, one data set and one FAISS reference, so that the figures of a run are
compared with each other; its data generator and database helpers are already
apart (bench/vectors_data.py, bench/vectors_db.py).

    .venv/bin/python bench/bench_vectors.py --faces 100000 --dim 512 --json /tmp/v.json

What it does, in one run (see docs/BENCHMARKS.md, "Vector search"):

1. Starts a throw-away embedded PostgreSQL 18 + pgvector and Valkey in
   `--data-dir` (unless DATABASE_URL / REDIS_URL are set), migrates.
2. Makes 100 tenants of very unequal sizes (one holds half of all faces,
   Zipf for the others), clustered face-like embeddings (bench/vectors_data.py),
   protects them exactly as the service does (per-tenant projection +
   AES-GCM of the canonical embedding) and COPYs them into embeddings_face,
   each tenant's faces into its default collection.
3. Builds the model's HNSW index with the service's `ensure_vector_index`
   and the large collections' own ones with `ensure_collection_index`
   (timed) and reports heap / TOAST / index sizes.
4. Measures, per tenant-size bucket (giant / large / mid / tiny):
   - ANN SQL alone (LIMIT 10, the service's expression, predicate and
     iterative scan), for each ef_search of `--ef`: recall@10, p50/p99;
   - FAISS IndexHNSWFlat (same M, efConstruction, efSearch, inner product,
     one index per tenant, one query at a time, 1 thread), same queries;
   - the service's candidate fetch `_candidate_rows` (LIMIT 40 with the
     ciphertexts), HNSW and exact, for every queried tenant: the crossover
     that EXACT_SEARCH_MAX_FACES should sit at;
   - the full `search_faces` (count, keys, projection, candidates, decrypt,
     exact re-rank): recall@10 and p50/p99 with its parts;
   - crypto costs: projection and encryption per face, decrypt + re-rank per query.
5. Prints the tables (markdown) and writes everything to `--json`; stops the
   servers and deletes the data dir (unless `--keep`).

psycopg 3 prepares a statement after 5 executions; Django's PostgreSQL backend
uses client-side binding (ClientCursor) and never prepares, so the raw SQL
here uses a ClientCursor connection too: every query gets a custom plan for
its tenant, as in the service. Every timed series is warmed up first.
"""

from __future__ import annotations

import os

# One BLAS thread: on this 2-core machine, shared with other runs, a
# multi-threaded OpenBLAS QR (the 512x512 projection matrix) took ~10 s
# instead of ~0.4 s. Must be set before NumPy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import gc
import itertools
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

from bench.vectors_data import (  # noqa: E402
    BUCKETS,
    GroundTruth,
    TenantData,
    bucket_of,
    exact_top_k,
    make_tenant,
    match_recall,
    percentile,
    recall_at_k,
    tenant_sizes,
)

TOP_K = 10


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the run's state -------------------------------------------------------------------


@dataclass
class BenchTenant:
    data: TenantData
    tenant_id: str
    collection_id: str  # the tenant's default collection: it holds all of the tenant's faces
    key_version: int
    dek: bytes
    bucket: str
    truth: GroundTruth | None = None


@dataclass
class Series:
    """Per-query results of one measured configuration."""

    name: str
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    recall: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    match_recall: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    extra: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, bucket: str, ms: float, recall: float | None = None, matched: float | None = None,
            cpu_ms: float | None = None) -> None:
        for key in (bucket, "all"):
            self.latency_ms[key].append(ms)
            if cpu_ms is not None:
                self.extra[f"{key}:cpu_ms"].append(cpu_ms)
            if recall is not None:
                self.recall[key].append(recall)
            if matched is not None:
                self.match_recall[key].append(matched)

    def summary(self) -> dict[str, dict]:
        out = {}
        for key, values in self.latency_ms.items():
            out[key] = {
                "n": len(values), "p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99),
                "mean_ms": float(np.mean(values)),
                "recall_at_10": float(np.mean(self.recall[key])) if self.recall[key] else None,
                "min_recall": float(np.min(self.recall[key])) if self.recall[key] else None,
                "match_recall": float(np.mean(self.match_recall[key])) if self.match_recall[key] else None,
            }
            for name, extra in self.extra.items():
                if name.startswith(key + ":"):
                    out[key][name.split(":", 1)[1] + "_p50"] = percentile(extra, 50)
                    out[key][name.split(":", 1)[1] + "_p99"] = percentile(extra, 99)
        return out


# --- servers and Django -----------------------------------------------------------------


class Servers:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.postgres = None
        self.valkey = None

    def start(self) -> None:
        from faceservice import devservices

        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not os.environ.get("DATABASE_URL"):
            self.postgres = devservices.EmbeddedPostgres(self.data_dir / "postgres", devservices.free_port())
            self.postgres.start()
            os.environ["DATABASE_URL"] = self.postgres.app_url()
            os.environ["DATABASE_SUPERUSER_URL"] = self.postgres.superuser_url()
        if not os.environ.get("REDIS_URL"):
            port = devservices.free_port()
            self.valkey = devservices.valkey_server(self.data_dir, port, persist=False)
            self.valkey.start()
            os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        os.environ.setdefault("FACESERVICE_RUN_DIR", str(self.data_dir))
        os.environ.setdefault("LOCAL_KMS_KEY_FILE", str(self.data_dir / "kms" / "master.keys"))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceservice.settings")

    def stop(self) -> None:
        if self.valkey:
            self.valkey.stop()
        if self.postgres:
            self.postgres.stop()


def setup_django() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)


def raw_connection():
    """The benchmark's own connection, as the application role, like Django's:
    client-side binding (no prepared statements), autocommit."""
    import psycopg

    return psycopg.connect(os.environ["DATABASE_URL"], autocommit=True, cursor_factory=psycopg.ClientCursor)


def loading_connection():
    """COPY is refused on a table with row-level security in force (and it is
    FORCEd here, even for the owner): bulk loading needs a role that bypasses
    it, the superuser of the embedded server or DATABASE_SUPERUSER_URL."""
    import psycopg

    url = os.environ.get("DATABASE_SUPERUSER_URL")
    if not url:
        raise SystemExit("bulk loading needs DATABASE_SUPERUSER_URL (a role that bypasses row-level security)")
    return psycopg.connect(url, autocommit=True)


class CpuClock:
    """CPU time actually spent on a query, which the other jobs on this shared
    2-core machine inflate far less than wall-clock latency: the PostgreSQL
    backend's (/proc/<pid>/schedstat, ns on CPU), plus, with `python=True`,
    this thread's (CLOCK_THREAD_CPUTIME_ID) for the work done in Python.
    Parallel workers are not counted (the plans report says where a plan
    used them). None for a remote server."""

    def __init__(self, backend_pid: int | None, python: bool = False):
        path = Path(f"/proc/{backend_pid}/schedstat") if backend_pid else None
        self.path = path if path and path.exists() else None
        self.python = python

    def now(self) -> int | None:
        if self.path is None:
            return None
        backend = int(self.path.read_text().split()[0])
        return backend + (time.thread_time_ns() if self.python else 0)

    @staticmethod
    def ms(start: int | None, end: int | None) -> float | None:
        return None if start is None or end is None else (end - start) / 1e6


def backend_pid(conn) -> int:
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def dir_size(path: Path) -> int:
    try:
        out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout
        return int(out.split()[0])
    except (subprocess.CalledProcessError, ValueError, IndexError):
        return 0


# --- steps ------------------------------------------------------------------------------


def make_tenants(count: int, run_name: str) -> list[tuple[str, str, int, bytes]]:
    """(tenant id, its default collection's id, active key version, data key) per new tenant."""
    from audit.services import Actor
    from embeddings.store.collections import collection_named
    from faceservice.tenancy import tenant_context
    from tenants import data_keys, services

    actor = Actor.operator("bench_vectors")
    made = []
    for i in range(count):
        tenant = services.create_tenant(name=f"{run_name}-{i:03d}", actor=actor)
        key = data_keys.active_key(tenant_id=tenant.id, actor=actor)
        # The raw COPY bypasses the store's writes, which would make the default collection on first use.
        with tenant_context(tenant.id):
            collection_id = collection_named(tenant.id).id
        made.append((str(tenant.id), str(collection_id), key.version, key.key))
    return made


def load_dataset(args, model_id: str, tenants_made) -> tuple[list[BenchTenant], dict]:
    from bench.vectors_db import LoadTimings, load_tenant

    sizes = tenant_sizes(args.faces, tenants=args.tenants, skew=args.skew)
    loaded: list[BenchTenant] = []
    totals = LoadTimings()
    generate_s = truth_s = 0.0
    conn = loading_connection()
    started = time.perf_counter()
    for i, size in enumerate(sizes):
        queries = args.giant_queries if i == 0 else args.queries_per_tenant
        t0 = time.perf_counter()
        data = make_tenant(i, size, args.dim, queries, seed=args.seed)
        t1 = time.perf_counter()
        truth = exact_top_k(data.embeddings, data.queries, TOP_K)
        t2 = time.perf_counter()
        generate_s += t1 - t0
        truth_s += t2 - t1
        tenant_id, collection_id, version, dek = tenants_made[i]
        timings = load_tenant(conn, tenant_id=tenant_id, collection_id=collection_id, dek=dek,
                              key_version=version, model_id=model_id, embeddings=data.embeddings,
                              identity=data.identity, real_ciphertext=not args.random_ciphertext)
        totals.add(timings)
        loaded.append(BenchTenant(data=data, tenant_id=tenant_id, collection_id=collection_id,
                                  key_version=version, dek=dek, bucket=bucket_of(size, giant=(i == 0)),
                                  truth=truth))
        if i % 10 == 0 or size > 50_000:
            log(f"loaded tenant {i} ({size} faces), {totals.faces} so far, "
                f"{time.perf_counter() - started:.0f}s")
    conn.close()
    wall = time.perf_counter() - started
    return loaded, {
        "tenant_sizes": sizes, "wall_s": wall, "generate_s": generate_s, "ground_truth_s": truth_s,
        "project_s": totals.project_s, "encrypt_s": totals.encrypt_s, "copy_s": totals.copy_s,
        "encrypt_us_per_face": totals.encrypt_s / totals.faces * 1e6,
        "project_us_per_face": totals.project_s / totals.faces * 1e6,
        "copy_us_per_face": totals.copy_s / totals.faces * 1e6,
        "ciphertext": "random bytes of the right size" if args.random_ciphertext else "real AES-GCM",
    }


def build_index(args, model_id: str) -> dict:
    from django.db import connection

    from embeddings.store.vector_index import ensure_vector_index

    notices: list[str] = []
    with connection.cursor() as cursor:
        t0 = time.perf_counter()
        cursor.execute("VACUUM ANALYZE embeddings_face")
        vacuum_s = time.perf_counter() - t0
        if args.maintenance_work_mem:
            cursor.execute("SELECT set_config('maintenance_work_mem', %s, false)", [args.maintenance_work_mem])
        cursor.execute("SHOW maintenance_work_mem")
        mwm = cursor.fetchone()[0]
        cursor.execute("SHOW max_parallel_maintenance_workers")
        workers = cursor.fetchone()[0]
    def on_notice(diag) -> None:
        notices.append(diag.message_primary or "")

    connection.connection.add_notice_handler(on_notice)
    created, build_s = False, 0.0
    try:
        if args.shared_index:
            t0 = time.perf_counter()
            created = ensure_vector_index(model_id, args.dim)
            build_s = time.perf_counter() - t0
        tenant_builds = build_tenant_indexes(model_id) if args.tenant_indexes else []
    finally:
        connection.connection.remove_notice_handler(on_notice)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE embeddings_face")
    return {"vacuum_analyze_s": vacuum_s, "build_s": build_s, "created": created,
            "shared_index": args.shared_index, "tenant_builds": tenant_builds,
            "loadavg_during_builds": os.getloadavg(),
            "maintenance_work_mem": mwm, "max_parallel_maintenance_workers": workers,
            "notices": [n for n in notices if n]}


def build_tenant_indexes(model_id: str) -> list[dict]:
    """The service's own maintenance (vector_index.maintain_tenant_indexes) builds the
    per-collection indexes, one at a time; each build is timed here by running its plan
    step by step with the same functions. Each benchmark tenant has one collection (its
    default one), so these are the per-tenant indexes of before collections."""
    from embeddings.store.vector_index import collection_index_name, ensure_collection_index, plan_tenant_indexes

    builds = []
    for m, dimension, tenant_id, collection_id, faces in plan_tenant_indexes().build:
        if m != model_id:
            continue
        t0 = time.perf_counter()
        ensure_collection_index(m, dimension, tenant_id, collection_id)
        build_s = time.perf_counter() - t0
        builds.append({"tenant_id": tenant_id, "collection_id": collection_id, "faces": faces,
                       "build_s": build_s, "name": collection_index_name(m, collection_id),
                       "loadavg": os.getloadavg()[0]})
        log(f"collection index for {faces} faces built in {build_s:.1f}s (load {os.getloadavg()[0]:.1f})")
    return builds


def pick_queries(tenants: list[BenchTenant]) -> list[tuple[BenchTenant, int]]:
    picked = []
    for tenant in tenants:
        picked.extend((tenant, q) for q in range(tenant.data.queries.shape[0]))
    return picked


def _local_ids(rows, column: int = 0) -> list[int]:
    return [int(row[column]) for row in rows]


def _score(tenant: BenchTenant, q: int, found: list[int]) -> tuple[float, float | None]:
    data, truth = tenant.data, tenant.truth
    query = data.queries[q]
    return (recall_at_k(found, query, data.embeddings, truth.ids[q], float(truth.kth[q]), TOP_K),
            match_recall(found, truth.ids[q], data.identity, int(data.query_identity[q]), TOP_K))


def _projected_queries(tenants: list[BenchTenant], model_id: str, dimension: int) -> dict[str, np.ndarray]:
    from embeddings.store.protection import project, projection_matrix

    out = {}
    for t in tenants:
        matrix = projection_matrix(dek=t.dek, key_version=t.key_version, dimension=dimension, model_id=model_id)
        out[t.tenant_id] = project(matrix, t.data.queries) if t.data.queries.shape[0] else t.data.queries
    return out


def build_faiss(args, tenants: list[BenchTenant]) -> tuple[dict, dict]:
    """FAISS reference: one IndexHNSWFlat per tenant (same M, efConstruction; inner product)."""
    import faiss

    faiss.omp_set_num_threads(args.faiss_build_threads)
    indexes = {}
    started = time.perf_counter()
    giant_build_s = 0.0
    for t in tenants:
        t0 = time.perf_counter()
        index = faiss.IndexHNSWFlat(args.dim, args.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = args.ef_construction
        index.add(t.data.embeddings)
        indexes[t.tenant_id] = index
        if t.bucket == "giant":
            giant_build_s = time.perf_counter() - t0
    build_s = time.perf_counter() - started
    faiss.omp_set_num_threads(1)
    log(f"FAISS: built {len(indexes)} per-tenant HNSW indexes in {build_s:.1f}s "
        f"({args.faiss_build_threads} threads)")
    size = sum(faiss.serialize_index(index).nbytes for index in indexes.values()) if args.faiss_size else None
    return indexes, {"build_s": build_s, "giant_build_s": giant_build_s, "serialized_bytes": size,
                     "layout": "one IndexHNSWFlat per tenant, searched one query at a time on 1 thread"}


def measure_ann(args, model_id: str, queries, projected, faiss_indexes: dict | None):
    """The ANN step alone, per ef_search: raw SQL (LIMIT 10, ids only, the service's
    expression, predicate and iterative scan) and, right after each query, the same
    query against FAISS, so that both see the same load on this shared machine."""
    from bench.vectors_db import candidate_sql, explain, plan_kind, run_candidates, vector_text

    conn = raw_connection()
    clock = CpuClock(backend_pid(conn))
    sqls = {t.tenant_id: candidate_sql(model_id, args.dim, exact=False, tenant_id=t.tenant_id,
                                       collection_id=t.collection_id, columns="asset_id")
            for t, _ in queries}
    texts = [vector_text(projected[t.tenant_id][q]) for t, q in queries]
    pg: dict[int, Series] = {}
    fa: dict[int, Series] = {}
    for ef in args.ef:
        pg[ef], fa[ef] = Series(f"ann_sql_ef{ef}"), Series(f"faiss_ef{ef}")
        for index in (faiss_indexes or {}).values():
            index.hnsw.efSearch = ef
        for i, ((t, q), text) in enumerate(list(zip(queries, texts, strict=True))[:args.warmup]
                                           + list(zip(queries, texts, strict=True))):
            c0 = clock.now()
            run = run_candidates(conn, sql=sqls[t.tenant_id], tenant_id=t.tenant_id, key_version=t.key_version, vector=text,
                                 limit=TOP_K, ef_search=ef)
            # (the backend CPU includes the untimed set_config statement: < 0.05 ms)
            cpu = CpuClock.ms(c0, clock.now())
            if faiss_indexes is not None:
                vector = t.data.queries[q:q + 1]
                f0, w0 = time.thread_time_ns(), time.perf_counter()
                _, ids = faiss_indexes[t.tenant_id].search(vector, TOP_K)
                f_ms, f_cpu = (time.perf_counter() - w0) * 1000, (time.thread_time_ns() - f0) / 1e6
            if i < args.warmup:
                continue
            found = _local_ids(run.rows)
            recall, matched = _score(t, q, found)
            pg[ef].add(t.bucket, run.seconds * 1000, recall, matched, cpu)
            if len(found) < min(TOP_K, t.data.size):
                pg[ef].extra[f"{t.bucket}:short_results"].append(1.0)
            if faiss_indexes is not None:
                recall, matched = _score(t, q, [int(x) for x in ids[0] if x >= 0])
                fa[ef].add(t.bucket, f_ms, recall, matched, f_cpu)
        log(f"ANN SQL ef_search={ef}: " + _brief(pg[ef]))
        if faiss_indexes is not None:
            log(f"FAISS   ef_search={ef}: " + _brief(fa[ef]))
    plans = {}
    for bucket in BUCKETS:
        sample = next(((t, q) for t, q in queries if t.bucket == bucket), None)
        if sample:
            t, q = sample
            plan = explain(conn, sql=sqls[t.tenant_id], tenant_id=t.tenant_id, key_version=t.key_version,
                           vector=vector_text(projected[t.tenant_id][q]), limit=TOP_K, ef_search=100)
            exact_sql = candidate_sql(model_id, args.dim, exact=True, tenant_id=t.tenant_id,
                                      collection_id=t.collection_id, columns="asset_id")
            exact_plan = explain(conn, sql=exact_sql, tenant_id=t.tenant_id, key_version=t.key_version,
                                 vector=vector_text(projected[t.tenant_id][q]), limit=TOP_K, ef_search=None)
            plans[bucket] = {"tenant_faces": t.data.size, "kind": plan_kind(plan, model_id), "plan": plan,
                             "exact_kind": plan_kind(exact_plan, model_id)
                             + (" (parallel)" if "Gather" in exact_plan else ""), "exact_plan": exact_plan}
    conn.close()
    return pg, (fa if faiss_indexes is not None else None), plans


def _brief(series: Series) -> str:
    parts = []
    for key in (*BUCKETS, "all"):
        if series.latency_ms.get(key):
            recall = series.recall.get(key)
            parts.append(f"{key}: " + (f"recall {np.mean(recall):.4f} " if recall else "")
                         + f"p50 {percentile(series.latency_ms[key], 50):.2f} "
                         f"p99 {percentile(series.latency_ms[key], 99):.2f} ms"
                         + (f" (cpu p50 {percentile(series.extra[key + ':cpu_ms'], 50):.2f} "
                            f"p99 {percentile(series.extra[key + ':cpu_ms'], 99):.2f})"
                            if series.extra.get(key + ":cpu_ms") else ""))
    return "; ".join(parts)


def measure_candidates(args, model_id: str, queries, projected) -> dict:
    """The service's own candidate fetch (_candidate_rows: LIMIT 40 with ciphertexts), HNSW at
    each ef_search of `--candidate-ef` and exact, per tenant: where EXACT_SEARCH_MAX_FACES and
    HNSW_EF_SEARCH should sit. Recall is after the exact re-rank of the candidates."""
    from django.conf import settings
    from django.db import connection
    from django.test import override_settings

    from embeddings.search import selectors
    from embeddings.search.selectors import _candidate_rows
    from faceservice.tenancy import tenant_context

    # search_faces reads the key versions and sets ef_search and the iterative
    # scan for the transaction in one statement
    # (selectors._readable_versions_in_context), then fetches candidates: time both together.
    limit = max(TOP_K * settings.SEARCH_CANDIDATE_FACTOR, settings.SEARCH_MIN_CANDIDATES)
    connection.ensure_connection()
    clock = CpuClock(backend_pid(connection.connection), python=True)
    per_tenant: dict[str, dict] = {}
    configs = [(f"hnsw{ef}", ef) for ef in args.candidate_ef] + [("exact", None)]
    series = {name: Series(f"candidates_{name}") for name, _ in configs}
    for name, ef in configs:
        exact = ef is None
        giant_exact = 0
        with override_settings(HNSW_EF_SEARCH=ef or settings.HNSW_EF_SEARCH):
            for i, (t, q) in enumerate(list(queries[:args.warmup]) + list(queries)):
                warm = i < args.warmup
                if exact and t.bucket == "giant" and not warm:
                    giant_exact += 1
                    if giant_exact > args.giant_exact_queries:
                        continue
                with tenant_context(t.tenant_id):
                    c0 = clock.now()
                    started = time.perf_counter()
                    # As search_faces does, once per search (the exact path reads the versions only).
                    selectors._readable_versions_in_context(
                        t.tenant_id, hnsw_ef_search=None if exact else max(settings.HNSW_EF_SEARCH, limit))
                    rows = _candidate_rows(tenant_id=t.tenant_id, collection_id=t.collection_id,
                                           model_id=model_id, key_version=t.key_version,
                                           query=projected[t.tenant_id][q], limit=limit, exact=exact,
                                           subject_ids=None, asset_ids=None)
                    ms = (time.perf_counter() - started) * 1000
                    cpu = CpuClock.ms(c0, clock.now())
                if warm:
                    continue
                found = _local_ids(rows, column=1)
                scores = t.data.embeddings[found] @ t.data.queries[q] if found else np.zeros(0)
                reranked = [found[j] for j in np.argsort(-scores, kind="stable")]
                recall, matched = _score(t, q, reranked)
                series[name].add(t.bucket, ms, recall, matched, cpu)
                entry = per_tenant.setdefault(t.tenant_id, {"faces": t.data.size, "bucket": t.bucket,
                                                            "ms": defaultdict(list), "cpu_ms": defaultdict(list),
                                                            "recall": defaultdict(list)})
                entry["ms"][name].append(ms)
                if cpu is not None:
                    entry["cpu_ms"][name].append(cpu)
                entry["recall"][name].append(recall)
        log(f"candidates ({name}, LIMIT {limit}): " + _brief(series[name]))
    return {"limit": limit, "configs": [name for name, _ in configs],
            "series": {k: v.summary() for k, v in series.items()}, "per_tenant": per_tenant}


def crossover_table(candidates: dict) -> list[dict]:
    """Candidate-fetch latency (wall and CPU p50) and recall by tenant size range, per strategy."""
    edges = [0, 250, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000, 200_000, 10**9]
    per_tenant = candidates["per_tenant"]
    rows = []
    for lo, hi in itertools.pairwise(edges):
        members = [e for e in per_tenant.values() if lo < e["faces"] <= hi]
        if not members:
            continue
        row = {"faces": f"{lo + 1}-{hi}" if hi < 10**9 else f">{lo}", "tenants": len(members),
               "queries": sum(len(e["recall"][candidates["configs"][0]]) for e in members)}
        for name in candidates["configs"]:
            wall = [ms for e in members for ms in e["ms"][name]]
            cpu = [ms for e in members for ms in e["cpu_ms"][name]]
            recall = [r for e in members for r in e["recall"][name]]
            row[name] = {"p50_ms": percentile(wall, 50) if wall else None,
                         "p99_ms": percentile(wall, 99) if wall else None,
                         "cpu_p50_ms": percentile(cpu, 50) if cpu else None,
                         "cpu_p99_ms": percentile(cpu, 99) if cpu else None,
                         "recall": float(np.mean(recall)) if recall else None}
        rows.append(row)
    return rows


def measure_service(args, model_id: str, queries, label: str, **overrides) -> dict:
    """The full search_faces path: recall@10 of its answer, latency and its parts."""
    from django.core.cache import cache
    from django.db import connection
    from django.test import override_settings

    from embeddings.search.gallery import clear_galleries, galleries
    from embeddings.search.selectors import SearchTimings, search_faces

    series = Series(label)
    strategies: dict[str, int] = defaultdict(int)
    connection.ensure_connection()
    clock = CpuClock(backend_pid(connection.connection), python=True)
    first_searches_ms: list[float] = []
    with override_settings(**overrides):
        # Only this run's cached face counts (the strategy depends on them), never the whole cache.
        tenants = list({t.tenant_id: t for t, _ in queries}.values())
        cache.delete_many([f"face-count:{t.tenant_id}:{t.collection_id}:{model_id}" for t in tenants])
        clear_galleries()
        # Each tenant's first search loads its in-memory gallery (when it fits
        # SEARCH_MEMORY_MAX_BYTES): timed on its own, not in the series.
        for t in tenants:
            started = time.perf_counter()
            search_faces(tenant_id=t.tenant_id, embedding=t.data.queries[0], model_id=model_id, top_k=TOP_K,
                         collection_id=t.collection_id)
            first_searches_ms.append((time.perf_counter() - started) * 1000)
        # Tenants above SEARCH_MEMORY_SYNC_LOAD_FACES load in a thread: measure once they are in.
        started = time.perf_counter()
        galleries.wait_for_loads()
        log(f"background gallery loads done {time.perf_counter() - started:.1f} s after the first searches")
        for i, (t, q) in enumerate(list(queries[:args.warmup]) + list(queries)):
            timings = SearchTimings()
            c0 = clock.now()
            started = time.perf_counter()
            # With the collection's id, as search_by_image passes it once it has looked the collection up.
            matches = search_faces(tenant_id=t.tenant_id, embedding=t.data.queries[q], model_id=model_id,
                                   top_k=TOP_K, collection_id=t.collection_id, timings=timings)
            ms = (time.perf_counter() - started) * 1000
            cpu = CpuClock.ms(c0, clock.now())
            if i < args.warmup:
                continue
            found = [int(m.asset_id) for m in matches]
            recall, matched = _score(t, q, found)
            series.add(t.bucket, ms, recall, matched, cpu)
            strategies[f"{t.bucket}:{timings.strategy}"] += 1
            for key in (t.bucket, "all"):
                series.extra[f"{key}:vector_ms"].append(timings.vector_search_ms)
                series.extra[f"{key}:rerank_ms"].append(timings.rerank_ms)
                series.extra[f"{key}:other_ms"].append(ms - timings.vector_search_ms - timings.rerank_ms)
    clear_galleries()
    log(f"search_faces {label}: " + _brief(series) + f"; first search per tenant max {max(first_searches_ms):.0f} ms")
    return {"summary": series.summary(), "strategies": dict(strategies), "overrides": overrides,
            "first_search_ms": {"max": max(first_searches_ms), "sum": sum(first_searches_ms)}}


def measure_crypto(args, tenant: BenchTenant, model_id: str) -> dict:
    """Per-face and per-query costs of the protection layer, outside the database."""
    from embeddings.search.selectors import rerank
    from embeddings.store.protection import (
        clear_projection_cache,
        decrypt_embedding,
        encrypt_embedding,
        project,
        projection_matrix,
    )
    from embeddings.store.services import protect_faces
    from tenants.data_keys import DataKeyRef

    @dataclass
    class Face:
        embedding: np.ndarray
        bbox: tuple = (0.0, 0.0, 1.0, 1.0)
        det_score: float = 0.9

    x = tenant.data.embeddings[:2000]
    dek, version, tid = tenant.dek, tenant.key_version, tenant.tenant_id
    clear_projection_cache()
    t0 = time.perf_counter()
    matrix = projection_matrix(dek=dek, key_version=version, dimension=args.dim, model_id=model_id)
    matrix_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    for row in x[:500]:
        project(matrix, row)
    project_single_us = (time.perf_counter() - t0) / 500 * 1e6
    t0 = time.perf_counter()
    project(matrix, x)
    project_batch_us = (time.perf_counter() - t0) / x.shape[0] * 1e6
    face_ids = [str(uuid.uuid4()) for _ in range(x.shape[0])]
    t0 = time.perf_counter()
    blobs = [encrypt_embedding(dek=dek, embedding=e, tenant_id=tid, face_id=f, key_version=version,
                               model_id=model_id) for e, f in zip(x, face_ids, strict=True)]
    encrypt_us = (time.perf_counter() - t0) / x.shape[0] * 1e6
    t0 = time.perf_counter()
    for blob, f in zip(blobs, face_ids, strict=True):
        decrypt_embedding(dek=dek, ciphertext=blob, tenant_id=tid, face_id=f, key_version=version,
                          model_id=model_id)
    decrypt_us = (time.perf_counter() - t0) / x.shape[0] * 1e6
    key = DataKeyRef(version=version, key=dek)
    faces = [Face(e) for e in x[:1000]]
    t0 = time.perf_counter()
    for start in range(0, len(faces), 5):  # an asset with 5 faces at a time
        protect_faces(tenant_id=tid, faces=faces[start:start + 5], model_id=model_id, key=key)
    protect_us = (time.perf_counter() - t0) / len(faces) * 1e6
    candidates = [((uuid.UUID(f), "a", None, [0, 0, 1, 1], blob), version, dek)
                  for f, blob in zip(face_ids[:40], blobs[:40], strict=True)]
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        rerank(tenant_id=tid, query=x[0], model_id=model_id, candidates=candidates)
        times.append((time.perf_counter() - t0) * 1000)
    return {"projection_matrix_build_ms": matrix_ms, "project_one_us": project_single_us,
            "project_batch_us_per_face": project_batch_us, "encrypt_us_per_face": encrypt_us,
            "decrypt_us_per_face": decrypt_us, "protect_faces_us_per_face": protect_us,
            "rerank_40_p50_ms": percentile(times, 50), "rerank_40_p99_ms": percentile(times, 99)}


# --- report -----------------------------------------------------------------------------


def fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def equal_recall(ann: dict[int, Series], faiss_series: dict[int, Series], bucket: str, target: float):
    """The lowest ef_search at which each reaches `target` mean recall@10, with its p50 / p99."""

    def first(results):
        for ef in sorted(results):
            r = results[ef].recall.get(bucket)
            if r and np.mean(r) >= target:
                lat = results[ef].extra.get(f"{bucket}:cpu_ms") or results[ef].latency_ms[bucket]
                return ef, percentile(lat, 50), percentile(lat, 99)
        return None

    return first(ann), first(faiss_series)


def render(report: dict, ann: dict[int, Series], faiss_series: dict[int, Series] | None) -> str:
    lines = []
    meta = report["meta"]
    lines.append(f"### {meta['faces']:,} faces × {meta['dim']}-d, {meta['tenants']} tenants "
                 f"(m={meta['m']}, ef_construction={meta['ef_construction']}, per-collection indexes: "
                 f"{'yes' if meta.get('tenant_indexes') else 'no'}; load average at start "
                 f"{', '.join(f'{x:.1f}' for x in meta.get('loadavg_start', ()))}, at end "
                 f"{', '.join(f'{x:.1f}' for x in meta['loadavg_end'])})")
    lines.append("")
    sizes = report["load"]["tenant_sizes"]
    counts = defaultdict(list)
    for i, s in enumerate(sizes):
        counts[bucket_of(s, giant=(i == 0))].append(s)
    lines.append("Tenants: " + "; ".join(f"{b} {len(v)} ({min(v):,}-{max(v):,} faces)"
                                         for b, v in counts.items()))
    load, build, sizes_ = report["load"], report["build"], report["sizes"]
    lines.append("")
    lines.append("| step | figure |")
    lines.append("|---|---|")
    lines.append(f"| load (generate + project + encrypt + COPY) | {load['wall_s']:.0f} s "
                 f"(COPY {load['copy_s']:.0f} s, encrypt {load['encrypt_s']:.0f} s, "
                 f"project {load['project_s']:.1f} s) |")
    lines.append(f"| VACUUM ANALYZE | {build['vacuum_analyze_s']:.1f} s |")
    if build.get("shared_index", True):
        lines.append(f"| shared HNSW build (`ensure_vector_index`) | {build['build_s']:.1f} s "
                     f"(maintenance_work_mem {build['maintenance_work_mem']}, "
                     f"{build['max_parallel_maintenance_workers']} parallel workers) |")
    else:
        lines.append("| shared HNSW build | not built (`--no-shared-index`) |")
    tenant_hnsw = sizes_.get("extra", {}).get("tenant_hnsw_bytes", {})
    for b in build.get("tenant_builds", []):
        size = tenant_hnsw.get(b["name"], 0) / (1024 * 1024)
        lines.append(f"| per-collection HNSW build, {b['faces']:,} faces (`ensure_collection_index`) | "
                     f"{b['build_s']:.1f} s, {size:,.0f} MiB (load average {b['loadavg']:.1f}) |")
    mib = 1024 * 1024
    lines.append(f"| heap / TOAST / btrees / HNSW | {sizes_['table_bytes'] / mib:,.0f} / "
                 f"{sizes_['toast_bytes'] / mib:,.0f} / {sizes_['btree_bytes'] / mib:,.0f} / "
                 f"{sizes_['hnsw_bytes'] / mib:,.0f} MiB |")
    lines.append(f"| pg_total_relation_size | {sizes_['total_bytes'] / mib:,.0f} MiB |")
    if report.get("faiss"):
        f = report["faiss"]
        lines.append(f"| FAISS build (per-tenant, {meta['faiss_build_threads']} threads) | {f['build_s']:.1f} s "
                     f"(giant tenant {f['giant_build_s']:.1f} s) |")
    lines.append("")
    lines.append("ANN step alone (LIMIT 10) vs FAISS HNSW (per tenant), same queries interleaved; wall-clock "
                 "p50 / p99 ms and CPU ms per query (PostgreSQL backend / FAISS thread):")
    lines.append("")
    lines.append("| ef_search | bucket | pg recall@10 | pg same-person recall | pg p50 | pg p99 | pg CPU p50 | pg CPU p99 | "
                 "FAISS recall@10 | FAISS p50 | FAISS p99 | FAISS CPU p50 | CPU p50 ratio |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for ef, series in ann.items():
        s = series.summary()
        fs = faiss_series[ef].summary() if faiss_series else {}
        for bucket in (*BUCKETS, "all"):
            if bucket not in s:
                continue
            a, b = s[bucket], fs.get(bucket, {})
            ratio = a["cpu_ms_p50"] / b["cpu_ms_p50"] if b.get("cpu_ms_p50") and a.get("cpu_ms_p50") else None
            lines.append(f"| {ef} | {bucket} | {fmt(a['recall_at_10'], 4)} | {fmt(a['match_recall'], 4)} | "
                         f"{fmt(a['p50_ms'])} | {fmt(a['p99_ms'])} | {fmt(a.get('cpu_ms_p50'))} | "
                         f"{fmt(a.get('cpu_ms_p99'))} | {fmt(b.get('recall_at_10'), 4)} | "
                         f"{fmt(b.get('p50_ms'), 3)} | {fmt(b.get('p99_ms'), 3)} | {fmt(b.get('cpu_ms_p50'), 3)} | "
                         f"{fmt(ratio, 1)} |")
    if faiss_series:
        lines.append("")
        lines.append("At equal recall (lowest ef_search reaching the target mean recall@10; CPU ms p50 / p99):")
        lines.append("")
        lines.append("| bucket | target | pgvector ef: CPU p50 / p99 | FAISS ef: CPU p50 / p99 | CPU p50 ratio |")
        lines.append("|---|---|---|---|---|")
        for bucket in (*BUCKETS, "all"):
            if bucket not in ann[next(iter(ann))].latency_ms:
                continue
            for target in (0.95, 0.99):
                a, b = equal_recall(ann, faiss_series, bucket, target)
                fa = f"{a[0]}: {a[1]:.2f} / {a[2]:.2f}" if a else "not reached"
                fb = f"{b[0]}: {b[1]:.3f} / {b[2]:.3f}" if b else "not reached"
                ratio = f"{a[1] / b[1]:.1f}" if a and b and b[1] > 0 else "-"
                lines.append(f"| {bucket} | {target} | {fa} | {fb} | {ratio} |")
    cand = report["candidates"]
    lines.append("")
    lines.append(f"Candidate fetch as the service does it (`_candidate_rows`: LIMIT {cand['limit']} with ciphertexts, "
                 f"recall@10 after the exact re-rank), HNSW at several ef_search vs exact scan; "
                 f"per cell: recall / CPU p50 / wall p50 / wall p99 (ms):")
    lines.append("")
    lines.append("| tenant faces | tenants | queries | " + " | ".join(cand["configs"]) + " |")
    lines.append("|---|---|---|" + "---|" * len(cand["configs"]))
    for row in report["crossover"]:
        cells = []
        for name in cand["configs"]:
            c = row[name]
            cells.append(f"{fmt(c['recall'], 3)} / {fmt(c['cpu_p50_ms'], 1)} / {fmt(c['p50_ms'], 1)} / "
                         f"{fmt(c['p99_ms'], 1)}" if c["recall"] is not None else "-")
        lines.append(f"| {row['faces']} | {row['tenants']} | {row['queries']} | " + " | ".join(cells) + " |")
    for label, service in report["service"].items():
        lines.append("")
        lines.append(f"`search_faces` end to end ({label}; {', '.join(f'{k}={v}' for k, v in service['overrides'].items()) or 'settings as committed'}):"
                     )
        lines.append("")
        lines.append("| bucket | strategy | recall@10 | p50 | p99 | CPU p50 | CPU p99 | vector p50 | rerank p50 | "
                     "rerank p99 | other p50 | other p99 |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for bucket in (*BUCKETS, "all"):
            s = service["summary"].get(bucket)
            if not s:
                continue
            strategy = ", ".join(f"{k.split(':')[1]} {v}" for k, v in service["strategies"].items()
                                 if k.startswith(bucket + ":")) or "mixed"
            lines.append(f"| {bucket} | {strategy} | {fmt(s['recall_at_10'], 4)} | {fmt(s['p50_ms'])} | "
                         f"{fmt(s['p99_ms'])} | {fmt(s.get('cpu_ms_p50'))} | {fmt(s.get('cpu_ms_p99'))} | "
                         f"{fmt(s.get('vector_ms_p50'))} | {fmt(s.get('rerank_ms_p50'))} | "
                         f"{fmt(s.get('rerank_ms_p99'))} | {fmt(s.get('other_ms_p50'))} | "
                         f"{fmt(s.get('other_ms_p99'))} |")
    crypto = report["crypto"]
    lines.append("")
    lines.append(f"Crypto (d={meta['dim']}): projection {crypto['project_one_us']:.1f} µs/face one at a time, "
                 f"{crypto['project_batch_us_per_face']:.2f} µs/face batched; AES-GCM encrypt "
                 f"{crypto['encrypt_us_per_face']:.1f} µs/face, decrypt {crypto['decrypt_us_per_face']:.1f} µs/face; "
                 f"`protect_faces` {crypto['protect_faces_us_per_face']:.1f} µs/face (5 faces per call); "
                 f"building R {crypto['projection_matrix_build_ms']:.0f} ms (cached); decrypt + re-rank of 40 "
                 f"candidates {crypto['rerank_40_p50_ms']:.2f} ms p50 / {crypto['rerank_40_p99_ms']:.2f} ms p99. "
                 f"During the load: encrypt {load['encrypt_us_per_face']:.1f} µs/face, project "
                 f"{load['project_us_per_face']:.2f} µs/face, COPY {load['copy_us_per_face']:.1f} µs/face.")
    lines.append("")
    lines.append("Plans (one EXPLAIN ANALYZE per bucket): " + "; ".join(
        f"{b} ({p['tenant_faces']:,} faces): {p['kind']}, exact: {p['exact_kind']}"
        for b, p in report["plans"].items()))
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------


def parse_args(argv=None):
    from_env = os.environ.get

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--skew", type=float, default=1.2, help="Zipf exponent of the non-giant tenants' sizes")
    parser.add_argument("--giant-queries", type=int, default=200)
    parser.add_argument("--queries-per-tenant", type=int, default=5)
    parser.add_argument("--giant-exact-queries", type=int, default=30,
                        help="exact scans of the giant tenant are slow: only this many")
    parser.add_argument("--ef", type=lambda s: [int(x) for x in s.split(",")], default=[40, 100, 200, 400])
    parser.add_argument("--candidate-ef", type=lambda s: [int(x) for x in s.split(",")], default=[100, 200, 400],
                        help="ef_search values for the service's candidate fetch")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--random-ciphertext", action="store_true",
                        help="fill the ciphertext column with random bytes (then no re-rank figures)")
    parser.add_argument("--maintenance-work-mem", default=from_env("BENCH_MAINTENANCE_WORK_MEM", ""),
                        help="session maintenance_work_mem for the index build (default: the server's)")
    parser.add_argument("--no-shared-index", dest="shared_index", action="store_false",
                        help="skip the shared per-model index (only the fallback for collections whose own "
                             "index is not built yet; it serves no query once they are)")
    parser.add_argument("--no-tenant-indexes", dest="tenant_indexes", action="store_false",
                        help="no per-collection indexes (one per tenant here: its default collection): "
                             "the shared index with a tenant and collection filter")
    parser.add_argument("--faiss-build-threads", type=int, default=2)
    parser.add_argument("--faiss-size", action="store_true", help="also serialise the FAISS indexes for a size")
    parser.add_argument("--no-faiss", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="throw-away dir for the embedded servers (default: a new dir under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    parser.add_argument("--json", type=Path, default=None, help="write all figures here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the tables here")
    return parser.parse_args(argv)


def run(args) -> dict:
    from django.conf import settings

    run_name = f"bench-vectors-{uuid.uuid4().hex[:8]}"
    model_id = f"{run_name}-{args.dim}d"
    args.model_id = model_id
    # FAISS gets the parameters of the graph that serves the big tenants.
    args.m, args.ef_construction = ((settings.HNSW_TENANT_M, settings.HNSW_TENANT_EF_CONSTRUCTION)
                                    if args.tenant_indexes else (settings.HNSW_M, settings.HNSW_EF_CONSTRUCTION))
    loadavg_start = os.getloadavg()
    log(f"{args.faces} faces, {args.dim}-d, {args.tenants} tenants; m={args.m} "
        f"ef_construction={args.ef_construction}")
    tenants_made = make_tenants(args.tenants, run_name)
    args.tenant_ids = [t[0] for t in tenants_made]
    tenants, load = load_dataset(args, model_id, tenants_made)
    log(f"loaded in {load['wall_s']:.0f}s")
    build = build_index(args, model_id)
    log(f"HNSW index built in {build['build_s']:.1f}s; notices: {build['notices']}")
    from django.db import connection

    from bench.vectors_db import relation_sizes

    sizes = relation_sizes(connection.connection, model_id)
    data_dir_bytes = dir_size(args.data_dir) if args.data_dir else None
    log(f"sizes: {asdict(sizes)}; data dir {data_dir_bytes}")
    queries = pick_queries(tenants)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(queries))  # interleave tenants, as real traffic would
    queries = [queries[i] for i in order]
    projected = _projected_queries(tenants, model_id, args.dim)
    faiss_indexes, faiss_meta = (None, None) if args.no_faiss else build_faiss(args, tenants)
    ann, faiss_series, plans = measure_ann(args, model_id, queries, projected, faiss_indexes)
    del faiss_indexes
    gc.collect()
    candidates = measure_candidates(args, model_id, queries, projected)
    service = {"as committed": measure_service(args, model_id, queries, "as committed"),
               "pgvector only": measure_service(args, model_id, queries, "pgvector only", SEARCH_MEMORY_MAX_BYTES=0)}
    # The projection-matrix cache holds 64 matrices by default: with more active
    # tenants than that, searches rebuild R (QR of a d x d matrix) again and again.
    from embeddings.store.protection import configure_projection_cache

    configure_projection_cache(max_entries=2 * args.tenants)
    service[f"projection cache {2 * args.tenants}"] = measure_service(
        args, model_id, queries, f"projection cache {2 * args.tenants} entries")
    configure_projection_cache(max_entries=64)
    crypto = measure_crypto(args, tenants[0], model_id)
    report = {
        "meta": {"faces": args.faces, "dim": args.dim, "tenants": args.tenants, "m": args.m,
                 "ef_construction": args.ef_construction, "ef_search_setting": settings.HNSW_EF_SEARCH,
                 "tenant_ef_search_setting": settings.HNSW_TENANT_EF_SEARCH,
                 "tenant_indexes": args.tenant_indexes, "shared_index": args.shared_index,
                 "loadavg_start": loadavg_start,
                 "exact_search_max_faces": settings.EXACT_SEARCH_MAX_FACES,
                 "faiss_build_threads": args.faiss_build_threads, "queries": len(queries),
                 "loadavg_end": os.getloadavg(), "command": " ".join(sys.argv)},
        "load": load, "build": build, "sizes": asdict(sizes), "data_dir_bytes": data_dir_bytes,
        "plans": plans, "ann_sql": {ef: s.summary() for ef, s in ann.items()},
        "candidates": candidates, "crossover": crossover_table(candidates),
        "service": service, "crypto": crypto,
    }
    if faiss_series:
        report["faiss"] = dict(faiss_meta)
        report["faiss"]["series"] = {ef: s.summary() for ef, s in faiss_series.items()}
    report["markdown"] = render(report, ann, faiss_series)
    return report


def cleanup_database(model_id: str, tenant_ids: list[str]) -> None:
    """On a database the run did not start itself: drop its faces and its indexes.
    (Its tenants and their empty default collections stay, like any tenant: their
    audit events are append-only.)"""
    from embeddings.store.vector_index import collection_index_name, index_name

    conn = loading_connection()  # a role that bypasses row-level security: no tenant scope needed
    with conn.cursor() as cursor:
        cursor.execute("DELETE FROM embeddings_face WHERE model_id = %s AND tenant_id = ANY(%s::uuid[])",
                       [model_id, tenant_ids])
        cursor.execute(f"DROP INDEX IF EXISTS {index_name(model_id)}")
        cursor.execute("SELECT id FROM embeddings_collection WHERE tenant_id = ANY(%s::uuid[])", [tenant_ids])
        for (collection_id,) in cursor.fetchall():
            cursor.execute(f"DROP INDEX IF EXISTS {collection_index_name(model_id, collection_id)}")
    conn.close()


def main(argv=None) -> int:
    args = parse_args(argv)
    own_dir = args.data_dir is None
    if own_dir:
        args.data_dir = Path(tempfile.mkdtemp(prefix="bench-vectors-"))
    # A plain SIGTERM would skip the finally below and leave the servers running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    servers = Servers(args.data_dir)
    external_db = bool(os.environ.get("DATABASE_URL"))
    try:
        servers.start()
        setup_django()
        report = run(args)
        print(report["markdown"])
        if args.markdown:
            args.markdown.write_text(report["markdown"] + "\n")
        if args.json:
            report["meta"]["data_dir"] = str(args.data_dir)
            args.json.write_text(json.dumps(report, indent=1, default=str))
        return 0
    finally:
        if external_db and getattr(args, "model_id", None):
            cleanup_database(args.model_id, getattr(args, "tenant_ids", []))
        servers.stop()
        if not args.keep:
            shutil.rmtree(args.data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
