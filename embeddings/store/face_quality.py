"""A face's quality as stored (Face.quality) and as every endpoint shows it.

One shape everywhere a face appears (detect, search's query faces, index-job
results, face listings): `quality` {sharpness, brightness} and `pose` {yaw,
pitch, roll}, as POST /v1/detect introduced it. Stored flat in Face.quality
(sharpness, brightness, yaw, pitch, roll, size: embeddings/engine/quality.py
says what each means); null for faces indexed before quality was measured, and
then both `quality` and `pose` show null.

Here, below indexing, search and detect, because all three show it and they
may not import each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from embeddings.engine.quality import FaceQuality
from embeddings.store import rounding

STORED_FIELDS = ("sharpness", "brightness", "yaw", "pitch", "roll", "size")
POSE_DECIMALS = 1  # the pose is rough to several degrees (quality.py): tenths are more than enough


def stored_quality(quality: FaceQuality | None) -> dict[str, float] | None:
    """What Face.quality holds for one face (None when it was not measured)."""
    if quality is None:
        return None
    values = quality.as_dict()
    return {name: values[name] for name in STORED_FIELDS}


def shown_quality(quality: FaceQuality | Mapping[str, Any] | None) -> dict[str, dict[str, float] | None]:
    """{"quality": {sharpness, brightness}, "pose": {yaw, pitch, roll}} from a measured or stored quality."""
    values = quality.as_dict() if isinstance(quality, FaceQuality) else quality
    if not values:
        return {"quality": None, "pose": None}
    return {"quality": {"sharpness": rounding.score(values["sharpness"]),
                        "brightness": rounding.score(values["brightness"])},
            "pose": {axis: round(float(values[axis]), POSE_DECIMALS) for axis in ("yaw", "pitch", "roll")}}
