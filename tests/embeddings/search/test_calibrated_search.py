"""Issue #16 through the API: calibrated thresholds (search, person search, compare, verify) and face quality
on real photos, the real engine with the test pack's calibration, and the real database."""

from __future__ import annotations

import base64
import io

import cv2
import numpy as np
import pytest
from django.conf import settings
from PIL import Image

from embeddings.face_engine import face_engine
from tests.embeddings.conftest import KNOWN, PROBES, index, photo, unit
from tests.embeddings.search.conftest import search

OBAMA = PROBES / "obama1.jpg"
ALEX = PROBES / "alex_lacamoire1.jpg"  # frontal, sharp, well lit: passes HIGH


def calibration():
    calibrated = face_engine().calibration
    assert calibrated is not None, "the test pack's calibration (deploy/calibrations/) was not found"
    return calibrated


def blurred(path, sigma: float = 10.0) -> bytes:
    """The photo blurred in memory (a Gaussian of `sigma` pixels), as JPEG bytes.

    The recognizer sees a 112 px crop: a face ~300 px wide needs sigma ~10 to look blurred there.
    """
    image = np.asarray(Image.open(path).convert("RGB"))
    soft = cv2.GaussianBlur(image, (0, 0), sigma)
    out = io.BytesIO()
    Image.fromarray(soft).save(out, format="JPEG", quality=95)
    return out.getvalue()


def b64(data: bytes) -> dict:
    return {"base64": base64.b64encode(data).decode()}


def enrolled_count(face_ids) -> int:
    return sum(len(ids) for ids in face_ids.values())


# --- 1:N ---------------------------------------------------------------------------------------

def test_the_calibrated_threshold_rises_with_the_gallery_size(enrolled, client_for):
    tenant, face_ids = enrolled
    client = client_for(tenant, ("searcher",))
    small = search(client, photo(OBAMA)).json()
    assert small["gallery_size"] == enrolled_count(face_ids) and small["threshold_source"] == "target_fpir"

    # Strangers join the collection (random unit embeddings: nobody's face); the next search sees them.
    index(tenant, "strangers", unit(np.random.default_rng(16), 300, dim=face_engine().dimension))
    large = search(client, photo(OBAMA)).json()
    assert large["gallery_size"] == enrolled_count(face_ids) + 300
    assert large["threshold"] > small["threshold"]
    for body in (small, large):
        expected = calibration().threshold_for_fpir(settings.SEARCH_TARGET_FPIR, body["gallery_size"])
        assert body["threshold"] == pytest.approx(expected, abs=1e-4)
        assert body["faces"][0]["matches"][0]["subject_id"] == "obama"  # still found

    # A filtered search counts only the faces it looks through.
    only_obama = search(client, photo(OBAMA), as_json=True, subject_ids=["obama"]).json()
    assert only_obama["gallery_size"] == len(face_ids["obama"])
    assert only_obama["threshold"] < small["threshold"]


def test_target_fpir_or_a_fixed_threshold_not_both(enrolled, client_for):
    tenant, _ = enrolled
    client = client_for(tenant, ("searcher",))
    both = search(client, photo(OBAMA), as_json=True, threshold=0.5, target_fpir=0.01)
    assert both.status_code == 400 and both.json()["error"]["code"] == "invalid_request"
    assert "threshold" in both.json()["error"]["details"]

    fixed = search(client, photo(OBAMA), threshold=0.5).json()
    assert (fixed["threshold"], fixed["threshold_source"], fixed["target_fpir"], fixed["gallery_size"]) == (
        0.5, "fixed", None, None)
    default = search(client, photo(OBAMA)).json()
    strict = search(client, photo(OBAMA), target_fpir=0.0001).json()
    assert strict["target_fpir"] == 0.0001 and strict["threshold"] > default["threshold"]
    for bad in (0, 0.9, -0.1):
        assert search(client, photo(OBAMA), as_json=True, target_fpir=bad).status_code == 400


