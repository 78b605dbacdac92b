"""Person search on LFW dev-train: which subject-score aggregation ranks persons best.

    .venv/bin/python bench/bench_person_search.py [--pool K] [--folds F] [--limit-people N] [--cache FILE]

What it does (docs/BENCHMARKS.md, "Person search"):
1. The face engine as the server configures it by default (the test pack,
   detector at 640, one onnxruntime thread) embeds the largest face of every
   photo once, as a search sees it (bench/bench_identification.py `embed_all`).
   No Django, no servers: the point is the aggregation, not the index.
2. Split: a person with two or more photos in which a face is found holds one
   out as the genuine probe and is enrolled with the others (with >= 3 photos:
   all but one; with exactly 2: one). People with exactly one photo are never
   enrolled: their photo is an impostor probe. Fold f holds out each person's
   photo number f (modulo their count); --folds F pools F such splits.
3. Every probe is searched by exact cosine (NumPy) over all enrolled faces
   (or the --pool best, as the service's re-rank would see them), and the
   candidates go through embeddings.search.persons.rank_subjects with each
   method. Per-face search (the best face, "max") is the baseline.
4. Rank-1: the genuine probe's top subject is its person. FNIR at FPIR = 1 %:
   the threshold lets through at most 1 % of the impostor probes' top scores;
   a genuine probe fails when its top subject is wrong or scores below it.
   Both for the full gallery and for a gallery of only the subjects with two or
   more enrolled faces (their genuine probes; the same impostors).
Prints a markdown table. Nothing is written inside the repository (--cache
keeps the embeddings in a file of your choice, e.g. under /tmp, for re-runs).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_identification import embed_all
from bench.search_stack import LFW_DIR, MODEL_PACK, MODEL_ROOT, lfw_people, log
from embeddings.search.persons import FaceCandidate, rank_subjects

FPIR = 0.01


@dataclass(frozen=True)
class Method:
    """One aggregation to measure: a label and the rank_subjects arguments."""

    label: str
    method: str
    top_n: int | None = None
    temperature: float = 0.1


METHODS = (
    Method("per-face search (max, baseline)", "max"),
    Method("mean of top 2", "mean_top_n", top_n=2),
    Method("mean of top 3", "mean_top_n", top_n=3),
    Method("mean of all faces", "mean_top_n", top_n=None),
    Method("mean embedding", "mean_embedding"),
    Method("softmax, T = 0.05", "softmax", temperature=0.05),
    Method("softmax, T = 0.1", "softmax", temperature=0.1),
    Method("softmax, T = 0.2", "softmax", temperature=0.2),
)


@dataclass(frozen=True)
class Split:
    """One fold: who is enrolled with which photos, who probes with which."""

    enrolled: dict[str, list[Path]]  # person -> enrolled photos (all with a face)
    genuine: list[tuple[str, Path]]  # (person, held-out photo)
    impostors: list[Path]  # photos of never-enrolled people


def split_people(people: dict[str, list[Path]], has_face: Callable[[Path], bool], fold: int) -> Split:
    """Hold out photo number `fold` (modulo) of each person with >= 2 usable photos; enrol the rest."""
    enrolled, genuine, impostors = {}, [], []
    for person, photos in sorted(people.items()):
        usable = [p for p in photos if has_face(p)]
        if len(photos) == 1:
            impostors.extend(usable)
        elif len(usable) >= 2:
            held_out = usable[fold % len(usable)]
            enrolled[person] = [p for p in usable if p != held_out]
            genuine.append((person, held_out))
    return Split(enrolled, genuine, impostors)


@dataclass
class Gallery:
    """Enrolled faces as one matrix, with each row's subject and face id."""

    matrix: np.ndarray  # n x d, unit rows
    subjects: list[str]
    face_ids: list[str]
    by_subject: dict[str, np.ndarray]  # for mean_embedding

    @classmethod
    def build(cls, enrolled: dict[str, list[Path]], embedding: Callable[[Path], np.ndarray]) -> Gallery:
        subjects = [person for person, photos in enrolled.items() for _ in photos]
        face_ids = [f"{person}/{photo.name}" for person, photos in enrolled.items() for photo in photos]
        matrix = np.stack([embedding(p) for photos in enrolled.values() for p in photos]).astype(np.float32)
        by_subject = {person: np.stack([embedding(p) for p in photos]) for person, photos in enrolled.items()}
        return cls(matrix, subjects, face_ids, by_subject)

    def candidates(self, query: np.ndarray, pool: int) -> list[FaceCandidate]:
        """The enrolled faces by exact cosine, best first (the `pool` best; 0: all)."""
        scores = self.matrix @ query
        order = np.argsort(-scores, kind="stable")
        if pool:
            order = order[:pool]
        return [FaceCandidate(self.face_ids[i], self.subjects[i], float(scores[i])) for i in order]


