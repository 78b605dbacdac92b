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

from .config import EngineConfig
from .errors import ModelsUnavailable
from .networks import Detector, Recognizer
from .pack import PackFiles, locate_pack
from .runtime import create_session, resolve_providers

logger = logging.getLogger(__name__)

TOO_SMALL = "too_small"
LOW_SCORE = "low_score"
OVER_MAX_FACES = "over_max_faces"
NOT_LARGEST_FACE = "not_largest_face"
LEFT_OUT_REASONS = (TOO_SMALL, LOW_SCORE, OVER_MAX_FACES, NOT_LARGEST_FACE)

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
    """

    max_faces: int | None = None
    min_face_size: float = 0.0
    min_det_score: float = 0.5
    low_score_floor: float = 0.3
    largest_only: bool = False

    def __post_init__(self) -> None:
        if self.max_faces is not None and self.max_faces < 1:
            raise ValueError("max_faces must be >= 1 or None")
        if not 0.0 <= self.min_det_score <= 1.0 or not 0.0 <= self.low_score_floor <= 1.0:
            raise ValueError("scores must be within [0, 1]")
        if self.min_face_size < 0:
            raise ValueError("min_face_size must be >= 0")


@dataclass(frozen=True, eq=False)
class Face:
    """A kept face. `embedding` is float32, unit length, `dimension` long.

    bbox is (x1, y1, x2, y2) in image pixels as the detector gives it: it may
    reach slightly past the image edge for faces cut by the border. size is
    the box's shorter side. landmarks: eyes, nose tip, mouth corners.
    """

    bbox: BBox
    landmarks: tuple[Point, ...]
    det_score: float
    size: float
    embedding: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class LeftOutFace:
    """A detected face that was not embedded, and why (see LEFT_OUT_REASONS)."""

    bbox: BBox
    det_score: float
    size: float
    reason: str


@dataclass(frozen=True)
class Analysis:
    faces: list[Face]
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
        }

    # Work -----------------------------------------------------------------
    def analyze(self, image: np.ndarray, options: AnalyzeOptions | None = None) -> Analysis:
        """Detect, select and embed the faces of a BGR uint8 HxWx3 image."""
        options = options or AnalyzeOptions()
        _check_image(image)
        threshold = min(options.min_det_score, options.low_score_floor)
        boxes, landmarks = self._detector.detect(image, threshold)
        kept, left_out = _select(boxes, options)
        embeddings = (
            self._recognizer.embed(image, [landmarks[i] for i in kept])
            if kept else np.empty((0, self.dimension), dtype=np.float32)
        )
        faces = [_face(boxes[i], landmarks[i], embeddings[n]) for n, i in enumerate(kept)]
        height, width = image.shape[:2]
        return Analysis(faces, left_out, width, height, self.model_id)

    def embed_single_largest(self, image: np.ndarray, options: AnalyzeOptions | None = None) -> Face | None:
        """The largest acceptable face (what search uses), or None if there is none."""
        base = options or AnalyzeOptions()
        single = AnalyzeOptions(max_faces=1, min_face_size=base.min_face_size,
                                min_det_score=base.min_det_score, low_score_floor=base.min_det_score)
        faces = self.analyze(image, single).faces
        return faces[0] if faces else None

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


def _select(boxes: np.ndarray, options: AnalyzeOptions) -> tuple[list[int], list[LeftOutFace]]:
    """Indices of faces to embed (largest first) and the rest with reasons."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    order = np.argsort(-(widths * heights), kind="stable")
    kept: list[int] = []
    left_out: list[LeftOutFace] = []
    for i in order.tolist():
        size = float(min(widths[i], heights[i]))
        score = float(boxes[i, 4])
        if score < options.min_det_score:
            reason = LOW_SCORE
        elif size < options.min_face_size:
            reason = TOO_SMALL
        elif options.largest_only and kept:
            reason = NOT_LARGEST_FACE
        elif options.max_faces is not None and len(kept) >= options.max_faces:
            reason = OVER_MAX_FACES
        else:
            kept.append(i)
            continue
        left_out.append(LeftOutFace(_bbox(boxes[i]), score, size, reason))
    return kept, left_out


def _bbox(row: np.ndarray) -> BBox:
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def _face(row: np.ndarray, points: np.ndarray, embedding: np.ndarray) -> Face:
    bbox = _bbox(row)
    size = min(bbox[2] - bbox[0], bbox[3] - bbox[1])
    landmarks = tuple((float(x), float(y)) for x, y in points)
    return Face(bbox, landmarks, float(row[4]), float(size), embedding)


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
