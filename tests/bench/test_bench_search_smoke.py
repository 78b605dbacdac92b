"""A tiny run of the search benchmarks (bench_identification, bench_search_latency, bench_search_in_process).

The pure parts (split, brute force, scoring, percentiles, reports) run on
synthetic data. The end-to-end part starts the benchmark's real web server
(gunicorn, on the suite's throw-away database) and runs both benchmarks on a
handful of LFW photos, so the scripts cannot rot between benchmark runs.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from bench import bench_identification as ident
from bench import bench_search_latency as latency
from bench.search_stack import LFW_DIR, ServiceStack, lfw_people, percentile
from tests.conftest import MODELS_DIR

# --- pure parts -----------------------------------------------------------------------


@pytest.mark.pure
def test_split_people_enrols_first_photo_with_a_face():
    people = {
        "alice": [Path("alice/1.jpg"), Path("alice/2.jpg"), Path("alice/3.jpg")],
        "bob": [Path("bob/1.jpg"), Path("bob/2.jpg")],
        "carol": [Path("carol/1.jpg")],
        "dave": [Path("dave/1.jpg"), Path("dave/2.jpg")],
    }
    has_face = {p: True for photos in people.values() for p in photos}
    has_face[Path("bob/1.jpg")] = False
    has_face[Path("dave/1.jpg")] = has_face[Path("dave/2.jpg")] = False
    split = ident.split_people(people, has_face)
    assert split.gallery == {"alice": Path("alice/1.jpg"), "bob": Path("bob/2.jpg")}
    assert split.genuine == [("alice", Path("alice/2.jpg")), ("alice", Path("alice/3.jpg")),
                             ("bob", Path("bob/1.jpg"))]
    assert split.impostors == [("carol", Path("carol/1.jpg"))]
    assert (split.multi_photo_people, split.gallery_no_face, split.gallery_first_photo_no_face) == (3, 1, 1)


@pytest.mark.pure
def test_brute_force_scoring_and_agreement():
    gallery = np.eye(3, dtype=np.float32)
    labels, assets = ["a", "b", "c"], ["a/1", "b/1", "c/1"]
    close_to_b = np.array([0.1, 0.9, 0.0], dtype=np.float32)
    weak_c = np.array([0.5, 0.4, 0.6], dtype=np.float32)
    ranked = [ident.brute_force(gallery, labels, assets, v, None) for v in (close_to_b, weak_c, None)]
    assert [r.top_subject for r in ranked] == ["b", "c", None]
    assert ranked[2].face_found is False
    at = [ident.brute_force(gallery, labels, assets, v, 0.8) for v in (close_to_b, weak_c, None)]
    assert [a.top_subject for a in at] == ["b", None, None]
    # Probe 0 is b (right), probe 1 is a (wrong at rank 1, no match at 0.8), probe 2 had no face.
    m = ident.score(["b", "a", "c"], ranked, at, 0.8)
    assert (m.probes, m.no_face, m.rank1_correct, m.identified_at_threshold, m.false_match_at_threshold) \
        == (3, 1, 1, 1, 0)
    assert m.rates()["rank1"] == pytest.approx(1 / 3) and m.rates()["rank1_of_detected"] == 0.5
    # At 0.5 both answers clear the threshold, and both are someone other than "a".
    low = ident.score(["a", "a", "c"], ranked, ranked, 0.5)
    assert (low.false_match_at_threshold, low.identified_at_threshold) == (2, 0)
    service = [ident.service_answer({"faces": [{"matches": [
        {"subject_id": "b", "similarity": float(ranked[0].top_similarity) + 1e-7, "asset_id": "b/1"}]}]}),
        ident.service_answer({"faces": [{"matches": [{"subject_id": "a", "similarity": 0.5, "asset_id": "a/1"}]}]}),
        ident.service_answer({"faces": []})]
    agreement = ident.agreement(service, ranked)
    assert agreement["same_top_face"] == 2 and agreement["compared"] == 3
    assert agreement["max_abs_similarity_delta"] < 1e-6


@pytest.mark.pure
def test_latency_helpers():
    vectors = latency.random_unit_vectors(50, 16, seed=1)
    assert vectors.shape == (50, 16) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors, latency.random_unit_vectors(50, 16, seed=1))
    faces = latency.clustered_filler(200, 16, seed=1)
    assert faces.shape == (200, 16) and np.allclose(np.linalg.norm(faces, axis=1), 1.0, atol=1e-5)
    # Identities with several photos: a face's nearest other face is far closer than at random.
    nearest = np.sort(faces @ faces.T, axis=1)[:, -2]
    assert np.median(nearest) > np.median(np.sort(vectors @ vectors.T, axis=1)[:, -2]) + 0.2
    ids = [str(uuid.uuid4()) for _ in range(50)]
    scores = vectors @ vectors[7]
    top = latency.top_matches(scores, ids, 3, 0.99)
    assert top == [ids[7]]
    body = {"faces": [{"matches": [{"face_id": ids[7]}]}]}
    recall = latency.recall_against_brute_force([body, {"faces": []}], [vectors[7], vectors[3]], vectors, ids, 0.99)
    assert recall["same_best_match"] == 1 and recall["recall_at_10_above_threshold"] == 0.5
    summary = latency.summarise(list(range(1, 101)))
    assert summary["p50"] == pytest.approx(50.5) and summary["p99"] == pytest.approx(percentile(range(1, 101), 99))
    o = latency.overhead({"service_wall": {"p50": 30, "p99": 50}, "model": {"p50": 20, "p99": 40},
                          "service_non_model": {"p99": 9}})
    assert o == {"p50_minus_model_p50": 10, "p99_minus_model_p99": 10, "p99_ratio": 1.25, "non_model_p99": 9}


# --- end to end, on a handful of real photos --------------------------------------------


def tiny_lfw(multi: int = 3, single: int = 2, max_photos: int = 2) -> dict[str, list[Path]]:
    people = lfw_people(LFW_DIR)
    several = [(n, p[:max_photos]) for n, p in people.items() if len(p) >= 2][:multi]
    one = [(n, p) for n, p in people.items() if len(p) == 1][:single]
    return dict(several + one)


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    if not LFW_DIR.is_dir() or not (MODELS_DIR / "scrfd500m-mobilefacenet").is_dir():
        pytest.skip("../shared/faces/lfw-devtrain or the test model pack is missing")
    with django_db_blocker.unblock(), ServiceStack() as running:
        yield running


def test_identification_end_to_end(stack, django_db_blocker):
    with django_db_blocker.unblock():
        stack.new_tenant()
        out = ident.run(stack, tiny_lfw(), enrol_via="store")
    assert out["identities_enrolled"] == 3 and out["impostor_probes"] == 2
    genuine = out["results"]["genuine"]
    assert genuine["service"].probes == out["genuine_probes"] > 0
    assert genuine["agreement_ranked"]["same_top_face"] == genuine["agreement_ranked"]["compared"]
    assert genuine["service"].rank1_correct == genuine["brute_force"].rank1_correct
    text = ident.report(out)
    assert "rank-1" in text and "false match" in text
    assert ident.serialisable(out)["results"]["genuine"]["service"]["rank1"] >= 0


def test_latency_end_to_end(stack, django_db_blocker):
    with django_db_blocker.unblock():
        stack.new_tenant()
        out = latency.run(stack, total_faces=60, searches=3, rounds=1, warmup=1, max_people=6)
    assert out["faces_in_tenant"] == 60 and out["strategy"] == "memory"
    r = out["rounds"][0]
    assert r["service_wall"]["n"] == 3 and r["model"]["n"] == 3 and r["paired_difference"]["n"] == 3
    assert r["service_wall"]["p50"] > r["stages"]["detect_embed"]["p50"] > 0
    assert r["accuracy"]["same_best_match"] == 3
    assert "service p99 - model p99" in latency.report(out)


def test_in_process_search_end_to_end(stack, django_db_blocker):
    from bench import bench_search_in_process as in_process

    with django_db_blocker.unblock():
        stack.new_tenant()
        out = in_process.run(stack, total_faces=40, searches=3, warmup=1)
    ms = out["ms"]
    assert out["faces_in_tenant"] == 40 and out["searches"] == 3
    assert ms["wall"]["p50"] > ms["detect_embed"]["p50"] > 0 and ms["bare analyze"]["p50"] > 0
    assert 0 < ms["non-model"]["p50"] < ms["wall"]["p50"]


@pytest.mark.slow
def test_latency_hnsw_path(stack, django_db_blocker, settings, monkeypatch):
    """Past EXACT_SEARCH_MAX_FACES, with the in-memory galleries off, the service searches through the
    collection's own HNSW index; still the exact best match."""
    # Off in this process (the strategy the run reports) and in a web server of its own (the
    # searches it times); monkeypatch takes the variable out of the environment again afterwards.
    settings.SEARCH_MEMORY_MAX_BYTES = 0
    monkeypatch.setenv("SEARCH_MEMORY_MAX_BYTES", "0")
    with django_db_blocker.unblock(), ServiceStack() as pgvector_only:
        out = latency.run(pgvector_only, total_faces=settings.EXACT_SEARCH_MAX_FACES + 2000, searches=20,
                          rounds=1, warmup=2, max_people=40)
    assert out["strategy"] == "hnsw-collection"
    assert out["rounds"][0]["accuracy"]["same_best_match"] >= 19


@pytest.mark.slow
def test_identification_enrolled_through_index_jobs(stack, django_db_blocker):
    """The full benchmark's default: enrolment through POST /v1/index-jobs and a Celery worker."""
    with django_db_blocker.unblock():
        stack.new_tenant()
        out = ident.run(stack, tiny_lfw(), enrol_via="jobs")
    assert out["enrolled_via"] == "jobs" and out["enrolled_assets_without_exactly_one_face"] == []
    genuine = out["results"]["genuine"]
    assert genuine["agreement_ranked"]["same_top_face"] == genuine["agreement_ranked"]["compared"]
