"""Subject scores of a person search (embeddings/search/persons.py): each method, ties, edge cases."""

from __future__ import annotations

import math
import random
from typing import NamedTuple

import numpy as np
import pytest

from embeddings.search.persons import DEFAULT_METHOD, METHODS, FaceCandidate, rank_subjects

pytestmark = pytest.mark.pure


def faces(*rows: tuple[str | None, float]) -> list[FaceCandidate]:
    """Candidates best first, as a re-rank gives them; face ids f0, f1, ... in that order."""
    return [FaceCandidate(f"f{i}", subject, similarity) for i, (subject, similarity) in enumerate(rows)]


# A has one excellent face and one poor one; B two good ones: max prefers A, a mean prefers B.
SPLIT = faces(("A", 0.9), ("B", 0.8), ("B", 0.7), ("C", 0.5), ("A", 0.3))


def scores(ranked) -> dict[str, float]:
    return {s.subject_id: s.score for s in ranked}


def test_max_is_the_best_face_of_each_subject():
    ranked = rank_subjects(SPLIT, method="max")
    assert [s.subject_id for s in ranked] == ["A", "B", "C"]
    assert scores(ranked) == pytest.approx({"A": 0.9, "B": 0.8, "C": 0.5})
    assert [s.faces for s in ranked] == [1, 1, 1]
    assert [(s.best_face_id, s.best_similarity) for s in ranked] == [("f0", 0.9), ("f1", 0.8), ("f3", 0.5)]


def test_mean_of_the_top_n_faces():
    ranked = rank_subjects(SPLIT, method="mean_top_n", top_n=2)
    assert [s.subject_id for s in ranked] == ["B", "A", "C"]
    assert scores(ranked) == pytest.approx({"B": 0.75, "A": 0.6, "C": 0.5})
    # The best face is the subject's best whatever the method.
    assert ranked[1].best_face_id == "f0"
    assert [s.faces for s in ranked] == [2, 2, 1]


def test_mean_top_n_averages_only_the_n_best():
    candidates = faces(("A", 0.9), ("A", 0.8), ("A", 0.1))
    assert rank_subjects(candidates, method="mean_top_n", top_n=2)[0].score == pytest.approx(0.85)
    assert rank_subjects(candidates, method="mean_top_n", top_n=1)[0].score == pytest.approx(0.9)
    every = rank_subjects(candidates, method="mean_top_n", top_n=None)[0]
    assert (every.score, every.faces) == (pytest.approx(0.6), 3)


def test_a_subject_with_one_face_scores_that_face_with_every_method():
    candidates = faces(("solo", 0.62))
    query = np.array([1.0, 0.0, 0.0])
    enrolled = {"solo": np.array([[0.62, math.sqrt(1 - 0.62**2), 0.0]])}
    for method in METHODS:
        [only] = rank_subjects(candidates, method=method, query=query, subject_embeddings=enrolled)
        assert (only.subject_id, only.faces, only.best_face_id) == ("solo", 1, "f0")
        assert only.score == pytest.approx(0.62), method


def test_mean_embedding_is_the_cosine_with_the_normalised_mean():
    query = np.array([1.0, 0.0, 0.0])
    enrolled = {
        # Not unit length on purpose: each face is normalised before the mean, so both weigh the same.
        "A": np.array([[3.0, 0.0, 0.0], [0.0, 0.5, 0.0]]),
        "B": np.array([[0.6, 0.8, 0.0], [0.6, -0.8, 0.0]]),
    }
    candidates = faces(("A", 1.0), ("B", 0.6), ("B", 0.6), ("A", 0.0))
    ranked = rank_subjects(candidates, method="mean_embedding", query=query, subject_embeddings=enrolled)
    # A's mean points halfway between x and y: cos 45°; B's two faces mirror each other: their mean is x.
    assert [s.subject_id for s in ranked] == ["B", "A"]
    assert scores(ranked) == pytest.approx({"B": 1.0, "A": 1 / math.sqrt(2)})
    assert [s.faces for s in ranked] == [2, 2]
    assert ranked[1].best_face_id == "f0"