def test_each_match_carries_a_false_match_rate_falling_with_similarity(enrolled, client_for):
    tenant, _ = enrolled
    body = search(client_for(tenant, ("searcher",)), photo(OBAMA), threshold=-1, top_k=20).json()
    matches = body["faces"][0]["matches"]
    assert len(matches) >= 5
    similarities = [m["similarity"] for m in matches]
    rates = [m["false_match_rate"] for m in matches]
    assert similarities == sorted(similarities, reverse=True)
    assert rates == sorted(rates) and all(0 < rate <= 1 for rate in rates)  # higher similarity, rarer by chance
    assert rates[0] < 1e-5 < rates[-1]  # the person's own photo vs strangers
    for match in matches:
        assert match["false_match_rate"] == pytest.approx(calibration().false_match_rate(match["similarity"]),
                                                          rel=0.01, abs=1e-12)


def test_by_face_id_the_face_itself_is_not_counted(enrolled, client_for):
    tenant, face_ids = enrolled
    body = search(client_for(tenant, ("searcher",)), face_id=str(face_ids["biden"][0])).json()
    assert body["gallery_size"] == enrolled_count(face_ids) - 1
    assert body["faces"][0]["quality"] is not None  # the stored face's, measured when it was indexed


def test_a_pack_without_calibration_falls_back_and_says_so(enrolled, client_for, settings, tmp_path):
    tenant, _ = enrolled
    # No calibration file there, none in the pack's folder: the engine of this configuration has none.
    settings.FACE_CALIBRATION_DIR = str(tmp_path)
    assert face_engine().calibration is None
    client = client_for(tenant, ("searcher",))
    body = search(client, photo(OBAMA)).json()
    assert (body["threshold"], body["threshold_source"], body["target_fpir"], body["gallery_size"]) == (
        settings.SEARCH_MATCH_THRESHOLD, "default, no calibration", None, None)
    assert all(m["false_match_rate"] is None for m in body["faces"][0]["matches"])
    asked = search(client, photo(OBAMA), target_fpir=0.01)
    assert asked.status_code == 422 and asked.json()["error"]["code"] == "calibration_unavailable"
    compare = client.post("/v1/compare", {"target": b64(photo(OBAMA)), "max_false_match_rate": 0.001,
                                          "references": [{"name": "o", "image": b64(photo(OBAMA))}]},
                          format="json")
    assert compare.status_code == 422 and compare.json()["error"]["code"] == "calibration_unavailable"


# --- Quality -----------------------------------------------------------------------------------

def test_query_faces_carry_their_quality(enrolled, client_for):
    tenant, _ = enrolled
    client = client_for(tenant, ("searcher",))
    (alex,) = search(client, photo(ALEX)).json()["faces"]
    assert set(alex["quality"]) == {"sharpness", "brightness"} and set(alex["pose"]) == {"yaw", "pitch", "roll"}
    # A portrait facing the camera: sharp, well lit, frontal.
    assert alex["quality"]["sharpness"] > 0.9 and 0.4 < alex["quality"]["brightness"] < 0.7
    assert abs(alex["pose"]["yaw"]) < 10 and abs(alex["pose"]["pitch"]) < 15 and abs(alex["pose"]["roll"]) < 10
    assert alex["matches"][0]["subject_id"] == "alex_lacamoire"

    # Two men facing the camera and a third, behind them, in profile.
    group = search(client, photo(PROBES / "obama_and_biden.jpg")).json()
    assert group["quality_filter"] == "NONE" and len(group["faces"]) == 3
    yaws = sorted(abs(face["pose"]["yaw"]) for face in group["faces"])
    assert yaws[1] < 20 < 45 < yaws[2]
    medium = search(client, photo(PROBES / "obama_and_biden.jpg"), quality_filter="MEDIUM").json()
    assert len(medium["faces"]) == 2 and [f["reason"] for f in medium["left_out"]] == ["extreme_pose"]
    assert abs(medium["left_out"][0]["pose"]["yaw"]) > 50  # MEDIUM's limit


