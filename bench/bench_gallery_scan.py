"""How fast a search gallery's full scan is, and what cheaper encodings would lose.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_gallery_scan.py [--faces 100000,500000] [--queries 300]

One process, one thread, no database: the scan embeddings/search/gallery.py does
(FAISS flat, half precision, top_k + 8 = 18 candidates) against the
alternatives measured before choosing it, on the same face-like vectors
(identities with noise, as bench/vectors_data.py makes them), the methods
interleaved query by query so that the machine's load falls on all alike.
For each: p50 / p99 ms per query, and how many of the exact top-10 faces the
18 candidates missed (the re-rank can only order what the scan returns).
Results: docs/BENCHMARKS.md, "Search latency".
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

CANDIDATES = 18  # top_k 10 + selectors.MEMORY_CANDIDATE_MARGIN


def face_like(rng: np.random.Generator, count: int, dimension: int, identities: int) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.standard_normal((identities, dimension)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def around(which: np.ndarray) -> np.ndarray:
        x = centres[which] + 0.8 * rng.standard_normal((len(which), dimension)).astype(np.float32) / np.sqrt(dimension)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return around(rng.integers(0, identities, count)), around(rng.integers(0, identities, 1))


def scanners(vectors: np.ndarray) -> dict:
    d = vectors.shape[1]

    def quantized(kind, scale=1.0, train=None):
        index = faiss.IndexScalarQuantizer(d, kind, faiss.METRIC_INNER_PRODUCT)
        if train is not None:
            index.train(train)
        index.add(vectors * scale)
        return lambda q: index.search((q * scale)[None], CANDIDATES)[1][0]

    flat = faiss.IndexFlatIP(d)
    flat.add(vectors)

    def numpy_scan(q):
        scores = vectors @ q
        top = np.argpartition(-scores, CANDIDATES - 1)[:CANDIDATES]
        return top[np.argsort(-scores[top])]

    return {
        "numpy float32": numpy_scan,
        "faiss flat float32": lambda q: flat.search(q[None], CANDIDATES)[1][0],
        "faiss fp16 (the service)": quantized(faiss.ScalarQuantizer.QT_fp16),
        "faiss 8-bit, direct": quantized(faiss.ScalarQuantizer.QT_8bit_direct_signed, scale=127.0),
    }


def run(faces: int, queries: int, dimension: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vectors, _ = face_like(rng, faces, dimension, identities=max(1, faces // 5))
    probes = np.stack([face_like(rng, 1, dimension, identities=max(1, faces // 5))[1][0] for _ in range(queries)])
    methods = scanners(vectors)
    times = {name: [] for name in methods}
    missed = dict.fromkeys(methods, 0)
    for q in probes:
        exact = set(np.argsort(-(vectors @ q))[:10].tolist())
        for name, scan in methods.items():
            started = time.perf_counter()
            found = scan(q)
            times[name].append((time.perf_counter() - started) * 1000)
            missed[name] += len(exact - set(int(i) for i in found))
    print(f"\n{faces} faces x {dimension}-d, {queries} queries, top {CANDIDATES} (ms p50 / p99; exact top-10 missed)")
    for name in methods:
        t = np.array(times[name])
        print(f"  {name:28} {np.percentile(t, 50):6.2f} / {np.percentile(t, 99):6.2f}   "
              f"{missed[name]} of {10 * queries}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", default="100000,500000", help="comma-separated gallery sizes")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)  # as in the web process (embeddings/search/gallery.py)
    for faces in (int(n) for n in args.faces.split(",")):
        run(faces, args.queries, args.dim, args.seed)


if __name__ == "__main__":
    main()
