"""People discovery on LFW dev-train: which grouping, at which threshold, and how long at 10k and 100k faces.

    .venv/bin/python bench/bench_clustering.py [--cache FILE] [--sizes 10000,100000] [--skip-hdbscan]

What it does (docs/BENCHMARKS.md, "People discovery"):
1. The face engine as the server configures it by default (the test pack,
   detector at 640, one onnxruntime thread) embeds the largest face of every
   LFW dev-train photo once (--cache keeps them in a file outside the
   repository; the same format as bench/bench_person_search.py's). Each
   embedding x becomes a protected template y = R·x under a random orthogonal
   R, as stored: clustering reads templates (cosine is preserved).
2. LFW alone (3,434 faces of 2,130 people, every photo a face with no subject):
   pairwise precision and recall against the true identities (a pair of faces
   is predicted when they share a cluster; faces left out of every cluster
   predict no pair) for
   - average linkage over the neighbour graph (embeddings/clustering/grouping.py, the service's),
   - connected components of the same threshold graph (the simpler graph method),
   - scikit-learn's HDBSCAN (min_cluster_size 2), when scikit-learn can be imported
     (it is not a dependency of the service: install it somewhere else and put it on PYTHONPATH).
3. Scale: the LFW faces plus random unit vectors as distractors (each one an
   identity of its own) up to each --sizes total; precision and recall over
   all faces, and the time of the graph and of the linkage. Isotropic random
   vectors are easier distractors than real faces of other people: read the
   precision at 100k as an upper bound.
Prints markdown tables. Nothing is written inside the repository.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings.clustering import grouping

SHARED = Path(__file__).resolve().parents[2] / "shared"
LFW_DIR = SHARED / "faces" / "lfw-devtrain"
MODEL_ROOT = SHARED / "models"
MODEL_PACK = "scrfd500m-mobilefacenet"


def log(message: str) -> None:
    print(f"--> {message}", file=sys.stderr, flush=True)


def lfw_photos(root: Path) -> list[Path]:
    return sorted(p for folder in sorted(root.iterdir()) if folder.is_dir() for p in sorted(folder.glob("*.jpg")))


def load_embeddings(paths: list[Path], cache: Path | None) -> dict[Path, np.ndarray]:
    """The largest face's embedding of each photo in which one is found."""
    if cache is not None and cache.exists():
        stored = np.load(cache, allow_pickle=False)
        if all(str(p) in stored.files or f"none:{p}" in stored.files for p in paths):
            log(f"embeddings read from {cache}")
            return {p: stored[str(p)] for p in paths if str(p) in stored.files}
    from embeddings.engine import AnalyzeOptions, EngineConfig, decode_image, get_engine

    engine = get_engine(EngineConfig(model_root=str(MODEL_ROOT), pack=MODEL_PACK, det_size=(640, 640),
                                     intra_op_threads=1))
    log(f"embedding {len(paths)} photos with {engine.model_id}")
    out = {}
    for path in paths:
        faces = engine.analyze(decode_image(path.read_bytes()), AnalyzeOptions(max_faces=1)).faces
        if faces:
            out[path] = np.asarray(faces[0].embedding, dtype=np.float32)
    if cache is not None:
        np.savez(cache, **{(str(p) if p in out else f"none:{p}"): out.get(p, np.zeros(0)) for p in paths})
    return out


