"""Face quality: sharpness, brightness and head pose of one detected face, and the quality filter.

Everything here is measured on what the recognizer sees, the aligned 112x112
crop, plus the five landmarks, so it costs well under a millisecond a face
(no extra network):

- sharpness: the variance of the Laplacian of the crop's grey face region,
  mapped to 0..1 as v / (v + SHARPNESS_HALF). The crop is what the
  recognizer sees, so a small face scaled up to 112 px reads as blurred too,
  which is what it is to the recognizer.
- brightness: the mean grey level of that region, 0 (black) .. 1 (white).
- pose: yaw, pitch, roll in degrees, by fitting a scaled-orthographic camera
  to the five landmarks of a generic 3D face (`estimate_pose`). Roll is
  accurate to a degree or two (it is the eye line's angle); yaw and pitch rest
  on the generic face's depths, so they are rough: about ±25 % of the angle
  plus a few degrees for an average face, and pitch carries a per-person
  offset of up to ~10° (faces differ in where nose and mouth sit; 0 is the
  median of LFW's news photos). Past ~60°
  of yaw the detector's own landmarks collapse and the estimate saturates.
  Good enough to tell frontal from half-profile from profile, which is all
  the filter needs.

Signs: yaw > 0 when the face turns towards the image's right, pitch > 0 when
it looks up, roll > 0 when the head tilts clockwise as the image is seen.

The filter levels follow AWS Rekognition's QualityFilter names (NONE, AUTO,
LOW, MEDIUM, HIGH); the bars of each level were chosen by measurement on LFW
dev-train and the known-people photos (docs/MODELS.md, "Face quality").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .align import ARCFACE_TEMPLATE

# Laplacian variance that maps to sharpness 0.5. LFW dev-train faces (news
# photos, ~95 px faces) have a median variance of 167 (sharpness 0.63), the
# 1st percentile 45 (0.31); known-people photos blurred with a Gaussian of
# sigma 3 fall below 10 (< 0.1).
SHARPNESS_HALF = 100.0

# The face inside the 112 px template (eyebrows to chin, cheek to cheek):
# background and the black fill of faces cut by the image edge stay out.
_REGION = (slice(36, 104), slice(24, 88))

# A generic face for the pose fit: the ArcFace template's frontal x, y, and
# depths (negative: towards the camera) as fractions of the eye distance, from
# average head anthropometry: the nose tip ~0.4 of the eye distance in front of
# the eyes, the mouth corners ~0.1.
_EYE_DISTANCE = float(ARCFACE_TEMPLATE[1, 0] - ARCFACE_TEMPLATE[0, 0])
_DEPTH = np.array([0.0, 0.0, -0.4, -0.1, -0.1]) * _EYE_DISTANCE
_MODEL = np.column_stack([ARCFACE_TEMPLATE, _DEPTH])
_MODEL_CENTRED = _MODEL - _MODEL.mean(axis=0)
# The generic face read LFW dev-train's news photos as looking 8° down on
# median (its nose sits a little low for most faces): pitch 0 is that median.
_PITCH_OFFSET = -8.0


@dataclass(frozen=True)
class FaceQuality:
    """How usable one face is for recognition (see the module docstring for the scales)."""

    sharpness: float  # 0..1
    brightness: float  # 0..1
    yaw: float  # degrees, > 0 turned towards the image's right
    pitch: float  # degrees, > 0 looking up
    roll: float  # degrees, > 0 tilted clockwise
    size: float  # pixels, the box's shorter side
    det_score: float  # the detector's confidence, 0..1

    def as_dict(self) -> dict[str, float]:
        return {key: round(value, 4) for key, value in asdict(self).items()}


def measure_quality(crop: np.ndarray, landmarks: np.ndarray, size: float, det_score: float) -> FaceQuality:
    """Quality of one face from its aligned crop (BGR, square) and its five landmarks."""
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    region = _face_region(gray)
    yaw, pitch, roll = estimate_pose(landmarks)
    return FaceQuality(sharpness=sharpness(region), brightness=float(region.mean()) / 255.0,
                       yaw=yaw, pitch=pitch, roll=roll, size=float(size), det_score=float(det_score))


def sharpness(gray: np.ndarray) -> float:
    """0..1 from the variance of the Laplacian (0.5 at SHARPNESS_HALF)."""
    variance = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    return variance / (variance + SHARPNESS_HALF)


def estimate_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from five landmarks (eyes, nose tip, mouth corners).

    A least-squares affine camera maps the generic 3D face onto the points; its
    two rows, made orthonormal (SVD), are the first two rows of the head's
    rotation. Degenerate landmarks (all on one point) give (0, 0, 0).
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    centred = points - points.mean(axis=0)
    if not np.isfinite(centred).all() or np.abs(centred).max() < 1e-6:
        return 0.0, 0.0, 0.0
    camera, *_ = np.linalg.lstsq(_MODEL_CENTRED, centred, rcond=None)  # 3x2
    u, _, vt = np.linalg.svd(camera.T, full_matrices=False)  # camera.T: 2x3
    rows = u @ vt
    rotation = np.vstack([rows, np.cross(rows[0], rows[1])])
    # rotation = Rz(roll) · Ry(yaw') · Rx(pitch') in image axes (x right, y down, z away).
    yaw_model = math.degrees(math.asin(max(-1.0, min(1.0, -rotation[2, 0]))))
    pitch_model = math.degrees(math.atan2(rotation[2, 1], rotation[2, 2]))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    # Ry(+) moves the nose to the image's left and Rx(+) moves it down: flip both
    # so that the signs read as the docstring says.
    return -yaw_model, -pitch_model - _PITCH_OFFSET, roll


def _face_region(gray: np.ndarray) -> np.ndarray:
    scale = gray.shape[0] / 112.0
    rows, cols = _REGION
    return gray[int(rows.start * scale):int(rows.stop * scale), int(cols.start * scale):int(cols.stop * scale)]


# The filter ----------------------------------------------------------------
EXTREME_POSE = "extreme_pose"
LOW_SHARPNESS = "low_sharpness"
LOW_BRIGHTNESS = "low_brightness"

NONE, AUTO, LOW, MEDIUM, HIGH = "NONE", "AUTO", "LOW", "MEDIUM", "HIGH"
QUALITY_FILTERS = (NONE, AUTO, LOW, MEDIUM, HIGH)


@dataclass(frozen=True)
class QualityBar:
    """The least a face needs to pass one filter level."""

    min_size: float = 0.0
    min_det_score: float = 0.0
    max_yaw: float = 180.0
    max_pitch: float = 180.0
    min_sharpness: float = 0.0
    min_brightness: float = 0.0

    def failure(self, quality: FaceQuality) -> str | None:
        """The reason this face fails the bar, in the order of the checks, or None.

        Size and score are checked by the engine's selection (too_small,
        low_score), which folds this bar's minimums into its own.
        """
        if abs(quality.yaw) > self.max_yaw or abs(quality.pitch) > self.max_pitch:
            return EXTREME_POSE
        # Brightness before sharpness: a dark face has little contrast, so it reads as
        # blurred too, and the cause to report is the light.
        if quality.brightness < self.min_brightness:
            return LOW_BRIGHTNESS
        if quality.sharpness < self.min_sharpness:
            return LOW_SHARPNESS
        return None


# Measured on LFW dev-train (3,443 news photos) and known-people: how many
# faces each level leaves out, and what AUTO does to FNIR, are in docs/MODELS.md
# ("Face quality") with the command that measured them (bench/bench_quality.py).
BARS: dict[str, QualityBar] = {
    NONE: QualityBar(),
    # What no recognizer can use: 0.5 % of LFW's news photos fail it.
    LOW: QualityBar(min_size=20, min_det_score=0.5, max_yaw=70, max_pitch=55,
                    min_sharpness=0.2, min_brightness=0.15),
    MEDIUM: QualityBar(min_size=40, min_det_score=0.6, max_yaw=50, max_pitch=45,
                       min_sharpness=0.3, min_brightness=0.25),
    # Near-frontal, sharp, well lit: an enrolment photo; 27 % of LFW photos fail it (21 % on pose).
    HIGH: QualityBar(min_size=64, min_det_score=0.7, max_yaw=35, max_pitch=30,
                     min_sharpness=0.4, min_brightness=0.3),
}
# AUTO = LOW, by measurement (bench/bench_quality.py, docs/MODELS.md "Face
# quality"): on LFW dev-train no level lowered FNIR at FPIR = 1 % when applied
# to enrolment (NONE 6.7 %, LOW 6.9 %, MEDIUM 8.5 %, HIGH 24.4 %): news photos
# are rarely unusable, and every enrolment photo left out can only lose a
# match. LOW leaves out 0.5 % of them (the blurred, dark and profile faces no
# recognizer uses) at a cost within noise (one probe in 804); stricter levels
# cost matches. AUTO should be re-decided on a set with real bad photos.
AUTO_LEVEL = LOW
BARS[AUTO] = BARS[AUTO_LEVEL]


def quality_bar(level: str) -> QualityBar:
    """The bar of a filter level (NONE, AUTO, LOW, MEDIUM, HIGH)."""
    try:
        return BARS[level]
    except KeyError:
        raise ValueError(f"quality_filter must be one of {QUALITY_FILTERS}, not {level!r}") from None
