"""The two networks of a pack, on our own onnxruntime sessions.

Detection reuses insightface's SCRFD decoder (anchors, distance decoding, NMS,
its per-resolution static-shape sessions) so boxes and landmarks are exactly
what insightface produces. Recognition is ours: insightface's
FaceAnalysis.get embeds one face per onnxruntime run; we align all kept faces
and run them as one batch, which is where the speed-up on group photos comes
from.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from .align import align_face

logger = logging.getLogger(__name__)


class Detector:
    """SCRFD face detector: boxes, scores and five landmarks."""

    def __init__(self, path: Path, session: ort.InferenceSession, det_size: tuple[int, int]) -> None:
        from insightface.model_zoo.scrfd import SCRFD

        self._scrfd = SCRFD(model_file=str(path), session=session)
        self._scrfd.prepare(0, input_size=det_size)
        self.det_size = det_size
        self.model_file = path

    def detect(self, image: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """(N x 5 [x1, y1, x2, y2, score], N x 5 x 2 landmarks), by score desc, in image pixels.

        The threshold is passed per call, never stored on the shared SCRFD
        object, so concurrent calls with different thresholds do not interfere.
        We scale the image onto the detector's canvas ourselves (`letterbox`):
        insightface's own resize asks OpenCV for a zero-pixel side when the
        image is far thinner than the canvas (1x700, 3000x4), which raised.
        """
        canvas, scale_x, scale_y = letterbox(image, self.det_size)
        scores, boxes, points = self._scrfd.forward(canvas, threshold)
        if not scores or sum(s.size for s in scores) == 0:
            return np.empty((0, 5), dtype=np.float32), np.empty((0, 5, 2), dtype=np.float32)
        # insightface's SCRFD.detect from here on: order by score, then its NMS.
        flat = np.vstack(scores).ravel()
        order = np.argsort(-flat, kind="stable")
        found = np.hstack((np.vstack(boxes), flat[:, None])).astype(np.float32, copy=False)[order]
        landmarks = (np.vstack(points)[order] if points else np.zeros((len(found), 5, 2))).astype(np.float32)
        keep = self._scrfd.nms(found)
        found, landmarks = found[keep], landmarks[keep]
        found[:, [0, 2]] /= scale_x
        found[:, [1, 3]] /= scale_y
        landmarks[:, :, 0] /= scale_x
        landmarks[:, :, 1] /= scale_y
        return found, landmarks


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float, float]:
    """The image scaled to fit `size` (width, height), aspect kept, on a black canvas at top-left.

    Returns the canvas and the scale of each axis (new / old), each side at
    least one pixel whatever the aspect ratio. Per-axis scales map boxes back
    exactly; insightface maps both axes with the height's rounded scale, up to
    0.2 % off in x (a pixel on an 800 px photo).
    """
    height, width = image.shape[:2]
    canvas_width, canvas_height = size
    scale = min(canvas_width / width, canvas_height / height)
    new_width = min(canvas_width, max(1, round(width * scale)))
    new_height = min(canvas_height, max(1, round(height * scale)))
    canvas = np.zeros((canvas_height, canvas_width, 3), dtype=np.uint8)
    canvas[:new_height, :new_width] = cv2.resize(image, (new_width, new_height))
    return canvas, new_width / width, new_height / height


class Recognizer:
    """ArcFace-style embedder with batched inference."""

    def __init__(self, path: Path, session: ort.InferenceSession, max_batch: int) -> None:
        # ArcFaceONNX works out the input normalisation (mean/std) the same way
        # FaceAnalysis does; we keep its numbers and run the session ourselves.
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX

        model = ArcFaceONNX(model_file=str(path), session=session)
        self._session = session
        self._input_name = model.input_name
        self._output_name = model.output_names[0]
        self.input_mean = float(model.input_mean)
        self.input_std = float(model.input_std)
        self.image_size = int(model.input_size[0])
        batch_dim = model.input_shape[0]
        # A fixed batch dimension of 1 (some exports) forbids batching.
        self.max_batch = max_batch if not isinstance(batch_dim, int) or batch_dim != 1 else 1
        self.dimension = self._output_dimension(session)

    @staticmethod
    def _output_dimension(session: ort.InferenceSession) -> int | None:
        shape = session.get_outputs()[0].shape
        last = shape[-1] if shape else None
        return last if isinstance(last, int) else None

    def embed(self, image: np.ndarray, landmarks: list[np.ndarray]) -> np.ndarray:
        """L2-normalised float32 embeddings (N x D) of the faces at `landmarks`."""
        crops = [align_face(image, points, self.image_size) for points in landmarks]
        chunks = [self._run(crops[i:i + self.max_batch]) for i in range(0, len(crops), self.max_batch)]
        return _l2_normalise(np.concatenate(chunks, axis=0))

    def embed_aligned(self, crops: list[np.ndarray]) -> np.ndarray:
        """Embeddings of already aligned crops (image_size x image_size BGR)."""
        chunks = [self._run(crops[i:i + self.max_batch]) for i in range(0, len(crops), self.max_batch)]
        return _l2_normalise(np.concatenate(chunks, axis=0))

    def _run(self, crops: list[np.ndarray]) -> np.ndarray:
        # Same preprocessing call as insightface's ArcFaceONNX.get_feat.
        blob = cv2.dnn.blobFromImages(
            crops, 1.0 / self.input_std, (self.image_size, self.image_size),
            (self.input_mean,) * 3, swapRB=True,
        )
        blob = np.ascontiguousarray(blob, dtype=np.float32)
        out = self._session.run([self._output_name], {self._input_name: blob})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(crops), -1)


def _l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