def top_subjects(gallery: Gallery, queries: list[np.ndarray], pool: int) -> dict[str, list[tuple[str, float]]]:
    """{method label: [(top subject, its score) per query]}."""
    out: dict[str, list[tuple[str, float]]] = {m.label: [] for m in METHODS}
    for query in queries:
        candidates = gallery.candidates(query, pool)
        for m in METHODS:
            best = rank_subjects(candidates, method=m.method, top_n=m.top_n, temperature=m.temperature,
                                 query=query, subject_embeddings=gallery.by_subject)[0]
            out[m.label].append((best.subject_id, best.score))
    return out


def threshold_at_fpir(impostor_scores: np.ndarray, fpir: float = FPIR) -> float:
    """The lowest threshold (score >= threshold is a match) that lets at most `fpir` of the impostors through."""
    ranked = np.sort(np.asarray(impostor_scores, dtype=np.float64))[::-1]
    allowed = int(np.floor(fpir * len(ranked)))
    if allowed >= len(ranked):
        return -np.inf
    return float(np.nextafter(ranked[allowed], np.inf))


@dataclass
class Row:
    label: str
    rank1: float
    fnir: float
    threshold: float
    rank1_gained: int  # genuine probes this method gets right at rank 1 and max gets wrong
    rank1_lost: int  # and the other way round
    fnir_vs_max: tuple[float, float]  # 95 % bootstrap interval of (FNIR - max's FNIR)


@dataclass(frozen=True)
class Outcome:
    """One method's answers as arrays: genuine probes right at rank 1, their scores, impostors' top scores."""

    correct: np.ndarray
    genuine: np.ndarray
    impostor: np.ndarray

    @classmethod
    def of(cls, truth: list[str], genuine: list[tuple[str, float]], impostor: list[tuple[str, float]]) -> Outcome:
        return cls(np.array([s == t for (s, _), t in zip(genuine, truth, strict=True)]),
                   np.array([score for _, score in genuine]), np.array([score for _, score in impostor]))

    def fnir(self, g: np.ndarray | slice = slice(None), i: np.ndarray | slice = slice(None)) -> tuple[float, float]:
        """(FNIR at FPIR = 1 %, its threshold), on the probes `g` (genuine) and `i` (impostor)."""
        threshold = threshold_at_fpir(self.impostor[i])
        return 1 - float(np.mean(self.correct[g] & (self.genuine[g] >= threshold))), threshold


def bootstrap_difference(method: Outcome, baseline: Outcome, rounds: int = 1000) -> tuple[float, float]:
    """95 % interval of method's FNIR minus the baseline's, the same resampled probes for both (paired)."""
    rng = np.random.default_rng(0)
    differences = []
    for _ in range(rounds):
        g = rng.integers(0, len(method.correct), len(method.correct))
        i = rng.integers(0, len(method.impostor), len(method.impostor))
        differences.append(method.fnir(g, i)[0] - baseline.fnir(g, i)[0])
    low, high = np.percentile(differences, [2.5, 97.5])
    return float(low), float(high)


def evaluate(truth: list[str], genuine: dict[str, list], impostor: dict[str, list]) -> list[Row]:
    outcomes = {m.label: Outcome.of(truth, genuine[m.label], impostor[m.label]) for m in METHODS}
    baseline = outcomes[METHODS[0].label]
    rows = []
    for label, o in outcomes.items():
        fnir, threshold = o.fnir()
        rows.append(Row(label, float(np.mean(o.correct)), fnir, threshold,
                        int(np.sum(o.correct & ~baseline.correct)), int(np.sum(baseline.correct & ~o.correct)),
                        bootstrap_difference(o, baseline)))
    return rows


@dataclass
class Scenario:
    """One gallery setting's pooled probes over the folds."""

    name: str
    truth: list[str]
    genuine: dict[str, list]
    impostor: dict[str, list]
    subjects: int = 0
    faces: int = 0

    def add(self, gallery: Gallery, genuine: list[tuple[str, Path]], impostors: list[Path],
            embedding: Callable[[Path], np.ndarray], pool: int) -> None:
        self.subjects += len(gallery.by_subject)
        self.faces += len(gallery.face_ids)
        self.truth += [person for person, _ in genuine]
        for into, probes in ((self.genuine, [p for _, p in genuine]), (self.impostor, impostors)):
            for label, answers in top_subjects(gallery, [embedding(p) for p in probes], pool).items():
                into.setdefault(label, []).extend(answers)


