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
        """(N x 5 [x1, y1, x2, y2, score], N x 5 x 2 landmarks), by score desc.

        The threshold is passed per call, never stored on the shared SCRFD
        object, so concurrent calls with different thresholds do not interfere.
        """
        boxes, landmarks = self._scrfd.detect(
            image, input_size=self.det_size, max_num=0, det_thresh=threshold
        )
        if landmarks is None:  # unreachable for packs that passed pack checks
            landmarks = np.zeros((boxes.shape[0], 5, 2), dtype=np.float32)
        return boxes, landmarks


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
