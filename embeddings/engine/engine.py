"""FaceEngine: detect faces, decide which to keep, embed the kept ones.

`analyze` follows AWS Rekognition's IndexFaces shape: the faces it kept, with
embeddings, and the faces it left out with a reason (UnindexedFaces), so a
caller can tell "no face" from "faces, but too small".
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from .align import align_face
from .calibration import Calibration, calibration_paths, find_calibration
from .config import EngineConfig
from .errors import ModelsUnavailable
from .networks import Detector, Recognizer
from .pack import PackFiles, locate_pack
from .quality import (
    EXTREME_POSE,
    LOW_BRIGHTNESS,
    LOW_SHARPNESS,
    NONE,
    FaceQuality,
    QualityBar,
    measure_quality,
    quality_bar,
)
from .runtime import create_session, resolve_providers

logger = logging.getLogger(__name__)

TOO_SMALL = "too_small"
LOW_SCORE = "low_score"
OVER_MAX_FACES = "over_max_faces"
NOT_LARGEST_FACE = "not_largest_face"
# Every reason a detected face may be left out, in the order they are checked
# (Rekognition's UnindexedFaces reasons: low confidence, small box, extreme
# pose, low brightness, low sharpness, over max faces).
LEFT_OUT_REASONS = (LOW_SCORE, TOO_SMALL, EXTREME_POSE, LOW_BRIGHTNESS, LOW_SHARPNESS, NOT_LARGEST_FACE,
                    OVER_MAX_FACES)

BBox = tuple[float, float, float, float]
Point = tuple[float, float]


@dataclass(frozen=True)
class AnalyzeOptions:
    """What to keep.

    max_faces: keep at most this many, largest box first (None: no limit).
    min_face_size: pixels, on the shorter side of the box.
    min_det_score: detector confidence needed to keep a face.
    low_score_floor: detections scoring between this and min_det_score are
        reported in left_out as low_score; below it they are not reported.
    largest_only: keep only the largest acceptable face; the others are left
        out as not_largest_face (an enrolment photo of one person: the others
        are bystanders, whatever max_faces says).
    quality_filter: NONE, AUTO, LOW, MEDIUM or HIGH (quality.BARS): a face
        below the level's bar is left out as too_small, low_score,
        extreme_pose, low_sharpness or low_brightness. The bar's size and
        score minimums apply on top of min_face_size and min_det_score.
    """

    max_faces: int | None = None
    min_face_size: float = 0.0
    min_det_score: float = 0.5
    low_score_floor: float = 0.3
    largest_only: bool = False
    quality_filter: str = NONE

    def __post_init__(self) -> None:
        if self.max_faces is not None and self.max_faces < 1:
            raise ValueError("max_faces must be >= 1 or None")
        if not 0.0 <= self.min_det_score <= 1.0 or not 0.0 <= self.low_score_floor <= 1.0:
            raise ValueError("scores must be within [0, 1]")
        if self.min_face_size < 0:
            raise ValueError("min_face_size must be >= 0")
        quality_bar(self.quality_filter)  # raises ValueError for an unknown level

    @property
    def bar(self) -> QualityBar:
        return quality_bar(self.quality_filter)


@dataclass(frozen=True, eq=False)
class Face:
    """A kept face. `embedding` is float32, unit length, `dimension` long.

    bbox is (x1, y1, x2, y2) in image pixels as the detector gives it: it may
    reach slightly past the image edge for faces cut by the border. size is
    the box's shorter side. landmarks: eyes, nose tip, mouth corners.
    quality: sharpness, brightness and pose (quality.FaceQuality).
    """

    bbox: BBox
    landmarks: tuple[Point, ...]
    det_score: float
    size: float
    embedding: np.ndarray = field(repr=False)
    quality: FaceQuality | None = None


@dataclass(frozen=True)
class DetectedFace:
    """A kept face without its embedding: what `FaceEngine.detect` gives."""

    bbox: BBox
    landmarks: tuple[Point, ...]
    det_score: float
    size: float
    quality: FaceQuality


@dataclass(frozen=True)
class LeftOutFace:
    """A detected face that was not embedded, and why (see LEFT_OUT_REASONS)."""

    bbox: BBox
    det_score: float
    size: float
    reason: str
    quality: FaceQuality | None = None
    landmarks: tuple[Point, ...] = ()


@dataclass(frozen=True, eq=False)
class _Candidate:
    """One detection on its way through selection; holds its aligned crop (pixels: never returned)."""

    bbox: BBox
    landmarks: tuple[Point, ...]
    det_score: float
    size: float
    quality: FaceQuality
    crop: np.ndarray = field(repr=False)

    def left_out(self, reason: str) -> LeftOutFace:
        return LeftOutFace(self.bbox, self.det_score, self.size, reason, self.quality, self.landmarks)

    def detected(self) -> DetectedFace:
        return DetectedFace(self.bbox, self.landmarks, self.det_score, self.size, self.quality)


@dataclass(frozen=True)
class Analysis:
    faces: list[Face]
    left_out: list[LeftOutFace]
    image_width: int
    image_height: int
    model_id: str


@dataclass(frozen=True)
class Detection:
    """Faces found and judged, not embedded (`FaceEngine.detect`)."""

    faces: list[DetectedFace]
    left_out: list[LeftOutFace]
    image_width: int
    image_height: int
    model_id: str


class FaceEngine:
    """One loaded model pack. Thread-safe: share one per process (get_engine)."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.files: PackFiles = locate_pack(config.model_root, config.pack)
        self.providers = resolve_providers(config.device)
        det_session = create_session(self.files.detector, config, self.providers)
        rec_session = create_session(self.files.recognizer, config, self.providers)
        try:
            self._detector = Detector(self.files.detector, det_session, config.det_size)
            self._recognizer = Recognizer(self.files.recognizer, rec_session, config.rec_batch_size)
        except Exception as exc:  # insightface asserts on unexpected graphs
            raise ModelsUnavailable(
                f"model pack {config.pack!r} in {self.files.folder} is not usable: {type(exc).__name__}"
            ) from exc
        self.dimension: int = self._recognizer.dimension or self._probe_dimension()
        # The pack's impostor scores (None when it has no calibration for this model id).
        extra = [config.calibration_dir] if config.calibration_dir else []
        self.calibration: Calibration | None = find_calibration(
            self.model_id, calibration_paths(self.files.folder, self.files.pack, extra))
        if config.warmup:
            self.warm_up()
        logger.info("face engine ready: %s, %d-d, providers %s", self.model_id, self.dimension, self.providers)

    # Identity -------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """`<pack>:<8 hex of sha256 over the detector and recognizer bytes>`."""
        return self.files.model_id

    def info(self) -> dict[str, object]:
        """What a health or status endpoint may show (no filesystem paths)."""
        return {
            "model_id": self.model_id,
            "pack": self.files.pack,
            "dimension": self.dimension,
            "detector": self.files.detector.name,
            "recognizer": self.files.recognizer.name,
            "providers": list(self.providers),
            "det_size": list(self.config.det_size),
            "calibrated": self.calibration is not None,
        }

    # Work -----------------------------------------------------------------
    def analyze(self, image: np.ndarray, options: AnalyzeOptions | None = None) -> Analysis:
        """Detect, select and embed the faces of a BGR uint8 HxWx3 image."""
        options = options or AnalyzeOptions()
        kept, left_out = self._judge(image, options)
        embeddings = (
            self._recognizer.embed_aligned([c.crop for c in kept])
            if kept else np.empty((0, self.dimension), dtype=np.float32)
        )
        faces = [Face(c.bbox, c.landmarks, c.det_score, c.size, embeddings[n], c.quality)
                 for n, c in enumerate(kept)]
        height, width = image.shape[:2]
        return Analysis(faces, left_out, width, height, self.model_id)

    def detect(self, image: np.ndarray, options: AnalyzeOptions | None = None) -> Detection:
        """Detect and select like `analyze`, with quality and pose, but embed nothing (no recognizer run)."""
        options = options or AnalyzeOptions()
        kept, left_out = self._judge(image, options)
        height, width = image.shape[:2]
        return Detection([c.detected() for c in kept], left_out, width, height, self.model_id)

    def embed_single_largest(self, image: np.ndarray, options: AnalyzeOptions | None = None) -> Face | None:
        """The largest acceptable face (what search uses), or None if there is none."""
        base = options or AnalyzeOptions()
        single = AnalyzeOptions(max_faces=1, min_face_size=base.min_face_size,
                                min_det_score=base.min_det_score, low_score_floor=base.min_det_score,
                                quality_filter=base.quality_filter)
        faces = self.analyze(image, single).faces
        return faces[0] if faces else None

    def _judge(self, image: np.ndarray, options: AnalyzeOptions) -> tuple[list[_Candidate], list[LeftOutFace]]:
        """Detections, aligned and measured, split into kept (largest first) and left out."""
        _check_image(image)
        threshold = min(options.min_det_score, options.low_score_floor)
        boxes, landmarks = self._detector.detect(image, threshold)
        size = self._recognizer.image_size
        candidates = [_candidate(image, boxes[i], landmarks[i], size) for i in range(len(boxes))]
        return _select(candidates, options)

    def embed_aligned(self, crops: list[np.ndarray]) -> np.ndarray:
        """Embeddings (N x dimension) of crops already aligned to the template."""
        if not crops:
            return np.empty((0, self.dimension), dtype=np.float32)
        return self._recognizer.embed_aligned(crops)

    def warm_up(self) -> None:
        """First runs allocate buffers and build the detector's static-shape session."""
        width, height = self.config.det_size
        self._detector.detect(np.zeros((height, width, 3), dtype=np.uint8), 0.5)
        size = self._recognizer.image_size
        blank = np.zeros((size, size, 3), dtype=np.uint8)
        self._recognizer.embed_aligned([blank])
        if self._recognizer.max_batch > 1:
            self._recognizer.embed_aligned([blank, blank])

    def _probe_dimension(self) -> int:
        size = self._recognizer.image_size
        out = self._recognizer.embed_aligned([np.zeros((size, size, 3), dtype=np.uint8)])
        return int(out.shape[1])


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("analyze expects a BGR uint8 array of shape (height, width, 3); use decode_image")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError("empty image")


