"""A tiny run of bench/bench_vectors.py's core, so the benchmark code stays working.

The figures themselves come from the real run (docs/BENCHMARKS.md, "Vector
search"); here only that every step runs and that its numbers make sense.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from bench import bench_vectors
from bench.vectors_data import (
    bucket_of,
    exact_top_k,
    make_tenant,
    match_recall,
    recall_at_k,
    tenant_sizes,
)


@pytest.mark.pure
def test_tenant_sizes_are_very_unequal_and_add_up():
    sizes = tenant_sizes(100_000, tenants=100)
    assert sum(sizes) == 100_000 and len(sizes) == 100
    assert sizes[0] == 50_000  # one tenant holds half of all faces
    assert sizes[1:] == sorted(sizes[1:], reverse=True)
    assert sum(1 for s in sizes if s <= 1000) > 50  # many tiny ones
    assert bucket_of(sizes[0], giant=True) == "giant"
    assert bucket_of(500, giant=False) == "tiny" and bucket_of(5000, giant=False) == "mid"


@pytest.mark.pure
def test_samples_look_like_face_embeddings():
    tenant = make_tenant(0, 3000, 128, queries=50, seed=1)
    x, ids = tenant.embeddings, tenant.identity
    assert x.shape == (3000, 128) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    same, other = [], []
    for i in range(0, 3000, 7):
        mates = np.flatnonzero(ids == ids[i])
        mates = mates[mates != i]
        if mates.size:
            same.append(float(x[i] @ x[mates[0]]))
        other.append(float(x[i] @ x[(i + 1500) % 3000]))
    assert 0.5 <= np.mean(same) <= 0.8  # same person
    assert abs(np.mean(other)) < 0.05  # different people
    # Queries are held-out samples: near their identity, not copies of stored rows.
    best = (tenant.queries @ x.T).max(axis=1)
    assert (best < 0.99).all() and np.mean(best) > 0.5


@pytest.mark.pure
def test_ground_truth_and_recall():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:20] + 0.1
    truth = exact_top_k(x, q, 10, chunk=1234)  # chunked merge must equal one full sort
    full = np.argsort(-(q @ x.T), axis=1)[:, :10]
    assert (truth.ids == full).all()
    assert recall_at_k(truth.ids[0], q[0], x, truth.ids[0], float(truth.kth[0])) == 1.0
    assert recall_at_k(truth.ids[0][:5], q[0], x, truth.ids[0], float(truth.kth[0])) == 0.5
    assert recall_at_k([], q[0], x, truth.ids[0], float(truth.kth[0])) == 0.0
    identity = np.arange(5000) // 10
    identity[truth.ids[0][:3]] = 10_000  # three of the top-10 are the query's own person
    assert match_recall(truth.ids[0], truth.ids[0], identity, 10_000) == 1.0
    assert match_recall(truth.ids[0][3:], truth.ids[0], identity, 10_000) == 0.0
    assert match_recall(truth.ids[0], truth.ids[0], identity, -1) is None


@pytest.mark.skipif(not os.environ.get("DATABASE_SUPERUSER_URL"),
                    reason="bulk loading with COPY needs a role that bypasses row-level security")
def test_tiny_benchmark_run_end_to_end(committed_db):
    """2,000 faces, 5 tenants, 64-d: load with COPY, build the index, every measurement, the report."""
    args = bench_vectors.parse_args(["--faces", "2000", "--dim", "64", "--tenants", "5", "--giant-queries", "8",
                                     "--queries-per-tenant", "2", "--giant-exact-queries", "3", "--ef", "40,100",
                                     "--warmup", "2", "--faiss-build-threads", "1"])
    try:
        report = bench_vectors.run(args)
    finally:
        if getattr(args, "model_id", None):
            bench_vectors.cleanup_database(args.model_id, getattr(args, "tenant_ids", []))
    assert report["load"]["tenant_sizes"][0] == 1000
    assert report["build"]["created"] and report["build"]["build_s"] > 0
    assert report["sizes"]["hnsw_bytes"] > 0 and report["sizes"]["total_bytes"] > report["sizes"]["table_bytes"]
    ann = report["ann_sql"][100]["all"]
    assert ann["n"] == 8 + 4 * 2 and ann["recall_at_10"] >= 0.9
    assert report["faiss"]["series"][100]["all"]["recall_at_10"] >= 0.9
    # The exact scan is exact, and the service's answer after re-ranking is right.
    assert report["candidates"]["series"]["exact"]["all"]["recall_at_10"] == 1.0
    service = report["service"]["as committed"]["summary"]["all"]
    assert service["recall_at_10"] >= 0.95 and service["p50_ms"] > 0
    crypto = report["crypto"]
    assert crypto["encrypt_us_per_face"] > 0 and crypto["rerank_40_p50_ms"] > 0
    assert "| ef_search |" in report["markdown"] and "search_faces" in report["markdown"]


@pytest.mark.skipif(not os.environ.get("DATABASE_SUPERUSER_URL"),
                    reason="bulk loading with COPY needs a role that bypasses row-level security")
def test_tiny_run_measures_the_collections_own_index(committed_db, settings):
    """With a threshold the giant tenant is above, the run builds its default collection's own
    index as the service would, and both the raw SQL and search_faces go through it."""
    settings.EXACT_SEARCH_MAX_FACES = 500
    args = bench_vectors.parse_args(["--faces", "2000", "--dim", "64", "--tenants", "5", "--giant-queries", "8",
                                     "--queries-per-tenant", "2", "--giant-exact-queries", "3", "--ef", "100",
                                     "--candidate-ef", "100", "--warmup", "2", "--faiss-build-threads", "1",
                                     "--no-shared-index"])
    try:
        report = bench_vectors.run(args)
    finally:
        if getattr(args, "model_id", None):
            bench_vectors.cleanup_database(args.model_id, getattr(args, "tenant_ids", []))
    builds = report["build"]["tenant_builds"]
    assert [b["faces"] for b in builds] == [s for s in report["load"]["tenant_sizes"] if s > 500]
    assert builds[0]["faces"] == 1000 and not report["build"]["created"]
    assert report["sizes"]["hnsw_bytes"] == 0 and sum(report["sizes"]["extra"]["tenant_hnsw_bytes"].values()) > 0
    assert report["plans"]["giant"]["kind"] == "hnsw (collection's own)"
    assert report["service"]["as committed"]["strategies"]["giant:memory"] == 8
    assert report["service"]["pgvector only"]["strategies"]["giant:hnsw-collection"] == 8
    assert report["ann_sql"][100]["giant"]["recall_at_10"] >= 0.9
    assert "per-collection HNSW build" in report["markdown"]
