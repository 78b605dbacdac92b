"""Quantized search galleries for one large collection: recall, latency, bytes and build time (issue #17).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_quantized_gallery.py \
        [--faces 1000000,2000000] [--dim 512] [--queries 200] [--json /tmp/q.json]

One process, no database. Face-like unit vectors of one collection
(bench/vectors_data.py's make_tenant: identities with noise, held-out query
samples), the exact top-10 (float32, NumPy) as the reference, then one search
tier at a time (built, measured, freed, so that memory stays near the float32
vectors plus one index):

- fp16 flat (what embeddings/search/gallery.py holds today), SQ8 flat;
- IVF-SQ8 and IVF-PQ (64 and 128-byte codes) over one shared coarse quantizer
  of nlist ~ 4 * sqrt(N) lists, nprobe swept;
- sign bits + SQ8: a Hamming scan of every face's 512 sign bits (64 bytes)
  keeps a shortlist of S, re-scored from the SQ8 codes held beside them, whose
  best max(C) go to the exact re-rank (S swept).

Every candidate list is re-ranked exactly with the float32 vectors (standing
for the decrypted embeddings the service re-ranks from), for each C in
--candidates; recall@10 is against the exact top-10 (vectors_data.recall_at_k,
ties within 1e-5 count). The vector step (index search for max(C) candidates
plus the re-rank of max(C)) runs single-threaded (faiss.omp_set_num_threads(1),
as in the web process): wall p50 / p99 and CPU p50 in ms. Bytes per face count
what the search tier holds: codes, a 16-byte UUID per face, FAISS's 8-byte list
id per IVF entry, the centroids and codebooks spread over the faces; not the
float32 vectors (the re-rank reads embeddings from PostgreSQL).

Build times, with --build-threads FAISS threads: the IVF's training (k-means of
a sample, once), the assignment of every face to its list (which the service
could do once per face at indexing time and store in PostgreSQL), and the
encode-and-add of each index from stored assignments, which is what a cold
gallery would pay. Results: docs/BENCHMARKS.md, "Vector search".
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

from bench.vectors_data import exact_top_k, make_tenant, match_recall, percentile, recall_at_k  # noqa: E402

UUID_BYTES = 16  # the gallery maps FAISS rows to face UUIDs
FAISS_LIST_ID_BYTES = 8  # IndexIVF stores an int64 id beside each code
TOP_K = 10


@dataclass
class Row:
    """One search tier at one setting, the figures of the table."""

    method: str
    faces: int
    setting: str
    bytes_per_face: float
    build_s: float  # what a cold gallery pays (encode + add; from stored assignments for IVF)
    recall: dict[int, float] = field(default_factory=dict)  # C -> recall@10 after the re-rank
    same_person: float = 0.0  # match_recall at max(C): the query's own identity among the exact top-10
    wall_p50: float = 0.0
    wall_p99: float = 0.0
    cpu_p50: float = 0.0


@dataclass
class Tier:
    """A built index, what it holds per face, and what building it cost."""

    index: faiss.Index
    bytes_per_face: float
    build_s: float


def _threads(n: int) -> None:
    faiss.omp_set_num_threads(n)


def rerank(ids: np.ndarray, query: np.ndarray, embeddings: np.ndarray, c: int) -> np.ndarray:
    """The exact re-rank of the first c candidates, as the service does it from decrypted embeddings."""
    top = ids[:c]
    top = top[top >= 0]
    scores = embeddings[top] @ query
    return top[np.argsort(-scores)[:TOP_K]]


def measure(search: Callable[[np.ndarray, int], np.ndarray], data, truth, candidates: list[int],
            queries: int) -> tuple[dict[int, float], float, list[float], list[float]]:
    """Recall per C, same-person recall at max(C), and the single-threaded vector step's wall and CPU ms."""
    c_max = max(candidates)
    walls, cpus = [], []
    recall = dict.fromkeys(candidates, 0.0)
    same: list[float] = []
    _threads(1)
    for i in range(queries):
        q = data.queries[i]
        wall, cpu = time.perf_counter(), time.thread_time()
        ids = search(q, c_max)
        rerank(ids, q, data.embeddings, c_max)
        cpus.append((time.thread_time() - cpu) * 1000)
        walls.append((time.perf_counter() - wall) * 1000)
        for c in candidates:
            found = rerank(ids, q, data.embeddings, c)
            recall[c] += recall_at_k(found, q, data.embeddings, truth.ids[i], float(truth.kth[i]))
        person = match_recall(found, truth.ids[i], data.identity, int(data.query_identity[i]))
        if person is not None:
            same.append(person)
    return {c: r / queries for c, r in recall.items()}, float(np.mean(same)) if same else 1.0, walls, cpus


