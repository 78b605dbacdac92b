"""The face engine as the Django side sees it: configured from settings, loaded once per process."""

from __future__ import annotations

from django.conf import settings

from embeddings.engine import EngineConfig, ModelsUnavailable, get_engine
from embeddings.engine.pack import locate_pack


def engine_config() -> EngineConfig:
    size = int(settings.FACE_DET_SIZE)
    return EngineConfig(
        model_root=settings.FACE_MODEL_ROOT, pack=settings.FACE_MODEL_PACK,
        device=settings.FACE_DEVICE, intra_op_threads=settings.FACE_MODEL_THREADS,
        det_size=(size, size),
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
