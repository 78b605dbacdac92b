"""Person search: aggregate one query's face matches into ranked subject scores.

A face search answers faces; a person search (Rekognition's SearchUsers, Azure's
Identify) answers subjects, each scored over all of that subject's faces. This
module is the scoring core only: plain NumPy, no Django, no database. The caller
retrieves and re-ranks candidate faces as a face search does, then hands them
here with their subject ids (and, for "mean_embedding", the subjects' enrolled
embeddings).

Methods (`METHODS`):
- "max": the subject's best face similarity, the same ranking as a face search
  grouped by subject.
- "mean_top_n": the mean of the subject's `top_n` best face similarities (all
  of them when it has fewer, or when `top_n` is None).
- "mean_embedding": the cosine of the query with the normalised mean of the
  subject's enrolled embeddings (one "template" per person). It needs all of a
  candidate subject's enrolled faces, not only those among the candidates.
- "softmax": a similarity-weighted mean, weights softmax(similarity / temperature):
  between "max" (temperature -> 0) and the plain mean (temperature -> inf).

DEFAULT_METHOD and DEFAULT_TOP_N come from bench/bench_person_search.py on LFW
dev-train (docs/BENCHMARKS.md, "Person search").
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

METHODS = ("max", "mean_top_n", "mean_embedding", "softmax")

# Chosen by bench/bench_person_search.py on LFW dev-train with the test pack (docs/BENCHMARKS.md,
# "Person search"; 3 folds, 2,406 genuine and 3,978 impostor probes): no aggregation beat the best
# face by more than the noise (FNIR at FPIR = 1 %: max 7.48 %, mean embedding 7.32 %, softmax
# T = 0.1 7.15 %, mean of top 3 7.61 %; every 95 % interval of the difference holds 0; rank-1
# within 0.2 pp). So "max": it needs only the candidates (no extra decryption, unlike
# mean_embedding) and its scores are face similarities, so SEARCH_MATCH_THRESHOLD applies as
# calibrated. Re-measure with subjects of many faces (up to the per-subject limit), where max
# gives an impostor one chance per face and softmax, the runner-up, may pull ahead.
DEFAULT_METHOD = "max"
DEFAULT_TOP_N = 3  # mean of top 3 edged out top 2 in the full gallery (7.61 % vs 7.73 % FNIR)
DEFAULT_TEMPERATURE = 0.1  # 0.1 and 0.2 tied; 0.1 keeps scores nearer max's (threshold 0.464 vs 0.477)


class Candidate(Protocol):
    """One candidate face of a query: what a face search's re-rank gives (selectors.Match has it)."""

    @property
    def face_id(self) -> Hashable: ...

    @property
    def subject_id(self) -> str | None: ...

    @property
    def similarity(self) -> float: ...


@dataclass(frozen=True)
class FaceCandidate:
    """A plain Candidate, for callers (and tests) that have no Match at hand."""

    face_id: Hashable
    subject_id: str | None
    similarity: float


@dataclass(frozen=True)
class SubjectScore:
    """One ranked subject.

    score: the aggregated subject score (a cosine-like value; compare it only with
        scores of the same method, a threshold is calibrated per method).
    faces: how many faces entered the score ("max": 1; "mean_top_n": up to top_n;
        "mean_embedding": the subject's enrolled faces; "softmax": all its candidates).
    best_face_id / best_similarity: the subject's best candidate face, whatever the method.
    """

    subject_id: str
    score: float
    faces: int
    best_face_id: Hashable
    best_similarity: float