def row_of(method: str, faces: int, setting: str, tier: Tier, measured) -> Row:
    recall, same, walls, cpus = measured
    return Row(method=method, faces=faces, setting=setting, bytes_per_face=tier.bytes_per_face,
               build_s=tier.build_s, recall=recall, same_person=same, wall_p50=percentile(walls, 50),
               wall_p99=percentile(walls, 99), cpu_p50=percentile(cpus, 50))


def flat_tier(kind: int, embeddings: np.ndarray, threads: int) -> Tier:
    d = embeddings.shape[1]
    index = faiss.IndexScalarQuantizer(d, kind, faiss.METRIC_INNER_PRODUCT)
    _threads(threads)
    started = time.perf_counter()
    index.train(embeddings[:65536])  # SQ8's per-dimension ranges; fp16 needs none
    for start in range(0, embeddings.shape[0], 262_144):
        index.add(embeddings[start:start + 262_144])
    return Tier(index, index.code_size + UUID_BYTES, time.perf_counter() - started)


@dataclass
class Coarse:
    """The IVF's coarse quantizer, trained once, and every face's list number."""

    quantizer: faiss.IndexFlatIP
    assignment: np.ndarray
    nlist: int
    train_s: float
    assign_s: float


def coarse(embeddings: np.ndarray, nlist: int, train_per_list: int, niter: int, threads: int,
           seed: int) -> Coarse:
    n, d = embeddings.shape
    rng = np.random.default_rng(seed)
    sample = embeddings[np.sort(rng.choice(n, size=min(n, train_per_list * nlist), replace=False))]
    _threads(threads)
    started = time.perf_counter()
    kmeans = faiss.Kmeans(d, nlist, niter=niter, spherical=True, seed=seed, max_points_per_centroid=train_per_list)
    kmeans.train(sample)
    train_s = time.perf_counter() - started
    quantizer = faiss.IndexFlatIP(d)
    quantizer.add(kmeans.centroids)
    started = time.perf_counter()
    assignment = np.empty(n, dtype=np.int64)
    for start in range(0, n, 65536):
        assignment[start:start + 65536] = quantizer.search(embeddings[start:start + 65536], 1)[1][:, 0]
    return Coarse(quantizer, assignment, nlist, train_s, time.perf_counter() - started)


def ivf_tier(index: faiss.IndexIVF, embeddings: np.ndarray, cq: Coarse, threads: int,
             seed: int) -> Tier:
    """Train the fine codes on a sample (residuals), then add every face to its stored list."""
    n, d = embeddings.shape
    rng = np.random.default_rng(seed + 1)
    _threads(threads)
    started = time.perf_counter()
    index.train(embeddings[np.sort(rng.choice(n, size=min(n, 65536), replace=False))])
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    for start in range(0, n, 65536):
        x = np.ascontiguousarray(embeddings[start:start + 65536])
        ids = np.arange(start, start + x.shape[0], dtype=np.int64)
        assign = np.ascontiguousarray(cq.assignment[start:start + x.shape[0]])
        index.add_core(x.shape[0], faiss.swig_ptr(x), faiss.swig_ptr(ids), faiss.swig_ptr(assign))
    add_s = time.perf_counter() - started
    codebooks = cq.nlist * d * 4  # centroids (float32)
    if isinstance(index, faiss.IndexIVFPQ):
        codebooks += index.pq.centroids.size() * 4
    per_face = index.code_size + FAISS_LIST_ID_BYTES + UUID_BYTES + codebooks / n
    print(f"    fine-code training {train_s:.1f} s, encode+add {add_s:.1f} s", flush=True)
    return Tier(index, per_face, add_s)


