"""Grouping faces into people: average linkage over a nearest-neighbour graph. Pure NumPy and FAISS.

How (measured in bench/bench_clustering.py on LFW dev-train, docs/BENCHMARKS.md
"People discovery"):

1. A graph: each face's `neighbours` nearest faces by cosine (an exact FAISS
   scan), kept when at or above the threshold.
2. Average linkage along that graph: repeatedly join the two clusters, linked
   by an edge, whose average pairwise cosine is the highest, while it is at or
   above the threshold. The average is exact, not estimated from the edges:
   for unit vectors it is sum(A)·sum(B) / (|A|·|B|), so each cluster carries
   the sum of its vectors and a merge costs one dot product per neighbour.

Why not connected components of the threshold graph: one wrong edge joins two
people (chaining). On LFW dev-train components hold precision 0.995 only at
cosine 0.55, with recall 0.867, where average linkage has 0.996 / 0.886 at 0.50
(at 0.45 components fall to precision 0.72, average linkage keeps 0.98). Why
not HDBSCAN: it has no similarity floor, so it joins faces of different people
(precision 0.65 on LFW alone, 0.34 among 10k faces, 24 s there against 2.5 s),
and scikit-learn is not a dependency.

Cosine is all this needs, so it runs on the protected templates y = R·x as
well as on the embeddings x (an orthogonal R preserves every dot product).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import faiss
import numpy as np

# The measured default (bench/bench_clustering.py, LFW dev-train, test pack): pairwise precision
# 0.996 / recall 0.886 alone, 0.994 / 0.885 among 100k faces. 0.45 finds more (recall 0.933) and
# holds 0.98 on LFW alone, but falls to 0.89 among 100k faces: the default must hold at any size.
DEFAULT_THRESHOLD = 0.50
# Neighbours per face in the graph: 8, 16 and 32 gave the same clusters on LFW dev-train.
DEFAULT_NEIGHBOURS = 16


@dataclass(frozen=True)
class Grouping:
    """Per face (in input order) its group number; -1: in no group (a group smaller than min_size)."""

    labels: np.ndarray

    @property
    def groups(self) -> list[np.ndarray]:
        """Each group's face positions, largest group first."""
        found = [np.flatnonzero(self.labels == label) for label in np.unique(self.labels) if label >= 0]
        return sorted(found, key=lambda members: (-len(members), int(members[0])))


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 rows of norm 1 (a zero row stays zero)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def neighbour_graph(x: np.ndarray, *, threshold: float, neighbours: int = DEFAULT_NEIGHBOURS
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Edges (i < j) between each face and its nearest faces at cosine >= threshold; their cosines."""
    n = len(x)
    k = min(neighbours + 1, n)  # + 1: a face finds itself first
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32)
    # Exact, at any size: at 100k faces the scan took 105-124 s on two shared cores, and
    # building and searching an HNSW index (M = 32) 120-220 s, for approximate neighbours.
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    similarities, found = index.search(x, k)
    rows = np.repeat(np.arange(n), k)
    cols, sims = found.ravel(), similarities.ravel()
    keep = (cols >= 0) & (cols != rows) & (sims >= threshold)
    pairs = np.stack([np.minimum(rows[keep], cols[keep]), np.maximum(rows[keep], cols[keep])], axis=1)
    pairs, first = np.unique(pairs, axis=0, return_index=True)
    return pairs, sims[keep][first]


def group_faces(vectors: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD, min_size: int = 2,
                neighbours: int = DEFAULT_NEIGHBOURS) -> Grouping:
    """Group the faces whose vectors are alike: average linkage at `threshold` over the neighbour graph."""
    x = unit_rows(vectors)
    n = len(x)
    if n == 0:
        return Grouping(labels=np.zeros(0, dtype=np.int64))
    pairs, sims = neighbour_graph(x, threshold=threshold, neighbours=neighbours)
    roots = _average_linkage(x, pairs, sims, threshold)
    return Grouping(labels=_numbered(roots, min_size))


def _average_linkage(x: np.ndarray, pairs: np.ndarray, sims: np.ndarray, threshold: float) -> np.ndarray:
    """Each face's final cluster (a representative face index), merging best-linked clusters first."""
    n = len(x)
    owner = np.arange(n)  # cluster id of each face (a cluster keeps the id of its first member)
    sums = x.astype(np.float64).copy()
    sizes = np.ones(n, dtype=np.int64)
    version = np.zeros(n, dtype=np.int64)  # a cluster's entries in the heap are stale once it changes
    members: dict[int, list[int]] = {}
    links: list[set[int]] = [set() for _ in range(n)]
    for i, j in pairs.tolist():
        links[i].add(j)
        links[j].add(i)
    heap = [(-float(s), int(i), int(j), 0, 0) for (i, j), s in zip(pairs.tolist(), sims.tolist(), strict=True)]
    heapq.heapify(heap)
    while heap:
        negative, a, b, version_a, version_b = heapq.heappop(heap)
        if -negative < threshold:
            break
        if owner[a] != a or owner[b] != b or version[a] != version_a or version[b] != version_b:
            continue  # one side was merged or changed since this entry was pushed
        if sizes[a] < sizes[b]:
            a, b = b, a  # keep the larger cluster's id: fewer faces to relabel
        moved = members.pop(b, [b])
        owner[moved] = a
        members.setdefault(a, [a]).extend(moved)
        sums[a] += sums[b]
        sizes[a] += sizes[b]
        version[a] += 1
        links[a] |= links[b]
        links[a] -= {a, b}
        links[b] = set()
        for c in list(links[a]):
            links[c].discard(b)
            links[c].add(a)
            score = float(sums[a] @ sums[c]) / float(sizes[a] * sizes[c])
            if score >= threshold:
                heapq.heappush(heap, (-score, min(a, c), max(a, c),
                                      int(version[min(a, c)]), int(version[max(a, c)])))
    return owner


def _numbered(roots: np.ndarray, min_size: int) -> np.ndarray:
    """Groups numbered 0, 1, ... largest first; -1 for faces in groups smaller than min_size."""
    unique, inverse, counts = np.unique(roots, return_inverse=True, return_counts=True)
    order = np.lexsort((unique, -counts))  # largest first, ties by first member
    rank = np.empty(len(unique), dtype=np.int64)
    rank[order] = np.arange(len(unique))
    labels = rank[inverse]
    labels[counts[inverse] < min_size] = -1
    if (labels >= 0).any():  # renumber without the gaps left by the small groups
        kept = np.unique(labels[labels >= 0])
        labels[labels >= 0] = np.searchsorted(kept, labels[labels >= 0])
    return labels


def representatives(vectors: np.ndarray, *, count: int = 3) -> np.ndarray:
    """Positions of the `count` faces nearest the group's mean direction: the ones to show a person."""
    x = unit_rows(vectors)
    centre = x.sum(axis=0)
    return np.argsort(-(x @ centre), kind="stable")[:count]