def _candidate(image: np.ndarray, row: np.ndarray, points: np.ndarray, crop_size: int) -> _Candidate:
    bbox = (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
    size = float(min(bbox[2] - bbox[0], bbox[3] - bbox[1]))
    crop = align_face(image, points, crop_size)
    quality = measure_quality(crop, points, size, float(row[4]))
    landmarks = tuple((float(x), float(y)) for x, y in points)
    return _Candidate(bbox, landmarks, float(row[4]), size, quality, crop)


def _select(candidates: list[_Candidate], options: AnalyzeOptions) -> tuple[list[_Candidate], list[LeftOutFace]]:
    """Faces to embed (largest box first) and the rest with reasons."""
    bar = options.bar
    min_score = max(options.min_det_score, bar.min_det_score)
    min_size = max(options.min_face_size, bar.min_size)
    ordered = sorted(candidates, key=lambda c: -(c.bbox[2] - c.bbox[0]) * (c.bbox[3] - c.bbox[1]))
    kept: list[_Candidate] = []
    left_out: list[LeftOutFace] = []
    for candidate in ordered:
        reason = _reason(candidate, min_score, min_size, bar)
        if reason is None and options.largest_only and kept:
            reason = NOT_LARGEST_FACE
        elif reason is None and options.max_faces is not None and len(kept) >= options.max_faces:
            reason = OVER_MAX_FACES
        if reason is None:
            kept.append(candidate)
        else:
            left_out.append(candidate.left_out(reason))
    return kept, left_out


def _reason(candidate: _Candidate, min_score: float, min_size: float, bar: QualityBar) -> str | None:
    if candidate.det_score < min_score:
        return LOW_SCORE
    if candidate.size < min_size:
        return TOO_SMALL
    return bar.failure(candidate.quality)


# One engine per configuration per process ---------------------------------
_engines: dict[EngineConfig, FaceEngine] = {}
_engines_lock = threading.Lock()
_engines_pid = os.getpid()


def get_engine(config: EngineConfig | None = None) -> FaceEngine:
    """The process-wide engine for `config` (default: EngineConfig.from_env()).

    Loads (and warms up) on first use; concurrent first callers wait for the
    single load instead of loading twice. A failed load is not cached, so a
    pack installed later is picked up by the next call.
    """
    global _engines_pid
    config = config or EngineConfig.from_env()
    if os.getpid() != _engines_pid:
        # A forked child (Celery prefork) must not reuse the parent's onnxruntime
        # sessions: their thread pools do not survive fork. Load afresh.
        with _engines_lock:
            _engines.clear()
            _engines_pid = os.getpid()
    engine = _engines.get(config)
    if engine is not None:
        return engine
    with _engines_lock:
        engine = _engines.get(config)
        if engine is None:
            engine = FaceEngine(config)
            _engines[config] = engine
    return engine


def clear_engine_cache() -> None:
    """Forget loaded engines (tests; or after replacing a pack's files)."""
    with _engines_lock:
        _engines.clear()