def pairs(labels) -> int:
    return sum(n * (n - 1) // 2 for n in Counter(labels).values())


def pairwise(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Pairwise precision and recall; a face in no cluster (-1) predicts no pair."""
    predicted = predicted.copy()
    alone = predicted < 0
    predicted[alone] = predicted.max(initial=0) + 1 + np.arange(alone.sum())
    true_pairs = pairs(zip(predicted.tolist(), truth.tolist(), strict=True))
    predicted_pairs = pairs(predicted.tolist())
    return true_pairs / max(predicted_pairs, 1), true_pairs / max(pairs(truth.tolist()), 1)


def components(n: int, edges: np.ndarray) -> np.ndarray:
    """Connected components of the edges (union-find); singletons labelled -1."""
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges.tolist():
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[ra] = rb
    roots = np.array([root(i) for i in range(n)])
    _, labels, counts = np.unique(roots, return_inverse=True, return_counts=True)
    labels[counts[labels] < 2] = -1
    return labels


def hdbscan_labels(x: np.ndarray, min_samples: int) -> np.ndarray | None:
    try:
        from sklearn.cluster import HDBSCAN
    except ImportError:
        return None
    # Euclidean distance on unit vectors is a monotone function of cosine.
    return HDBSCAN(min_cluster_size=2, min_samples=min_samples).fit_predict(x)


def row(method: str, setting: str, labels: np.ndarray, truth: np.ndarray, seconds: float) -> str:
    precision, recall = pairwise(labels, truth)
    clusters = len(set(labels[labels >= 0].tolist()))
    return f"| {method} | {setting} | {precision:.3f} | {recall:.3f} | {clusters} | {seconds:.2f} |"


HEADER = ("| method | setting | pairwise precision | pairwise recall | clusters | seconds |\n"
          "|---|---|---:|---:|---:|---:|")


def lfw_table(x: np.ndarray, truth: np.ndarray, *, with_hdbscan: bool) -> str:
    lines = [HEADER]
    for threshold in (0.40, 0.45, 0.50, 0.55):
        started = time.perf_counter()
        labels = grouping.group_faces(x, threshold=threshold).labels
        lines.append(row("average linkage on the neighbour graph (service)", f"cosine {threshold:.2f}"
                         + (" (default)" if threshold == grouping.DEFAULT_THRESHOLD else ""),
                         labels, truth, time.perf_counter() - started))
    for threshold in (0.45, 0.50, 0.55, 0.60):
        started = time.perf_counter()
        edges, _ = grouping.neighbour_graph(x, threshold=threshold)
        lines.append(row("connected components of the threshold graph", f"cosine {threshold:.2f}",
                         components(len(x), edges), truth, time.perf_counter() - started))
    if with_hdbscan:
        for min_samples in (1, 2):
            started = time.perf_counter()
            labels = hdbscan_labels(x, min_samples)
            if labels is None:
                lines.append("| HDBSCAN | scikit-learn not importable | | | | |")
                break
            lines.append(row("HDBSCAN (scikit-learn)", f"min_cluster_size 2, min_samples {min_samples}",
                             labels, truth, time.perf_counter() - started))
    return "\n".join(lines)


def scale_table(x: np.ndarray, truth: np.ndarray, sizes: list[int], *, with_hdbscan: bool) -> str:
    rng = np.random.default_rng(0)
    lines = ["| faces | method | setting | pairwise precision | pairwise recall | graph s | linkage s | total s |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    for size in sizes:
        extra = rng.standard_normal((max(size - len(x), 0), x.shape[1])).astype(np.float32)
        faces = grouping.unit_rows(np.vstack([x, extra]))
        identities = np.concatenate([truth, truth.max() + 1 + np.arange(len(extra))])
        log(f"{size} faces: the neighbour graph")
        started = time.perf_counter()
        edges, sims = grouping.neighbour_graph(faces, threshold=0.45)
        graph_s = time.perf_counter() - started
        for threshold in (0.45, 0.50):
            keep = sims >= threshold
            started = time.perf_counter()
            roots = grouping._average_linkage(faces, edges[keep], sims[keep], threshold)
            labels = grouping._numbered(roots, 2)
            link_s = time.perf_counter() - started
            lines.append(_scale_row(size, "average linkage (service)", threshold, labels, identities, graph_s,
                                    link_s))
        for threshold in (0.50, 0.55):
            started = time.perf_counter()
            labels = components(len(faces), edges[sims >= threshold])
            lines.append(_scale_row(size, "connected components", threshold, labels, identities, graph_s,
                                    time.perf_counter() - started))
        if with_hdbscan and size <= 10_000:
            started = time.perf_counter()
            labels = hdbscan_labels(faces, 1)
            if labels is not None:
                precision, recall = pairwise(labels, identities)
                lines.append(f"| {size} | HDBSCAN (scikit-learn) | min_samples 1 | {precision:.3f} | "
                             f"{recall:.3f} | | | {time.perf_counter() - started:.1f} |")
    return "\n".join(lines)


def _scale_row(size, method, threshold, labels, identities, graph_s, link_s) -> str:
    precision, recall = pairwise(labels, identities)
    return (f"| {size} | {method} | cosine {threshold:.2f} | {precision:.3f} | {recall:.3f} | {graph_s:.1f} | "
            f"{link_s:.1f} | {graph_s + link_s:.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw-dir", type=Path, default=LFW_DIR)
    parser.add_argument("--cache", type=Path, help="an .npz file (outside the repository) to keep embeddings in")
    parser.add_argument("--sizes", default="10000,100000", help="total faces of the scale runs ('' for none)")
    parser.add_argument("--skip-hdbscan", action="store_true")
    args = parser.parse_args(argv)
    paths = lfw_photos(args.lfw_dir)
    embedded = load_embeddings(paths, args.cache)
    names = [p.parent.name for p in embedded]
    ids = {name: i for i, name in enumerate(sorted(set(names)))}
    truth = np.array([ids[name] for name in names])
    x = grouping.unit_rows(np.stack(list(embedded.values())))
    rotation, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((x.shape[1], x.shape[1])))
    templates = grouping.unit_rows(x @ rotation.T.astype(np.float32))  # y = R·x, as stored
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"# people discovery, LFW dev-train ({len(ids)} people, {len(x)} faces found in {len(paths)} photos), "
          f"{MODEL_PACK} det 640; {datetime.date.today()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print()
    print(lfw_table(templates, truth, with_hdbscan=not args.skip_hdbscan))
    if sizes:
        print()
        print(scale_table(templates, truth, sizes, with_hdbscan=not args.skip_hdbscan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
