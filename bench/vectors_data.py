"""Synthetic face-like embeddings for the vector search benchmark (bench/bench_vectors.py).

Face embeddings cluster by identity: two photos of one person have cosine
about 0.5-0.8, photos of different people about 0. Here an identity is a
random unit centre c and a sample is normalise(c + sigma * g / sqrt(d)) with
g ~ N(0, I): two samples of one identity then have cosine about
1 / (1 + sigma^2), so sigma in [0.5, 1.0] gives 0.5-0.8. Identities have a
geometric number of samples (1 to 40, mean about 6), as in a photo library.

Tenants are very unequal: one holds `giant_share` of all faces, the other
ones follow a Zipf law (sizes ~ 1/i^skew) down to a floor, so there are many
tiny ones. Queries are fresh (held-out) samples of identities that the
tenant holds.

Pure NumPy; no database, no Django.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIGMA_RANGE = (0.5, 1.0)
MAX_SAMPLES_PER_IDENTITY = 40
MEAN_SAMPLES_PER_IDENTITY = 6.0

# Tenant size buckets reported by the benchmark (by the tenant's own face count).
BUCKETS = ("giant", "large", "mid", "tiny")


def tenant_sizes(total: int, tenants: int = 100, giant_share: float = 0.5, skew: float = 1.2,
                 floor: int = 20) -> list[int]:
    """Face counts per tenant, largest first; they add up to `total` exactly."""
    if tenants < 2:
        return [total]
    giant = round(total * giant_share)
    rest = total - giant
    weights = 1.0 / np.arange(1, tenants, dtype=np.float64) ** skew
    sizes = np.maximum(floor, np.floor(rest * weights / weights.sum())).astype(np.int64)
    sizes[0] += rest - int(sizes.sum())  # the remainder goes to the largest of the others
    if sizes[0] < floor:
        raise ValueError("total too small for that many tenants")
    return [giant, *(int(s) for s in sizes)]


def bucket_of(size: int, *, giant: bool, large_from: int = 20_000, mid_from: int = 1_000) -> str:
    if giant:
        return "giant"
    if size > large_from:
        return "large"
    if size > mid_from:
        return "mid"
    return "tiny"


@dataclass
class TenantData:
    """One tenant's canonical (unprotected) embeddings and its held-out queries."""

    index: int
    embeddings: np.ndarray  # (n, d) float32, unit rows
    identity: np.ndarray  # (n,) identity number of each face
    queries: np.ndarray  # (q, d) float32, unit rows: held-out samples
    query_identity: np.ndarray  # (q,)

    @property
    def size(self) -> int:
        return int(self.embeddings.shape[0])


def _samples(rng: np.random.Generator, centres: np.ndarray, sigmas: np.ndarray,
             which: np.ndarray) -> np.ndarray:
    dimension = centres.shape[1]
    noise = rng.standard_normal((which.shape[0], dimension), dtype=np.float32)
    x = centres[which] + (sigmas[which, None] / np.sqrt(dimension)).astype(np.float32) * noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32, copy=False)


def make_tenant(index: int, size: int, dimension: int, queries: int, seed: int = 0) -> TenantData:
    """A tenant of `size` faces and `queries` held-out query samples; deterministic per seed."""
    rng = np.random.default_rng([seed, index, dimension])
    counts: list[int] = []
    while sum(counts) < size:
        counts.extend(np.minimum(rng.geometric(1.0 / MEAN_SAMPLES_PER_IDENTITY, size=max(16, size // 4)),
                                 MAX_SAMPLES_PER_IDENTITY).tolist())
    counts_arr = np.asarray(counts, dtype=np.int64)
    cut = int(np.searchsorted(np.cumsum(counts_arr), size)) + 1
    counts_arr = counts_arr[:cut]
    counts_arr[-1] -= int(counts_arr.sum()) - size
    identities = counts_arr.shape[0]
    centres = rng.standard_normal((identities, dimension), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sigmas = rng.uniform(*SIGMA_RANGE, size=identities).astype(np.float32)
    identity = np.repeat(np.arange(identities), counts_arr)
    embeddings = np.empty((size, dimension), dtype=np.float32)
    for start in range(0, size, 65536):  # bounded temporary memory for the giant tenant
        part = identity[start:start + 65536]
        embeddings[start:start + part.shape[0]] = _samples(rng, centres, sigmas, part)
    query_identity = rng.choice(identity, size=queries, replace=True) if queries else np.zeros(0, np.int64)
    query_vectors = _samples(rng, centres, sigmas, query_identity) if queries else \
        np.zeros((0, dimension), np.float32)
    return TenantData(index=index, embeddings=embeddings, identity=identity, queries=query_vectors,
                      query_identity=query_identity)


@dataclass
class GroundTruth:
    """Exact top-k of each query within its tenant (by inner product = cosine on unit vectors)."""

    ids: np.ndarray  # (q, k) local row numbers, best first
    scores: np.ndarray  # (q, k)

    @property
    def kth(self) -> np.ndarray:
        return self.scores[:, -1]


def exact_top_k(embeddings: np.ndarray, queries: np.ndarray, k: int = 10,
                chunk: int = 262_144) -> GroundTruth:
    q = queries.shape[0]
    k = min(k, embeddings.shape[0])
    best_ids = np.zeros((q, 0), dtype=np.int64)
    best_scores = np.zeros((q, 0), dtype=np.float32)
    for start in range(0, embeddings.shape[0], chunk):
        scores = queries @ embeddings[start:start + chunk].T
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        best_ids = np.concatenate([best_ids, part + start], axis=1)
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, part, axis=1)], axis=1)
        order = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]
        best_ids = np.take_along_axis(best_ids, order, axis=1)
        best_scores = np.take_along_axis(best_scores, order, axis=1)
    return GroundTruth(ids=best_ids, scores=best_scores)


def recall_at_k(found: list[int] | np.ndarray, query: np.ndarray, embeddings: np.ndarray,
                truth_ids: np.ndarray, truth_kth: float, k: int = 10, tolerance: float = 1e-5) -> float:
    """Share of the exact top-k that a search returned among its first k.

    A returned row counts if it is in the exact top-k, or ties with the k-th
    exact score within `tolerance` (float32 rounding differs between NumPy,
    pgvector and FAISS; a tie is not a miss).
    """
    k = min(k, truth_ids.shape[0])
    if k == 0:
        return 1.0
    found = [int(i) for i in list(found)[:k]]
    if not found:
        return 0.0
    truth = set(truth_ids[:k].tolist())
    scores = embeddings[found] @ query
    hits = sum(1 for i, s in zip(found, scores, strict=True) if i in truth or s >= truth_kth - tolerance)
    return min(hits, k) / k


def match_recall(found: list[int] | np.ndarray, truth_ids: np.ndarray, identity: np.ndarray,
                 query_identity: int, k: int = 10) -> float | None:
    """Same-person recall: of the exact top-k rows that are the query's own identity
    (the other photos of that person, what a face search is for), the share the
    search returned among its first k. It leaves out the near-ties among
    unrelated faces that make up the rest of the top-k. None if there are none."""
    wanted = {int(i) for i in truth_ids[:k] if int(identity[int(i)]) == query_identity}
    if not wanted:
        return None
    return len(wanted & {int(i) for i in list(found)[:k]}) / len(wanted)


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")