def ivf_indexes(cq: Coarse, d: int, pq_bytes: list[int]) -> dict[str, faiss.IndexIVF]:
    made: dict[str, faiss.IndexIVF] = {
        "IVF-SQ8": faiss.IndexIVFScalarQuantizer(cq.quantizer, d, cq.nlist, faiss.ScalarQuantizer.QT_8bit,
                                                 faiss.METRIC_INNER_PRODUCT, True),
    }
    for m in pq_bytes:
        made[f"IVF-PQ{m}"] = faiss.IndexIVFPQ(cq.quantizer, d, cq.nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
    return made


class SignBitsSQ8:
    """A Hamming scan of sign bits, a shortlist re-scored from SQ8 codes: 64 + d bytes a face."""

    def __init__(self, embeddings: np.ndarray) -> None:
        d = embeddings.shape[1]
        self.bits = faiss.IndexBinaryFlat(d)
        self.sq = faiss.ScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit)
        self.sq.train(embeddings[:65536])
        self.codes = np.empty((embeddings.shape[0], self.sq.code_size), dtype=np.uint8)
        for start in range(0, embeddings.shape[0], 65536):
            part = embeddings[start:start + 65536]
            self.bits.add(np.packbits(part > 0, axis=1))
            self.codes[start:start + part.shape[0]] = self.sq.compute_codes(part)
        self.shortlist = 1000

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        ids = self.bits.search(np.packbits(query > 0)[None], self.shortlist)[1][0]
        scores = self.sq.decode(self.codes[ids]) @ query
        return ids[np.argsort(-scores)[:k]]


def bits_tier(embeddings: np.ndarray, threads: int) -> tuple[Tier, SignBitsSQ8]:
    _threads(threads)
    started = time.perf_counter()
    tier = SignBitsSQ8(embeddings)
    per_face = embeddings.shape[1] // 8 + tier.sq.code_size + UUID_BYTES
    return Tier(tier.bits, per_face, time.perf_counter() - started), tier


def run(faces: int, args) -> list[Row]:
    started = time.perf_counter()
    data = make_tenant(0, faces, args.dim, args.queries, seed=args.seed)
    truth = exact_top_k(data.embeddings, data.queries, TOP_K)
    print(f"\n{faces} faces x {args.dim}-d: data and exact top-10 in {time.perf_counter() - started:.1f} s",
          flush=True)
    rows: list[Row] = []
    c_max = max(args.candidates)
    if "exact" in args.tiers:
        rows.extend(reference_and_flat(data, truth, faces, args))
    if "bits" in args.tiers:
        tier, bits = bits_tier(data.embeddings, args.build_threads)
        for shortlist in args.shortlist:
            bits.shortlist = shortlist
            rows.append(row_of("sign bits + SQ8", faces, f"shortlist {shortlist}", tier, measure(
                bits.search, data, truth, args.candidates, args.queries)))
            r = rows[-1]
            print(f"  sign bits + SQ8, shortlist {shortlist}: built {tier.build_s:.1f} s, p50 {r.wall_p50:.2f} / "
                  f"p99 {r.wall_p99:.2f} ms, recall@10 (C={c_max}) {r.recall[c_max]:.4f}, "
                  f"same-person {r.same_person:.4f}", flush=True)
        del tier, bits
    if "ivf" in args.tiers:
        rows.extend(ivf_rows(data, truth, faces, args))
    return rows


def reference_and_flat(data, truth, faces: int, args) -> list[Row]:
    """Exact float32 (the reference, single-threaded, no copy of the vectors), fp16 and SQ8 flat scans."""
    rows: list[Row] = []
    c_max = max(args.candidates)
    flat_queries = min(args.queries, args.flat_queries)
    exact = Tier(None, data.embeddings.shape[1] * 4 + UUID_BYTES, 0.0)
    rows.append(row_of("exact float32", faces, "-", exact, measure(
        lambda q, k: faiss.knn(q[None], data.embeddings, k, metric=faiss.METRIC_INNER_PRODUCT)[1][0],
        data, truth, args.candidates, flat_queries)))
    print(f"  exact float32: p50 {rows[-1].wall_p50:.1f} ms", flush=True)

    for name, kind in (("fp16 flat (today)", faiss.ScalarQuantizer.QT_fp16),
                       ("SQ8 flat", faiss.ScalarQuantizer.QT_8bit)):
        tier = flat_tier(kind, data.embeddings, args.build_threads)
        rows.append(row_of(name, faces, "-", tier, measure(
            lambda q, k, ix=tier.index: ix.search(q[None], k)[1][0], data, truth, args.candidates, flat_queries)))
        print(f"  {name}: built {tier.build_s:.1f} s, p50 {rows[-1].wall_p50:.1f} ms, "
              f"recall@10 (C={c_max}) {rows[-1].recall[c_max]:.4f}", flush=True)
        del tier
    return rows


