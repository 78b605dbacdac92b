"""Detect the faces of one photo: where they are, how good they are for recognition, which way they face.

Like compare, memory only: the image is decoded, analysed and dropped; nothing
of it is stored, searched or logged. The audit event says that a detection
happened, by whom, from which kind of source and how many faces: never the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from audit.services import Actor, record_event
from embeddings.engine import AnalyzeOptions, decode_image
from embeddings.engine.engine import DetectedFace, LeftOutFace
from embeddings.face_engine import face_engine
from embeddings.image_sources import ImageSource, fetch_bytes, image_limits
from embeddings.store import rounding
from embeddings.store.face_quality import shown_quality


@dataclass(frozen=True)
class DetectQuery:
    max_faces: int = 100
    quality_filter: str = "NONE"
    min_face_size: float = 0.0


def detect_faces(*, tenant_id: UUID, source: ImageSource, query: DetectQuery, actor: Actor) -> dict:
    """Every face of the photo (largest first, at most max_faces), and those left out with a reason."""
    engine = face_engine()  # ModelsUnavailable (503) when the pack is missing
    image = decode_image(fetch_bytes(source), image_limits())
    options = AnalyzeOptions(max_faces=query.max_faces, quality_filter=query.quality_filter,
                             min_face_size=query.min_face_size)
    detection = engine.detect(image, options)
    del image  # nothing of the pixels outlives the call
    result = {"model_id": engine.model_id, "image_width": detection.image_width,
              "image_height": detection.image_height, "quality_filter": query.quality_filter,
              "faces": [face_dict(f) for f in detection.faces],
              "left_out": [{**face_dict(f), "reason": f.reason} for f in detection.left_out]}
    record_event(tenant_id=tenant_id, actor=actor, action="faces.detected",
                 details={"source": source.kind, "faces": len(result["faces"]),
                          "left_out": len(result["left_out"]), "quality_filter": query.quality_filter})
    return result


def face_dict(face: DetectedFace | LeftOutFace) -> dict:
    """One face as the API shows it: box, landmarks, score, size, quality and pose."""
    shown = {"bbox": rounding.box(face.bbox),
             "landmarks": [rounding.box(point) for point in face.landmarks],
             "det_score": rounding.score(face.det_score), "size": round(float(face.size), rounding.BOX_DECIMALS)}
    if face.quality is not None:
        shown.update(shown_quality(face.quality))
    return shown