def rank_subjects(
    candidates: Sequence[Candidate],
    *,
    method: str = DEFAULT_METHOD,
    top_n: int | None = DEFAULT_TOP_N,
    temperature: float = DEFAULT_TEMPERATURE,
    query: np.ndarray | None = None,
    subject_embeddings: Mapping[str, np.ndarray] | None = None,
) -> list[SubjectScore]:
    """The subjects of `candidates`, best first, each scored by `method`.

    candidates: one query's candidate faces with their exact similarities; faces
        without a subject are not persons and are left out.
    top_n: for "mean_top_n", how many of a subject's best faces to average (None: all).
    temperature: for "softmax".
    query, subject_embeddings: for "mean_embedding" only, the query embedding and,
        for every subject among the candidates, its enrolled embeddings (k x d).
    Ties in score are broken by the best face's similarity, then by subject id,
    so the order never depends on the input order.
    Raises ValueError on an unknown method or missing inputs (a caller's bug).
    """
    _check(method, top_n, temperature, query, subject_embeddings)
    groups = _by_subject(candidates)
    if method == "mean_embedding":
        aggregated = _mean_embedding(query, [_enrolled(subject_embeddings, subject_id) for subject_id in groups])
    else:
        aggregated = [_aggregate(similarities, method, top_n, temperature) for similarities, _ in groups.values()]
    scored = [SubjectScore(subject_id, score, faces, best_face_id, similarities[0])
              for (subject_id, (similarities, best_face_id)), (score, faces) in zip(groups.items(), aggregated,
                                                                                    strict=True)]
    scored.sort(key=lambda s: (-s.score, -s.best_similarity, s.subject_id))
    return scored


def _check(method: str, top_n: int | None, temperature: float, query: np.ndarray | None,
           subject_embeddings: Mapping[str, np.ndarray] | None) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown aggregation {method!r}; one of {METHODS}")
    if method == "mean_top_n" and top_n is not None and top_n < 1:
        raise ValueError("top_n must be at least 1 (or None: all faces)")
    if method == "softmax" and not temperature > 0:
        raise ValueError("temperature must be positive")
    if method == "mean_embedding" and (query is None or subject_embeddings is None):
        raise ValueError("mean_embedding needs the query and the subjects' embeddings")


def _by_subject(candidates: Sequence[Candidate]) -> dict[str, tuple[list[float], Hashable]]:
    """{subject: (its similarities, best first; its best face id)}.

    Among equal similarities the first candidate given is the best face, so a
    re-rank's best-first order is kept.
    """
    grouped: dict[str, list[tuple[float, int, Hashable]]] = {}
    for position, candidate in enumerate(candidates):
        if candidate.subject_id is not None:
            grouped.setdefault(candidate.subject_id, []).append(
                (-float(candidate.similarity), position, candidate.face_id))
    out = {}
    for subject_id, faces in grouped.items():
        faces.sort(key=lambda face: face[:2])
        out[subject_id] = ([-face[0] for face in faces], faces[0][2])
    return out


# Plain Python on purpose: a subject has a handful of faces, where NumPy's per-call
# cost made a query of 1,300 candidates 4x slower (bench/bench_person_search.py).
def _aggregate(similarities: list[float], method: str, top_n: int | None, temperature: float) -> tuple[float, int]:
    """(score, faces used) of one subject's similarities, sorted best first."""
    if method == "max":
        return similarities[0], 1
    if method == "mean_top_n":
        used = similarities if top_n is None else similarities[:top_n]
        return sum(used) / len(used), len(used)
    # softmax: shifted by the best similarity so that exp never overflows.
    weights = [math.exp((s - similarities[0]) / temperature) for s in similarities]
    return sum(w * s for w, s in zip(weights, similarities, strict=True)) / sum(weights), len(similarities)


def _enrolled(subject_embeddings: Mapping[str, np.ndarray] | None, subject_id: str) -> np.ndarray:
    embeddings = None if subject_embeddings is None else subject_embeddings.get(subject_id)
    if embeddings is None or len(embeddings) == 0:
        raise ValueError(f"no enrolled embeddings given for subject {subject_id!r}")
    return np.atleast_2d(np.asarray(embeddings, dtype=np.float64))


def _mean_embedding(query: np.ndarray | None, enrolled: list[np.ndarray]) -> list[tuple[float, int]]:
    """(cosine of the query with the normalised mean of the subject's faces, faces) of each subject.

    All subjects in one go (a segmented sum over their stacked faces): one NumPy
    call per subject made this the slowest method by far.
    """
    if not enrolled:
        return []
    counts = np.array([len(rows) for rows in enrolled])
    rows = np.concatenate(enrolled)
    # Rows normalised first so that every enrolled face weighs the same in the mean.
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    means = np.add.reduceat(rows, np.concatenate(([0], np.cumsum(counts)[:-1])), axis=0) / counts[:, None]
    q = np.asarray(query, dtype=np.float64)
    cosines = means @ q / (np.linalg.norm(means, axis=1) * np.linalg.norm(q))
    return [(float(c), int(n)) for c, n in zip(cosines, counts, strict=True)]
