"""The face engine as the Django side sees it: configured from settings, loaded once per process."""

from __future__ import annotations

import functools
import logging

from django.conf import settings

from embeddings.engine import EngineConfig, ModelsUnavailable, get_engine
from embeddings.engine.pack import locate_pack

logger = logging.getLogger(__name__)


def engine_config() -> EngineConfig:
    size = int(settings.FACE_DET_SIZE)
    return EngineConfig(
        model_root=settings.FACE_MODEL_ROOT, pack=settings.FACE_MODEL_PACK,
        device=settings.FACE_DEVICE, intra_op_threads=settings.FACE_MODEL_THREADS,
        det_size=(size, size), calibration_dir=settings.FACE_CALIBRATION_DIR or None,
    )


def face_engine():
    """The process-wide FaceEngine. Raises ModelsUnavailable (HTTP 503) when the pack is missing."""
    return get_engine(engine_config())


def model_status() -> tuple[bool, str]:
    """For /readyz: is the configured pack present? (Does not load it.)"""
    try:
        files = locate_pack(settings.FACE_MODEL_ROOT, settings.FACE_MODEL_PACK)
    except ModelsUnavailable as exc:
        return False, str(exc)
    return True, f"{settings.FACE_MODEL_PACK} at {files.folder}"


def current_model_id() -> str:
    """The configured pack's model id, without loading it (ModelsUnavailable when it is missing)."""
    return _pack_model_id(settings.FACE_MODEL_ROOT, settings.FACE_MODEL_PACK)


@functools.lru_cache(maxsize=4)
def _pack_model_id(model_root: str, pack: str) -> str:
    return locate_pack(model_root, pack).model_id  # hashes the files: once per process


def warm_up_face_engine() -> None:
    """Load and warm the engine when a serving process starts, not on its first request.

    A missing pack is logged, not fatal: /readyz reports it and face endpoints answer 503.
    """
    try:
        engine = face_engine()
    except ModelsUnavailable as exc:
        logger.warning("face models unavailable; face endpoints will answer 503", extra={"detail": str(exc)})
        return
    logger.info("face engine loaded", extra={"model_id": engine.model_id, "dimension": engine.dimension})
