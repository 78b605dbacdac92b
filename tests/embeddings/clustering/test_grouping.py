"""The grouping itself, without servers: average linkage over the neighbour graph on synthetic people."""

from __future__ import annotations

import numpy as np
import pytest

from embeddings.clustering.grouping import group_faces, neighbour_graph, representatives, unit_rows

pytestmark = pytest.mark.pure


def people(rng, count: int, faces_each: int, spread: float, dim: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """`count` people, each a random direction with `faces_each` noisy faces around it."""
    centres = unit_rows(rng.standard_normal((count, dim)))
    faces = np.repeat(centres, faces_each, axis=0) + spread * rng.standard_normal((count * faces_each, dim))
    return unit_rows(faces), np.repeat(np.arange(count), faces_each)


def test_each_person_is_one_group_and_no_group_mixes_people():
    rng = np.random.default_rng(7)
    faces, truth = people(rng, count=20, faces_each=6, spread=0.06)
    grouped = group_faces(faces, threshold=0.5)
    assert len(grouped.groups) == 20
    for members in grouped.groups:
        assert len(set(truth[members].tolist())) == 1


def test_a_rotation_changes_nothing():
    # Templates are y = R·x with R orthogonal: cosines, so groups, are those of the embeddings.
    rng = np.random.default_rng(3)
    faces, _ = people(rng, count=8, faces_each=4, spread=0.08)
    rotation, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    assert np.array_equal(group_faces(faces).labels, group_faces(faces @ rotation.T).labels)


def test_average_linkage_does_not_chain_where_components_would():
    # Two tight people joined by a chain of faces each close to the next: one edge at a time would
    # join everything; the average similarity of the two sides stays below the threshold.
    a, b = unit_rows(np.eye(2, 16)[[0]]), unit_rows(np.eye(2, 16)[[1]])
    chain = unit_rows(np.vstack([a + (b - a) * t for t in np.linspace(0, 1, 9)]))
    edges, _ = neighbour_graph(chain, threshold=0.95)
    assert len(edges) >= 8  # the chain is connected at 0.95
    grouped = group_faces(chain, threshold=0.95, min_size=1)
    assert len(grouped.groups) > 1


def test_small_groups_are_left_out_and_edge_cases():
    rng = np.random.default_rng(1)
    faces, _ = people(rng, count=3, faces_each=1, spread=0.0)
    assert (group_faces(faces).labels == -1).all()  # three different people, one face each
    assert group_faces(np.zeros((0, 128))).labels.shape == (0,)
    assert group_faces(faces[:1], min_size=1).labels.tolist() == [0]


def test_representatives_are_nearest_the_mean():
    faces = unit_rows(np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.6], [1.0, 0.05]]))
    assert set(representatives(faces, count=2).tolist()) == {1, 3}  # never the odd one out (2)