def ivf_rows(data, truth, faces: int, args) -> list[Row]:
    """One coarse quantizer, then IVF-SQ8 and IVF-PQ over it, nprobe swept."""
    rows: list[Row] = []
    nlist = args.nlist or round(args.nlist_factor * math.sqrt(faces))
    cq = coarse(data.embeddings, nlist, args.train_per_list, args.niter, args.build_threads, args.seed)
    print(f"  coarse quantizer: {nlist} lists, k-means {cq.train_s:.1f} s, assigning all faces {cq.assign_s:.1f} s",
          flush=True)
    for name, index in ivf_indexes(cq, args.dim, args.pq_bytes).items():
        tier = ivf_tier(index, data.embeddings, cq, args.build_threads, args.seed)
        for nprobe in args.nprobe:
            index.nprobe = nprobe
            rows.append(row_of(name, faces, f"nlist {nlist}, nprobe {nprobe}", tier, measure(
                lambda q, k, ix=index: ix.search(q[None], k)[1][0], data, truth, args.candidates, args.queries)))
            r = rows[-1]
            print(f"  {name} nprobe {nprobe}: p50 {r.wall_p50:.2f} / p99 {r.wall_p99:.2f} ms, "
                  f"recall@10 {' '.join(f'C{c}={v:.4f}' for c, v in r.recall.items())}", flush=True)
        index.reset()
        del tier, index
    print(f"  {faces}: IVF training {cq.train_s:.1f} s and assignment {cq.assign_s:.1f} s (shared by the IVF rows)",
          flush=True)
    for row in rows:
        row.setting += f"; train {cq.train_s:.1f} s, assign {cq.assign_s:.1f} s" if row.method.startswith("IVF") \
            else ""
    return rows


def table(rows: list[Row], candidates: list[int]) -> str:
    head = ("| faces | method | setting | bytes/face | build s/M | "
            + " | ".join(f"recall@10 C={c}" for c in candidates) + " | same-person | step ms p50 / p99 | CPU ms p50 |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r.faces:,} | {r.method} | {r.setting} | {r.bytes_per_face:.0f} | {r.build_s / r.faces * 1e6:.1f} | "
            + " | ".join(f"{r.recall[c]:.4f}" for c in candidates)
            + f" | {r.same_person:.4f} | {r.wall_p50:.2f} / {r.wall_p99:.2f} | {r.cpu_p50:.2f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=ints, default=[1_000_000, 2_000_000], help="comma-separated gallery sizes")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--flat-queries", type=int, default=100,
                        help="queries for the exact and flat rows (each scans every face)")
    parser.add_argument("--candidates", type=ints, default=[40, 100, 200], help="re-ranked candidates C")
    parser.add_argument("--tiers", default="exact,bits,ivf",
                        help="which rows: exact (the reference and the flat scans), bits, ivf")
    parser.add_argument("--shortlist", type=ints, default=[1000, 4000, 16000],
                        help="sign-bits shortlists S re-scored from SQ8 codes")
    parser.add_argument("--nprobe", type=ints, default=[32, 64, 128, 256, 512])
    parser.add_argument("--pq-bytes", type=ints, default=[64, 128], help="IVF-PQ code sizes (bytes per face)")
    parser.add_argument("--nlist", type=int, default=0, help="IVF lists; 0 = nlist-factor * sqrt(N)")
    parser.add_argument("--nlist-factor", type=float, default=4.0)
    parser.add_argument("--train-per-list", type=int, default=32, help="k-means sample size per list")
    parser.add_argument("--niter", type=int, default=10, help="k-means iterations")
    # One: on this loaded 2-core box two OpenMP threads made k-means ~5x slower, not faster.
    parser.add_argument("--build-threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the rows here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    rows: list[Row] = []
    for faces in args.faces:
        rows.extend(run(faces, args))
    print("\n" + table(rows, args.candidates), flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump([asdict(r) for r in rows], out, indent=1)
    return rows


if __name__ == "__main__":
    main()
