"""The face engine as the Django side sees it: configured from settings, loaded once per process."""

from __future__ import annotations

import os
import threading

from django.conf import settings

from embeddings.engine import EngineConfig, ModelsUnavailable, get_engine
from embeddings.engine.model_process import ModelProcess
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


_model_process: tuple[int, ModelProcess] | None = None
_model_process_lock = threading.Lock()


def index_engine():
    """The engine an index worker's model thread calls (analyze, model_id, dimension).

    With INDEX_MODEL_PROCESS (the default) the model runs in a child process
    of its own (embeddings/engine/model_process.py), away from the GIL of the
    worker's fetch and store threads; otherwise in this process.
    """
    global _model_process
    if not settings.INDEX_MODEL_PROCESS:
        return face_engine()
    with _model_process_lock:
        if _model_process is None or _model_process[0] != os.getpid():  # not a forked parent's
            _model_process = (os.getpid(), ModelProcess(engine_config()))
        return _model_process[1]


def close_index_engine() -> None:
    """Stop this process's model process, if it has one (a worker process shutting down)."""
    global _model_process
    with _model_process_lock:
        if _model_process is not None and _model_process[0] == os.getpid():
            _model_process[1].close()
        _model_process = None


def model_status() -> tuple[bool, str]:
    """For /readyz: is the configured pack present? (Does not load it.)"""
    try:
        files = locate_pack(settings.FACE_MODEL_ROOT, settings.FACE_MODEL_PACK)
    except ModelsUnavailable as exc:
        return False, str(exc)
    return True, f"{settings.FACE_MODEL_PACK} at {files.folder}"
