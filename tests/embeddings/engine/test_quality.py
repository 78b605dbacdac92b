"""Face quality on real photos: good ones score high, spoiled copies (made in memory) score low and are
left out at HIGH with the right reason; the pose estimate on known rotations."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest

from embeddings.engine import LEFT_OUT_REASONS, QUALITY_FILTERS, AnalyzeOptions
from embeddings.engine.align import ARCFACE_TEMPLATE
from embeddings.engine.quality import BARS, estimate_pose
from tests.embeddings.engine.conftest import FACES, load_photo, needs_shared

pytestmark = [pytest.mark.pure, needs_shared]

KNOWN = FACES / "known-people"
ENROL_PHOTOS = sorted((KNOWN / "enroll").glob("*/*.jpg")) if KNOWN.is_dir() else []
HIGH = AnalyzeOptions(quality_filter="HIGH")


@pytest.fixture(scope="module")
def obama():
    return load_photo(KNOWN / "more" / "obama.jpg")


@pytest.mark.parametrize("path", ENROL_PHOTOS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_good_photos_score_high_and_pass_high(engine, path):
    analysis = engine.analyze(load_photo(path), HIGH)
    assert len(analysis.faces) == 1, analysis.left_out
    q = analysis.faces[0].quality
    assert q.sharpness > 0.8 and 0.3 < q.brightness < 0.8
    assert abs(q.yaw) < 30 and abs(q.pitch) < 30 and abs(q.roll) < 15
    assert q.size == analysis.faces[0].size > 200 and q.det_score == analysis.faces[0].det_score


def _only_face(engine, image, options=HIGH):
    analysis = engine.analyze(image, options)
    everything = [(f, "kept") for f in analysis.faces] + [(f, f.reason) for f in analysis.left_out]
    assert len(everything) == 1, everything
    return everything[0]


def test_blurred_copy_is_left_out_for_low_sharpness(engine, obama):
    face, reason = _only_face(engine, cv2.GaussianBlur(obama, (0, 0), 7))
    assert reason == "low_sharpness" and face.quality.sharpness < 0.2
    sharp, _ = _only_face(engine, obama)
    assert sharp.quality.sharpness > 0.9


def test_darkened_copy_is_left_out_for_low_brightness(engine, obama):
    face, reason = _only_face(engine, (obama * 0.15).astype(np.uint8))
    assert reason == "low_brightness" and face.quality.brightness < 0.1
    # LOW still keeps a photo at 30 % of its light; HIGH does not.
    dim = (obama * 0.3).astype(np.uint8)
    assert _only_face(engine, dim, AnalyzeOptions(quality_filter="LOW"))[1] == "kept"
    assert _only_face(engine, dim)[1] == "low_brightness"


def test_tiny_copy_is_left_out_as_too_small(engine, obama):
    h, w = obama.shape[:2]
    face, reason = _only_face(engine, cv2.resize(obama, (w // 10, h // 10), interpolation=cv2.INTER_AREA))
    assert reason == "too_small" and face.size < BARS["HIGH"].min_size
    # Scaled up again it is big, but the detail is gone: low sharpness.
    small = cv2.resize(obama, (w // 12, h // 12), interpolation=cv2.INTER_AREA)
    face, reason = _only_face(engine, cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC))
    assert reason == "low_sharpness" and face.size > 100 and face.quality.sharpness < 0.3


def test_half_face_is_left_out(engine, obama):
    box = engine.analyze(obama).faces[0].bbox
    half = np.ascontiguousarray(obama[:, : int((box[0] + box[2]) / 2)])
    _, reason = _only_face(engine, half)
    assert reason in ("low_score", "extreme_pose")


@pytest.mark.parametrize("angle", [-30, 15, 40])
def test_roll_follows_a_rotation(engine, obama, angle):
    """Rotating the photo clockwise by `angle` degrees adds `angle` to the roll.

    Roll is undone by the alignment, so it is no quality problem in itself (the
    detector is less sure of a tilted face, though: at 40° its score falls below
    HIGH's bar)."""
    h, w = obama.shape[:2]
    upright, _ = _only_face(engine, obama)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0)  # OpenCV: positive = anticlockwise
    face, reason = _only_face(engine, cv2.warpAffine(obama, matrix, (w, h)), AnalyzeOptions())
    assert reason == "kept"
    assert face.quality.roll - upright.quality.roll == pytest.approx(angle, abs=4)