def test_quality_filter_high_leaves_a_blurred_face_out_with_the_reason(enrolled, client_for):
    tenant, _ = enrolled
    client = client_for(tenant, ("searcher",))
    soft = blurred(ALEX)
    kept = search(client, soft).json()  # NONE by default: the blurred face is still searched
    assert len(kept["faces"]) == 1 and kept["faces"][0]["quality"]["sharpness"] < 0.3
    body = search(client, soft, as_json=True, quality_filter="HIGH").json()
    assert body["quality_filter"] == "HIGH" and body["faces"] == []
    (left,) = body["left_out"]
    assert left["reason"] == "low_sharpness" and left["quality"]["sharpness"] < 0.4
    assert set(left) == {"bbox", "det_score", "size", "reason", "quality", "pose"}
    # The sharp photo passes the same bar.
    sharp = search(client, photo(ALEX), quality_filter="HIGH").json()
    assert len(sharp["faces"]) == 1 and sharp["left_out"] == []
    assert search(client, soft, as_json=True, quality_filter="BEST").status_code == 400


# --- Persons -----------------------------------------------------------------------------------

def test_person_search_counts_subjects(enrolled, client_for):
    tenant, face_ids = enrolled
    client = client_for(tenant, ("searcher",))
    response = client.post("/v1/search/subjects", {"image": b64(photo(OBAMA))}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["threshold_source"] == "target_fpir" and body["gallery_size"] == len(face_ids)
    assert body["threshold"] == pytest.approx(
        calibration().threshold_for_fpir(settings.SEARCH_TARGET_FPIR, len(face_ids)), abs=1e-4)
    (face,) = body["faces"]
    assert face["subjects"][0]["subject_id"] == "obama" and face["subjects"][0]["false_match_rate"] < 1e-4
    assert face["quality"] is not None and body["left_out"] == []
    both = client.post("/v1/search/subjects", {"image": b64(photo(OBAMA)), "threshold": 0.4, "target_fpir": 0.01},
                       format="json")
    assert both.status_code == 400


# --- 1:1 ---------------------------------------------------------------------------------------

def compare(client, **fields):
    references = [{"name": "obama", "image": b64(photo(KNOWN / "enroll" / "obama" / "obama.jpg"))},
                  {"name": "biden", "image": b64(photo(next((KNOWN / "enroll" / "biden").iterdir())))}]
    return client.post("/v1/compare", {"target": b64(photo(OBAMA)), "references": references, **fields},
                       format="json")


def test_compare_at_a_false_match_rate(enrolled, client_for):
    tenant, _ = enrolled
    client = client_for(tenant, ("comparer",))
    default = compare(client).json()
    assert (default["threshold"], default["threshold_source"], default["max_false_match_rate"]) == (
        settings.FACE_MATCH_THRESHOLD, "default", None)
    body = compare(client, max_false_match_rate=1e-4).json()
    assert body["threshold_source"] == "max_false_match_rate" and body["max_false_match_rate"] == 1e-4
    assert body["threshold"] == pytest.approx(calibration().threshold_for_fmr(1e-4), abs=1e-4)
    by_name = {c["name"]: c for c in body["comparisons"]}
    assert by_name["obama"]["match"] and not by_name["biden"]["match"]
    assert by_name["obama"]["false_match_rate"] < 1e-4 < by_name["biden"]["false_match_rate"]
    assert compare(client, threshold=0.3, max_false_match_rate=1e-3).status_code == 400
    fixed = compare(client, threshold=0.3).json()
    assert (fixed["threshold"], fixed["threshold_source"]) == (0.3, "fixed")


def test_verify_at_a_false_match_rate(enrolled, client_for):
    tenant, _ = enrolled
    client = client_for(tenant, ("searcher",))
    body = client.post("/v1/verify", {"image": b64(photo(OBAMA)), "subject_id": "obama",
                                      "max_false_match_rate": 1e-5}, format="json").json()
    assert body["match"] and body["threshold_source"] == "max_false_match_rate"
    assert body["threshold"] == pytest.approx(calibration().threshold_for_fmr(1e-5), abs=1e-4)
    assert body["false_match_rate"] < 1e-5
    default = client.post("/v1/verify", {"image": b64(photo(OBAMA)), "subject_id": "biden"}, format="json").json()
    assert (default["threshold"], default["threshold_source"], default["match"]) == (
        settings.FACE_MATCH_THRESHOLD, "default", False)
    both = client.post("/v1/verify", {"image": b64(photo(OBAMA)), "subject_id": "obama", "threshold": 0.3,
                                      "max_false_match_rate": 1e-3}, format="json")
    assert both.status_code == 400
