"""Fixtures for the face engine tests: real models and photos from ../shared.

Nothing here is mocked: the engine runs the real ONNX models on real photos.
The tests skip (with the reason) only when the shared folder is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from embeddings.engine import EngineConfig, ImageLimits, decode_image, get_engine
from tests.conftest import FACES_DIR, MODELS_DIR, SHARED_DIR

MODEL_ROOT = MODELS_DIR
PACK = "scrfd500m-mobilefacenet"
FACES = FACES_DIR
HAVE_SHARED = (MODEL_ROOT / PACK).is_dir() and FACES.is_dir()

needs_shared = pytest.mark.skipif(
    not HAVE_SHARED, reason=f"real models/photos not found at {SHARED_DIR} (models/{PACK}, faces/)"
)

# Phone photos in group-photos are up to 36 MP and 2.5 MB.
PHOTO_LIMITS = ImageLimits(max_bytes=30 * 1024 * 1024, max_pixels=40_000_000)


def engine_config(det: int = 640, threads: int = 1) -> EngineConfig:
    # One intra-op thread: the tests share two cores with other suites, where
    # onnxruntime's spinning thread pool is slower than a single thread.
    return EngineConfig(model_root=str(MODEL_ROOT), pack=PACK, det_size=(det, det), intra_op_threads=threads)


def load_photo(path: Path):
    return decode_image(path.read_bytes(), PHOTO_LIMITS)


@pytest.fixture(scope="session")
def engine():
    if not HAVE_SHARED:
        pytest.skip(f"real models not found at {MODEL_ROOT / PACK}")
    return get_engine(engine_config(640))


@pytest.fixture(scope="session")
def engine320():
    if not HAVE_SHARED:
        pytest.skip(f"real models not found at {MODEL_ROOT / PACK}")
    return get_engine(engine_config(320))