def test_a_mirrored_face_turns_the_other_way(engine):
    image = load_photo(KNOWN / "more" / "obama2.jpg")
    turned, _ = _only_face(engine, image, AnalyzeOptions())
    mirrored, _ = _only_face(engine, np.ascontiguousarray(image[:, ::-1]), AnalyzeOptions())
    assert turned.quality.yaw < -15 and mirrored.quality.yaw > 15
    assert turned.quality.yaw == pytest.approx(-mirrored.quality.yaw, abs=8)


def _project(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The generic face rotated and projected (scaled orthographic), as pose.estimate_pose models it."""
    from embeddings.engine.quality import _MODEL, _PITCH_OFFSET

    a, b, c = (math.radians(v) for v in (-yaw, -(pitch + _PITCH_OFFSET), roll))
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return (_MODEL @ (rz @ ry @ rx).T)[:, :2] * 2.5 + 300


@pytest.mark.parametrize("pose", [(0, 0, 0), (30, 0, 0), (-45, 10, 5), (0, 25, 0), (20, -20, -30), (60, 0, 10)])
def test_pose_of_the_generic_face_is_recovered_exactly(pose):
    assert estimate_pose(_project(*pose)) == pytest.approx(pose, abs=0.5)


def test_pose_of_degenerate_landmarks_is_zero():
    assert estimate_pose(np.full((5, 2), 7.0)) == (0.0, 0.0, 0.0)
    assert estimate_pose(np.full((5, 2), np.nan)) == (0.0, 0.0, 0.0)
    frontal = estimate_pose(ARCFACE_TEMPLATE)
    assert abs(frontal[0]) < 0.5 and abs(frontal[2]) < 0.5


def test_levels_grow_stricter():
    levels = [BARS[name] for name in ("NONE", "LOW", "MEDIUM", "HIGH")]
    for looser, stricter in itertools.pairwise(levels):
        assert stricter.min_size >= looser.min_size and stricter.min_det_score >= looser.min_det_score
        assert stricter.max_yaw <= looser.max_yaw and stricter.max_pitch <= looser.max_pitch
        assert stricter.min_sharpness >= looser.min_sharpness
        assert stricter.min_brightness >= looser.min_brightness
    assert set(QUALITY_FILTERS) == set(BARS)


def test_left_out_reasons_are_complete():
    assert set(LEFT_OUT_REASONS) == {"low_score", "too_small", "extreme_pose", "low_brightness",
                                     "low_sharpness", "not_largest_face", "over_max_faces"}
    with pytest.raises(ValueError):
        AnalyzeOptions(quality_filter="BEST")


def test_detect_matches_analyze_without_embeddings(engine):
    image = load_photo(FACES / "group-photos" / "016_8.jpg")
    analysis = engine.analyze(image, AnalyzeOptions(quality_filter="LOW"))
    detection = engine.detect(image, AnalyzeOptions(quality_filter="LOW"))
    # LOW keeps 7 of this group photo's 8 faces (26-33 px; the 8th is too blurred); MEDIUM (40 px) none.
    assert len(detection.faces) == 7 and [f.reason for f in detection.left_out] == ["low_sharpness"]
    assert [f.bbox for f in detection.faces] == [f.bbox for f in analysis.faces]
    assert [f.quality for f in detection.faces] == [f.quality for f in analysis.faces]
    assert [(f.bbox, f.reason) for f in detection.left_out] == [(f.bbox, f.reason) for f in analysis.left_out]
    assert not hasattr(detection.faces[0], "embedding")