def run(people: dict[str, list[Path]], embeddings: dict[Path, np.ndarray | None], *, folds: int,
        pool: int) -> list[Scenario]:
    def embedding(path: Path) -> np.ndarray:
        return embeddings[path]

    def has_face(path: Path) -> bool:
        return embeddings.get(path) is not None

    full = Scenario("all enrolled subjects", [], {}, {})
    multi = Scenario("subjects with >= 2 enrolled faces", [], {}, {})
    for fold in range(folds):
        split = split_people(people, has_face, fold)
        log(f"fold {fold}: {len(split.enrolled)} subjects, {sum(map(len, split.enrolled.values()))} faces, "
            f"{len(split.genuine)} genuine and {len(split.impostors)} impostor probes")
        full.add(Gallery.build(split.enrolled, embedding), split.genuine, split.impostors, embedding, pool)
        kept = {person: photos for person, photos in split.enrolled.items() if len(photos) >= 2}
        multi.add(Gallery.build(kept, embedding), [(p, photo) for p, photo in split.genuine if p in kept],
                  split.impostors, embedding, pool)
    return [full, multi]


def table(scenario: Scenario) -> str:
    rows = evaluate(scenario.truth, scenario.genuine, scenario.impostor)
    lines = [f"**{scenario.name}**: {scenario.subjects} subjects, {scenario.faces} faces (summed over folds), "
             f"{len(scenario.truth)} genuine probes, {len(scenario.impostor[METHODS[0].label])} impostor probes",
             "",
             "| aggregation | rank-1 | rank-1 vs max (+ / −) | FNIR at FPIR = 1 % | FNIR − max, 95 % CI "
             "| threshold at FPIR = 1 % |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        low, high = r.fnir_vs_max
        lines.append(f"| {r.label} | {100 * r.rank1:.2f} % | +{r.rank1_gained} / −{r.rank1_lost} "
                     f"| {100 * r.fnir:.2f} % | {100 * low:+.2f} to {100 * high:+.2f} pp | {r.threshold:.3f} |")
    return "\n".join(lines)


def load_embeddings(paths: list[Path], cache: Path | None) -> dict[Path, np.ndarray | None]:
    """The largest face's embedding of every photo (None: no face), from --cache when it holds them all."""
    if cache is not None and cache.exists():
        stored = np.load(cache, allow_pickle=False)
        if all(str(p) in stored.files or f"none:{p}" in stored.files for p in paths):
            log(f"embeddings read from {cache}")
            return {p: (stored[str(p)] if str(p) in stored.files else None) for p in paths}
    from embeddings.engine import EngineConfig, get_engine

    # The server's defaults (faceservice/settings/faces.py): detector at 640, one thread.
    engine = get_engine(EngineConfig(model_root=str(MODEL_ROOT), pack=MODEL_PACK, det_size=(640, 640),
                                     intra_op_threads=1))
    log(f"embedding {len(paths)} photos with {engine.model_id} (progress every 500)")
    started = time.perf_counter()
    analysed = embed_all(engine, paths)
    log(f"embedded in {time.perf_counter() - started:.0f} s")
    out = {p: (None if a is None else np.asarray(a[2], dtype=np.float32)) for p, a in analysed.items()}
    if cache is not None:
        np.savez(cache, **{(str(p) if e is not None else f"none:{p}"): (e if e is not None else np.zeros(0))
                           for p, e in out.items()})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw-dir", type=Path, default=LFW_DIR)
    parser.add_argument("--limit-people", type=int, default=0, help="only the first N people (a quick run)")
    parser.add_argument("--pool", type=int, default=0,
                        help="candidate faces per probe handed to the aggregation (0: every enrolled face)")
    parser.add_argument("--folds", type=int, default=1, help="pool this many hold-out splits (default 1)")
    parser.add_argument("--cache", type=Path, help="an .npz file (outside the repository) to keep embeddings in")
    args = parser.parse_args(argv)
    people = lfw_people(args.lfw_dir)
    if args.limit_people:
        people = dict(list(people.items())[: args.limit_people])
    paths = [p for photos in people.values() for p in photos]
    embeddings = load_embeddings(paths, args.cache)
    log(f"no face found in {sum(e is None for e in embeddings.values())} of {len(paths)} photos")
    started = time.perf_counter()
    scenarios = run(people, embeddings, folds=args.folds, pool=args.pool)
    log(f"searched and aggregated in {time.perf_counter() - started:.0f} s")
    print(f"# person search, LFW dev-train ({len(people)} people, {len(paths)} photos), {MODEL_PACK} det 640, "
          f"pool {args.pool or 'all faces'}, folds {args.folds}; {datetime.date.today()}, "
          f"{platform.machine()}")
    for scenario in scenarios:
        print()
        print(table(scenario))
    return 0


if __name__ == "__main__":
    sys.exit(main())