def test_mean_embedding_uses_every_enrolled_face_not_only_the_candidates():
    query = np.array([1.0, 0.0])
    enrolled = {"A": np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])}
    [a] = rank_subjects(faces(("A", 1.0)), method="mean_embedding", query=query, subject_embeddings=enrolled)
    assert (a.score, a.faces) == (pytest.approx(2 / math.sqrt(5)), 3)


def test_softmax_lies_between_max_and_mean():
    candidates = faces(("A", 0.9), ("A", 0.5))
    cold = rank_subjects(candidates, method="softmax", temperature=0.01)[0].score
    warm = rank_subjects(candidates, method="softmax", temperature=0.1)[0].score
    hot = rank_subjects(candidates, method="softmax", temperature=100.0)[0].score
    assert cold == pytest.approx(0.9, abs=1e-6)
    w = math.exp(-4.0)  # exp((0.5 - 0.9) / 0.1), the poor face's weight against the best's
    assert warm == pytest.approx((0.9 + 0.5 * w) / (1 + w))
    assert hot == pytest.approx(0.7, abs=1e-3)
    assert rank_subjects(candidates, method="softmax", temperature=0.1)[0].faces == 2


def test_softmax_does_not_overflow_on_a_tiny_temperature():
    [a] = rank_subjects(faces(("A", 0.9), ("A", -0.9)), method="softmax", temperature=1e-6)
    assert a.score == pytest.approx(0.9)


def test_equal_scores_are_ordered_by_best_face_then_subject_id_whatever_the_input_order():
    # Every mean of top 2 is exactly 0.5 (binary fractions: no rounding): "late" has the best face,
    # "x" and "y" tie on everything but the id.
    candidates = faces(("y", 0.625), ("x", 0.625), ("late", 0.75), ("y", 0.375), ("x", 0.375), ("late", 0.25))
    expected = ["late", "x", "y"]
    for seed in range(5):
        shuffled = list(candidates)
        random.Random(seed).shuffle(shuffled)
        ranked = rank_subjects(shuffled, method="mean_top_n", top_n=2)
        assert [s.subject_id for s in ranked] == expected
        assert [s.score for s in ranked] == [0.5, 0.5, 0.5]


def test_within_a_subject_the_first_of_equal_faces_is_the_best_face():
    ranked = rank_subjects(faces(("A", 0.7), ("A", 0.7)), method="max")
    assert ranked[0].best_face_id == "f0"


def test_faces_without_a_subject_are_not_persons():
    ranked = rank_subjects(faces((None, 0.99), ("A", 0.4)), method="max")
    assert [(s.subject_id, s.best_face_id) for s in ranked] == [("A", "f1")]


def test_empty_input_ranks_no_one():
    for method in METHODS:
        assert rank_subjects([], method=method, query=np.ones(3), subject_embeddings={}) == []


def test_any_object_with_the_three_attributes_is_a_candidate():
    class Match(NamedTuple):  # the shape of embeddings.search.selectors.Match, without Django
        face_id: str
        asset_id: str
        subject_id: str | None
        similarity: float
        bbox: list

    ranked = rank_subjects([Match("u1", "asset", "A", 0.5, [])], method=DEFAULT_METHOD)
    assert (ranked[0].subject_id, ranked[0].best_face_id) == ("A", "u1")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"method": "median"}, "unknown aggregation"),
    ({"method": "mean_top_n", "top_n": 0}, "top_n"),
    ({"method": "softmax", "temperature": 0.0}, "temperature"),
    ({"method": "mean_embedding"}, "needs the query"),
    ({"method": "mean_embedding", "query": np.ones(2), "subject_embeddings": {"B": np.ones((1, 2))}},
     "no enrolled embeddings"),
])
def test_a_caller_bug_is_a_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rank_subjects(faces(("A", 0.5)), **kwargs)


def test_the_default_method_is_one_of_the_methods():
    assert DEFAULT_METHOD in METHODS
