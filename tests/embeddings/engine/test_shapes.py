"""Any image shape: analyze() never crashes, whatever the aspect ratio (issue #18).

Images whose short side shrank below one pixel on the detector's canvas (1x700,
3000x4) made OpenCV's resize raise, and search and compare answered 500. The
property: for every shape from 1x1 up to the pixel limit, analyze() returns
(no faces, or well-formed faces) and raises nothing.
"""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from embeddings.engine import ImageLimits, decode_image
from embeddings.engine.networks import letterbox
from tests.embeddings.engine.conftest import FACES, load_photo, needs_shared

pytestmark = [pytest.mark.pure, needs_shared]

MAX_PIXELS = ImageLimits().max_pixels  # 40 MP
# Hypothesis draws shapes up to this many pixels (a few ms each); the extremes up to
# the pixel limit are explicit examples.
DRAWN_PIXELS = 2_000_000

_photo_cache: dict[str, np.ndarray] = {}


def _face_photo() -> np.ndarray:
    if "obama" not in _photo_cache:
        _photo_cache["obama"] = load_photo(FACES / "known-people" / "more" / "obama.jpg")
    return _photo_cache["obama"]


def _image(width: int, height: int, content: str) -> np.ndarray:
    """A width x height BGR image: black, noise, or a real face photo squeezed to that shape."""
    if content == "black":
        return np.zeros((height, width, 3), dtype=np.uint8)
    if content == "noise":
        return np.random.default_rng(width * 7919 + height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.resize(_face_photo(), (width, height), interpolation=cv2.INTER_AREA)


@st.composite
def shapes(draw) -> tuple[int, int]:
    # Log-uniform sides, so that thin strips (1 x N) come up as often as squares.
    width = round(math.exp(draw(st.floats(0, math.log(40_000)))))
    most_height = max(1, min(40_000, DRAWN_PIXELS // width))
    height = round(math.exp(draw(st.floats(0, math.log(most_height)))))
    return max(1, width), max(1, min(height, most_height))


def _assert_well_formed(analysis, engine, width: int, height: int) -> None:
    assert (analysis.image_width, analysis.image_height) == (width, height)
    for face in analysis.faces:
        x1, y1, x2, y2 = face.bbox
        assert all(math.isfinite(v) for v in face.bbox) and x2 > x1 and y2 > y1
        assert all(math.isfinite(x) and math.isfinite(y) for x, y in face.landmarks)
        assert face.embedding.shape == (engine.dimension,) and np.isfinite(face.embedding).all()
        assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-4)
        q = face.quality
        assert 0 <= q.sharpness <= 1 and 0 <= q.brightness <= 1
        assert all(math.isfinite(v) and abs(v) <= 180 for v in (q.yaw, q.pitch, q.roll))
    for face in analysis.left_out:
        assert all(math.isfinite(v) for v in face.bbox)


# database=None: no .hypothesis/ folder in the working tree.
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes(), content=st.sampled_from(["black", "noise", "photo"]))
@example(shape=(1, 1), content="black")
@example(shape=(1, 700), content="photo")  # the two shapes issue #18 found
@example(shape=(3000, 4), content="photo")
@example(shape=(700, 1), content="noise")
@example(shape=(4, 3000), content="photo")
@example(shape=(1, 40_000), content="photo")
@example(shape=(40_000, 1), content="photo")
@example(shape=(2, 2), content="photo")
def test_analyze_survives_any_shape(engine, shape, content):
    width, height = shape
    image = _image(width, height, content)
    _assert_well_formed(engine.analyze(image), engine, width, height)


@pytest.mark.parametrize("shape", [(1, MAX_PIXELS), (MAX_PIXELS, 1), (MAX_PIXELS // 7, 7), (6324, 6324)])
def test_analyze_survives_the_pixel_limit(engine, shape):
    width, height = shape
    assert width * height <= MAX_PIXELS
    image = np.zeros((height, width, 3), dtype=np.uint8)
    _assert_well_formed(engine.analyze(image), engine, width, height)


def test_a_face_on_a_wide_canvas_is_found_where_it_is(engine):
    """Box mapping and alignment on a 5,000 x ~600 image (the canvas scale is 0.128, the face ~30 px there)."""
    photo = _face_photo()
    h, w = photo.shape[:2]
    canvas = np.full((h, 5_000, 3), 128, dtype=np.uint8)
    canvas[:, 4_000:4_000 + w] = photo
    alone = engine.analyze(photo).faces
    wide = engine.analyze(canvas).faces
    assert alone and wide
    x1, y1, _, _ = wide[0].bbox
    ax1, ay1, ax2, ay2 = alone[0].bbox
    # The detector sees the face at 1/8 of its size, so boxes agree only roughly.
    assert float(wide[0].embedding @ alone[0].embedding) > 0.8
    assert abs((x1 - 4_000) - ax1) < 0.25 * (ax2 - ax1) and abs(y1 - ay1) < 0.25 * (ay2 - ay1)


@pytest.mark.parametrize("size", [(1, 700), (3000, 4), (1, 1), (700, 1)])
def test_decoded_thin_pngs_analyze_without_error(engine, size):
    """The path search and compare take: bytes -> decode_image -> analyze."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 180, 160)).save(buffer, format="PNG")
    image = decode_image(buffer.getvalue())
    assert image.shape[:2] == (size[1], size[0])
    assert engine.analyze(image).faces == []


@pytest.mark.parametrize("shape", [(1, 1), (1, 700), (3000, 4), (640, 640), (800, 533), (533, 800), (10, 100_000)])
def test_letterbox_keeps_every_side_at_least_one_pixel(shape):
    width, height = shape
    canvas, sx, sy = letterbox(np.zeros((height, width, 3), dtype=np.uint8), (640, 640))
    assert canvas.shape == (640, 640, 3)
    assert 1 <= round(width * sx) <= 640 and 1 <= round(height * sy) <= 640
    assert max(round(width * sx), round(height * sy)) == 640
